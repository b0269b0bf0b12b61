"""chat: the VAPID key pair moves to the core's push_vapid_keys (chat_vapid_keys is dropped)

The private key is encrypted bound to its table, so it is re-encrypted on the way: this needs the key ring,
which `pentad migrate` hands the migrations. Browsers keep their subscriptions: the key pair is the same.

Revision ID: chat_0003
Revises: chat_0002
Create Date: 2026-12-04 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import pentad.core.db.base
from pentad.core.crypto import KeyRing, column_context

revision: str = "chat_0003"
down_revision: str | Sequence[str] | None = "chat_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0005_push_vapid_keys"


def _table(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Uuid()),
        sa.column("public_key", sa.String()),
        sa.column("private_key", sa.String()),
        sa.column("created_at", pentad.core.db.base.UTCDateTime()),
    )


def _move(source: str, target: str) -> None:
    """Copy every key pair from `source` to `target`, the private key re-encrypted for its new table."""
    rows = op.get_bind().execute(sa.select(_table(source))).mappings().all()
    if not rows:
        return
    keyring = context.config.attributes.get("keyring")
    if not isinstance(keyring, KeyRing):
        raise RuntimeError(
            "moving the VAPID key needs the key ring (PENTAD_CRYPTO__KEYS, or the generated key in the data "
            "directory): run `pentad migrate`"
        )
    moved = []
    for row in rows:
        old, new = (column_context(table, "private_key", row["id"]) for table in (source, target))
        private_key = keyring.encrypt(keyring.decrypt(row["private_key"], context=old), context=new)
        moved.append({**row, "private_key": private_key})
    op.bulk_insert(_table(target), moved)


def upgrade() -> None:
    _move("chat_vapid_keys", "push_vapid_keys")
    op.drop_table("chat_vapid_keys")


def downgrade() -> None:
    op.create_table(
        "chat_vapid_keys",
        sa.Column("public_key", sa.String(length=200), nullable=False),
        sa.Column("private_key", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_vapid_keys")),
    )
    _move("push_vapid_keys", "chat_vapid_keys")
    op.execute("DELETE FROM push_vapid_keys")
