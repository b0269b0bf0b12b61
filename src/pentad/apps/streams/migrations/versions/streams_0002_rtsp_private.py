"""streams: whether an RTSP camera's private address was approved by a streams admin

Revision ID: streams_0002
Revises: streams_0001
Create Date: 2026-12-05 11:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "streams_0002"
down_revision: str | Sequence[str] | None = "streams_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("streams_cameras") as batch:
        batch.add_column(
            sa.Column("rtsp_private_allowed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("streams_cameras") as batch:
        batch.drop_column("rtsp_private_allowed")
