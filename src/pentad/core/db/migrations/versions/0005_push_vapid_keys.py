"""push: the platform's VAPID key pair moves to the core (push_vapid_keys), for every app's Web Push

Revision ID: 0005_push_vapid_keys
Revises: 0004_events_and_queues
Create Date: 2026-12-04 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "0005_push_vapid_keys"
down_revision: str | Sequence[str] | None = "0004_events_and_queues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_vapid_keys",
        sa.Column("public_key", sa.String(length=200), nullable=False),
        sa.Column("private_key", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_vapid_keys")),
    )


def downgrade() -> None:
    op.drop_table("push_vapid_keys")
