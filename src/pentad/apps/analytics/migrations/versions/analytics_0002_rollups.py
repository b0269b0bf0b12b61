"""analytics: rollups (hourly, daily, monthly), sessions, the rollup cursor, site retention tiers

Revision ID: analytics_0002
Revises: analytics_0001
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "analytics_0002"
down_revision: str | Sequence[str] | None = "analytics_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_rollup_hourly",
        sa.Column("site_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("dim", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value", sa.String(length=2000), nullable=True),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("visitors_sketch", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_key", "dim", "bucket", "value_hash", name=op.f("pk_analytics_rollup_hourly")
        ),
    )
    op.create_table(
        "analytics_rollup_daily",
        sa.Column("site_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("dim", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value", sa.String(length=2000), nullable=True),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("visitors_sketch", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_key", "dim", "bucket", "value_hash", name=op.f("pk_analytics_rollup_daily")
        ),
    )
    op.create_table(
        "analytics_rollup_monthly",
        sa.Column("site_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("dim", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value", sa.String(length=2000), nullable=True),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("visitors_sketch", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "site_key", "dim", "bucket", "value_hash", name=op.f("pk_analytics_rollup_monthly")
        ),
    )
    op.create_table(
        "analytics_sessions",
        sa.Column("site_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("visitor_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("start_ts", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("end_ts", sa.BigInteger(), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("entry_path", sa.String(length=2000), nullable=False),
        sa.Column("exit_path", sa.String(length=2000), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("referrer_host", sa.String(length=253), nullable=True),
        sa.Column("utm_source", sa.String(length=200), nullable=True),
        sa.Column("utm_medium", sa.String(length=200), nullable=True),
        sa.Column("utm_campaign", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("browser", sa.String(length=64), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint(
            "site_key", "day", "visitor_id", "start_ts", name=op.f("pk_analytics_sessions")
        ),
    )
    cursor = op.create_table(
        "analytics_rollup_cursor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_rollup_cursor")),
    )
    op.bulk_insert(cursor, [{"id": 1, "epoch": 0}])
    # Events stored before this revision: their hours are dirty, so the first rollup run covers them.
    hour = "e.ts DIV 3600000" if op.get_bind().dialect.name in ("mysql", "mariadb") else "e.ts / 3600000"
    statement = (
        "INSERT INTO analytics_dirty_buckets (site_key, hour) SELECT DISTINCT e.site_key, {hour}"
        " FROM analytics_events e WHERE NOT EXISTS (SELECT 1 FROM analytics_dirty_buckets d"
        " WHERE d.site_key = e.site_key AND d.hour = {hour})"
    )
    op.execute(statement.format(hour=hour))
    with op.batch_alter_table("analytics_sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analytics_sites", schema=None) as batch_op:
        batch_op.drop_column("retention")
    op.drop_table("analytics_rollup_cursor")
    op.drop_table("analytics_sessions")
    op.drop_table("analytics_rollup_monthly")
    op.drop_table("analytics_rollup_daily")
    op.drop_table("analytics_rollup_hourly")
