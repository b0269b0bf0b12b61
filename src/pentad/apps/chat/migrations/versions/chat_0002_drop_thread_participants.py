"""chat: drop chat_thread_participants (written on every reply, never read: a thread's participants are
its messages' authors)

Revision ID: chat_0002
Revises: chat_0001
Create Date: 2026-12-04 15:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "chat_0002"
down_revision: str | Sequence[str] | None = "chat_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("chat_thread_participants")


def downgrade() -> None:
    op.create_table(
        "chat_thread_participants",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["chat_messages.id"],
            name=op.f("fk_chat_thread_participants_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["chat_users.id"],
            name=op.f("fk_chat_thread_participants_user_id_chat_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "user_id", name=op.f("pk_chat_thread_participants")),
    )
