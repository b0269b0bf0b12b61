"""analytics: goals by event name, funnels, shared links

Revision ID: analytics_0003
Revises: analytics_0002
Create Date: 2026-12-05 00:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "analytics_0003"
down_revision: str | Sequence[str] | None = "analytics_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_goals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_name", sa.String(length=120), nullable=True))
    op.create_table(
        "analytics_funnels",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["analytics_sites.id"],
            name=op.f("fk_analytics_funnels_site_id_analytics_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_funnels")),
    )
    with op.batch_alter_table("analytics_funnels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_funnels_site_id"), ["site_id"], unique=False)
    op.create_table(
        "analytics_shares",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["analytics_sites.id"],
            name=op.f("fk_analytics_shares_site_id_analytics_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_shares")),
        sa.UniqueConstraint("slug", name=op.f("uq_analytics_shares_slug")),
    )
    with op.batch_alter_table("analytics_shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_shares_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop one its foreign key needs first).
    op.drop_table("analytics_shares")
    op.drop_table("analytics_funnels")
    with op.batch_alter_table("analytics_goals", schema=None) as batch_op:
        batch_op.drop_column("event_name")
