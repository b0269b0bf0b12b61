"""analytics: raw events range-partitioned by month on PostgreSQL (SQLite and MariaDB keep a plain table)

The table is rebuilt as `PARTITION BY RANGE (ts)` with the primary key (id, ts), a child per month
(`analytics_events_pYYYYMM`) from the oldest stored month (at most YEARS_BACK back) to two months ahead
and the default partition for the rest; the rows are copied, the id sequence is kept. The downgrade copies
them back into a plain table. The core cron job `core.partitions_maintain` makes later months
(core/db/partitions.py); retention drops expired months whole (apps/analytics/retention.py).

Revision ID: analytics_0005
Revises: analytics_0004
Create Date: 2026-12-05 00:40:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from pentad.core.db import partitions

revision: str = "analytics_0005"
down_revision: str | Sequence[str] | None = "analytics_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

YEARS_BACK = 3
"""Older stored months are not given a child of their own: their rows go to the default partition."""
SEQUENCE = "analytics_events_id_seq"
COLUMNS = (
    "id, site_key, ts, visitor_id, name, hostname, path, referrer_host, referrer_path, source, medium,"
    " utm_source, utm_medium, utm_campaign, utm_content, utm_term, country, region, city, device, browser,"
    " browser_version, os, os_version, props, revenue_micros, currency"
)


def _events(name: str, *, partitioned: bool) -> sa.Table:
    key = ("id", "ts") if partitioned else ("id",)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger(), server_default=sa.text(f"nextval('{SEQUENCE}')"), nullable=False),
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
        sa.PrimaryKeyConstraint(*key, name="pk_analytics_events"),
        sa.Index("ix_analytics_events_site_key_ts", "site_key", "ts"),
    )


def _spec(table: sa.Table) -> partitions.PartitionedTable:
    return partitions.PartitionedTable(table, "ts", "month", ahead=2, engines=("postgresql",), epoch="ms")


def _set_aside(old: str) -> None:
    """Rename the table and its key and index out of the way, keeping the id sequence."""
    op.execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY NONE")
    op.execute(f"ALTER TABLE analytics_events RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_analytics_events TO pk_{old}")
    op.execute(f"ALTER INDEX ix_analytics_events_site_key_ts RENAME TO ix_{old}_site_key_ts")


def _move_from(old: str) -> None:
    op.execute(f"INSERT INTO analytics_events ({COLUMNS}) SELECT {COLUMNS} FROM {old}")  # noqa: S608
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY analytics_events.id")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    old = "analytics_events_unpartitioned"
    _set_aside(old)
    spec = _spec(_events("analytics_events", partitioned=True))
    now = datetime.now(UTC)
    partitions.create_partitioned_table(spec, now=now)
    oldest = connection.execute(sa.text(f"SELECT min(ts) FROM {old}")).scalar()  # noqa: S608
    if oldest is not None:
        floor = datetime(now.year - YEARS_BACK, now.month, 1, tzinfo=UTC)
        first = max(spec.moment(oldest), floor)
        if first < now:
            partitions.ensure_sync(connection, spec, first, now)
    _move_from(old)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    old = "analytics_events_partitioned"
    _set_aside(old)
    _events("analytics_events", partitioned=False).create(op.get_bind())
    _move_from(old)
