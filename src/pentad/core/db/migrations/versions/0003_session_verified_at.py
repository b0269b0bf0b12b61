"""auth sessions: when the session last proved the password or a second factor (recent-verification rule)

Revision ID: 0003_session_verified_at
Revises: 0002_jobs
Create Date: 2026-12-04 15:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "0003_session_verified_at"
down_revision: str | Sequence[str] | None = "0002_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("verified_at", pentad.core.db.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("verified_at")
