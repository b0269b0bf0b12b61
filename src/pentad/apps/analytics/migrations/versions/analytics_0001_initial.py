"""analytics: sites, goals, raw events, drops, dirty buckets

Revision ID: analytics_0001
Revises:
Create Date: 2026-12-04 21:17:15.454522
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "analytics_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("analytics",)
depends_on: str | Sequence[str] | None = "0002_jobs"


def upgrade() -> None:
    op.create_table(
        "analytics_dirty_buckets",
        sa.Column("site_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("site_key", "hour", name=op.f("pk_analytics_dirty_buckets")),
    )
    op.create_table(
        "analytics_drops",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("site_key", sa.Integer(), nullable=True),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_drops")),
    )
    with op.batch_alter_table("analytics_drops", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_drops_site_key_minute", ["site_key", "minute"], unique=False)

    op.create_table(
        "analytics_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("site_key", sa.Integer(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("visitor_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("referrer_host", sa.String(length=253), nullable=True),
        sa.Column("referrer_path", sa.String(length=2000), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("medium", sa.String(length=32), nullable=True),
        sa.Column("utm_source", sa.String(length=200), nullable=True),
        sa.Column("utm_medium", sa.String(length=200), nullable=True),
        sa.Column("utm_campaign", sa.String(length=200), nullable=True),
        sa.Column("utm_content", sa.String(length=200), nullable=True),
        sa.Column("utm_term", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("browser", sa.String(length=64), nullable=True),
        sa.Column("browser_version", sa.String(length=32), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=True),
        sa.Column("os_version", sa.String(length=32), nullable=True),
        sa.Column("props", sa.JSON(), nullable=True),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_events")),
    )
    with op.batch_alter_table("analytics_events", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_events_site_key_ts", ["site_key", "ts"], unique=False)

    op.create_table(
        "analytics_sites",
        sa.Column("key", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hosts", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("excluded_paths", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("first_event_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_sites")),
        sa.UniqueConstraint("domain", name=op.f("uq_analytics_sites_domain")),
        sa.UniqueConstraint("key", name=op.f("uq_analytics_sites_key")),
    )
    op.create_table(
        "analytics_goals",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("path_pattern", sa.String(length=2000), nullable=True),
        sa.Column("props", sa.JSON(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["analytics_sites.id"],
            name=op.f("fk_analytics_goals_site_id_analytics_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_goals")),
    )
    with op.batch_alter_table("analytics_goals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_goals_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first).
    op.drop_table("analytics_goals")
    op.drop_table("analytics_sites")
    op.drop_table("analytics_events")
    op.drop_table("analytics_drops")
    op.drop_table("analytics_dirty_buckets")
