"""analytics: every breakdown is rolled up (entry and exit pages, UTM content and term, regions, cities):
the hours raw events still cover are marked dirty, so the rollup job recomputes them with the new
dimensions (older hours keep the rows they have, without these six)

Revision ID: analytics_0007
Revises: analytics_0006
Create Date: 2026-12-05 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "analytics_0007"
down_revision: str | Sequence[str] | None = "analytics_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    hour = "ts DIV 3600000" if dialect in ("mysql", "mariadb") else "ts / 3600000"
    skip = {"postgresql": " ON CONFLICT DO NOTHING", "sqlite": " ON CONFLICT DO NOTHING"}.get(dialect, "")
    verb = "INSERT IGNORE" if dialect in ("mysql", "mariadb") else "INSERT"
    op.execute(
        sa.text(
            f"{verb} INTO analytics_dirty_buckets (site_key, hour)"  # noqa: S608
            f" SELECT DISTINCT site_key, {hour} FROM analytics_events WHERE 1 = 1{skip}"
        )
    )


def downgrade() -> None:
    """The extra rows are harmless to the code before: nothing to undo."""
