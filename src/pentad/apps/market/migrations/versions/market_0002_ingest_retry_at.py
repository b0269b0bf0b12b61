"""market: when a failed or deferred ingest run is retried (`market_ingest_runs.retry_at`), so users are
told when fresh data is expected

Revision ID: market_0002
Revises: market_0001
Create Date: 2026-12-05 10:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "market_0002"
down_revision: str | Sequence[str] | None = "market_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("market_ingest_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_at", pentad.core.db.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("market_ingest_runs", schema=None) as batch_op:
        batch_op.drop_column("retry_at")
