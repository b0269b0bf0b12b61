"""analytics: goal conversions and custom properties are rolled up (rollups.PROP_KEYS, PROP_VALUES,
REVENUE). A property's rollup value is its name and value together (each up to
PENTAD_ANALYTICS__MAX_PROP_VALUE characters), so the rollup tables' `value` becomes unbounded text (it is
not indexed: rows are keyed by value_hash). The hours raw events still cover are marked dirty, so the
rollup job recomputes them with the new rows (older hours answer without them).

Revision ID: analytics_0008
Revises: analytics_0007
Create Date: 2026-12-05 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "analytics_0008"
down_revision: str | Sequence[str] | None = "analytics_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("analytics_rollup_hourly", "analytics_rollup_daily", "analytics_rollup_monthly")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        if dialect in ("mysql", "mariadb"):
            op.execute(sa.text(f"ALTER TABLE {table} MODIFY value MEDIUMTEXT NULL"))
        elif dialect == "postgresql":  # varchar to text: no rewrite
            op.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN value TYPE TEXT"))
        # SQLite does not enforce a VARCHAR's length: nothing to change
    hour = "ts DIV 3600000" if dialect in ("mysql", "mariadb") else "ts / 3600000"
    verb, skip = (
        ("INSERT IGNORE", "") if dialect in ("mysql", "mariadb") else ("INSERT", " ON CONFLICT DO NOTHING")
    )
    op.execute(
        sa.text(
            f"{verb} INTO analytics_dirty_buckets (site_key, hour)"  # noqa: S608
            # SQLite reads `ON CONFLICT` after a SELECT without WHERE as a join's ON
            f" SELECT DISTINCT site_key, {hour} FROM analytics_events WHERE 1 = 1{skip}"
        )
    )


def downgrade() -> None:
    """The goal and property rows go (their values may be longer than the column before allows); the code
    before never reads them."""
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        op.execute(sa.text(f"DELETE FROM {table} WHERE dim IN (18, 19, 20)"))  # noqa: S608
        if dialect in ("mysql", "mariadb"):
            op.execute(sa.text(f"ALTER TABLE {table} MODIFY value VARCHAR(2000) NULL"))
        elif dialect == "postgresql":
            op.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN value TYPE VARCHAR(2000)"))
