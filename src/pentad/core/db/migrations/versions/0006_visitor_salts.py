"""visitors: daily visitor-id salts (visitor_salts), encrypted, today's and yesterday's only

Revision ID: 0006_visitor_salts
Revises: 0005_push_vapid_keys
Create Date: 2026-12-04 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "0006_visitor_salts"
down_revision: str | Sequence[str] | None = "0005_push_vapid_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visitor_salts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("salt", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_visitor_salts")),
    )


def downgrade() -> None:
    op.drop_table("visitor_salts")
