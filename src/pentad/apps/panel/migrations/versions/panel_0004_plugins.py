"""panel: plugins and trusted plugin publishers

Revision ID: panel_0004
Revises: panel_0003
Create Date: 2026-12-05 10:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "panel_0004"
down_revision: str | Sequence[str] | None = "panel_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "panel_plugins",
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("publisher", sa.String(length=64), nullable=False),
        sa.Column("publisher_key", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=2000), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("requested", sa.JSON(), nullable=False),
        sa.Column("granted", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("settings_enc", pentad.core.db.base.EncryptedText(length=4096), nullable=True),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        sa.Column("approved_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_plugins")),
        sa.UniqueConstraint("plugin_id", name=op.f("uq_panel_plugins_plugin_id")),
    )
    op.create_table(
        "panel_trusted_publishers",
        sa.Column("publisher", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=100), nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_trusted_publishers")),
        sa.UniqueConstraint(
            "publisher", "public_key", name=op.f("uq_panel_trusted_publishers_publisher_public_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("panel_trusted_publishers")
    op.drop_table("panel_plugins")
