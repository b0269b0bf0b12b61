"""Re-encrypt every EncryptedText column with the key ring's active key (`pentad keys rotate`)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

import pentad.core.push
import pentad.core.visitors.ids  # noqa: F401  (the core tables with secrets, whether an app loaded them or not)
from pentad.core.crypto import KeyRing, column_context
from pentad.core.db.base import Base, EncryptedText


async def reencrypt_all(session: AsyncSession, keyring: KeyRing, *, batch: int = 500) -> int:
    """Returns how many values were re-encrypted. Values already under the active key are skipped."""
    changed = 0
    for table in Base.metadata.sorted_tables:
        encrypted = [column for column in table.columns if isinstance(column.type, EncryptedText)]
        if not encrypted:
            continue
        (primary,) = table.primary_key.columns  # encrypted values are bound to a single-column row id
        for column in encrypted:
            last = None
            while True:
                query = select(primary, column).where(column.is_not(None)).order_by(primary).limit(batch)
                if last is not None:
                    query = query.where(primary > last)
                rows = (await session.execute(query)).all()
                if not rows:
                    break
                for row_id, value in rows:
                    if keyring.needs_rotation(value):
                        context = column_context(table.name, column.name, row_id)
                        plaintext = keyring.decrypt(value, context=context)
                        fresh = keyring.encrypt(plaintext, context=context)
                        await session.execute(
                            update(table).where(primary == row_id).values({column.name: fresh})
                        )
                        changed += 1
                last = rows[-1][0]
    return changed
