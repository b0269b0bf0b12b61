"""market: each snapshot's hub ladders computed at ingest (`market_hub_ladders`, partitioned by hour like
the orders), so a hauling search reads them instead of ranking the books

Revision ID: market_0003
Revises: market_0002
Create Date: 2026-12-05 11:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

import pentad.core.db.base
from pentad.core.db import partitions

revision: str = "market_0003"
down_revision: str | Sequence[str] | None = "market_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _hub_ladders() -> partitions.PartitionedTable:
    table = sa.Table(
        "market_hub_ladders",
        sa.MetaData(naming_convention=pentad.core.db.base.NAMING_CONVENTION),
        sa.Column("captured_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("station_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cover", sa.String(length=64), nullable=False),
        sa.Column("asks", LONG_TEXT, nullable=False),
        sa.Column("bids", LONG_TEXT, nullable=False),
        sa.PrimaryKeyConstraint("captured_at", "snapshot_id", "station_id", name="pk_market_hub_ladders"),
    )
    return partitions.PartitionedTable(table, "captured_at", "hour", ahead=2)


def upgrade() -> None:
    partitions.create_partitioned_table(_hub_ladders())


def downgrade() -> None:
    partitions.drop_partitioned_table(_hub_ladders())
