"""panel: backups of servers' folders

Revision ID: panel_0002
Revises: panel_0001
Create Date: 2026-12-05 07:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "panel_0002"
down_revision: str | Sequence[str] | None = "panel_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "panel_backups",
        sa.Column("server_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("ignore", sa.JSON(), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("files", sa.Integer(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("completed_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("verified_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("restored_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["panel_servers.id"],
            name=op.f("fk_panel_backups_server_id_panel_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_backups")),
    )
    with op.batch_alter_table("panel_backups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_panel_backups_server_id_created_at", ["server_id", "created_at"], unique=False
        )


def downgrade() -> None:
    # Dropping the table drops its index (MariaDB refuses to drop an index a foreign key needs first).
    op.drop_table("panel_backups")
