"""events and queues: job priorities (claimed highest first) and the batch ids of buffered ingest

Revision ID: 0004_events_and_queues
Revises: 0003_session_verified_at
Create Date: 2026-12-04 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "0004_events_and_queues"
down_revision: str | Sequence[str] | None = "0003_session_verified_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_index("ix_jobs_due")
        batch_op.create_index("ix_jobs_due", ["status", "priority", "run_at"], unique=False)
    op.create_table(
        "ingest_batches",
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("flushed_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "batch_id", name=op.f("pk_ingest_batches")),
    )
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_batches_flushed_at", ["flushed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_batches_flushed_at")
    op.drop_table("ingest_batches")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_due")
        batch_op.create_index("ix_jobs_due", ["status", "run_at"], unique=False)
        batch_op.drop_column("priority")
