"""delete_on_rollback: an object put for a row that is never committed is deleted again, whether the
transaction is refused or its commit fails; a committed one stays."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pentad.core.db.engine import Database
from pentad.core.storage import ObjectNotFound, Storage, delete_on_rollback

pytestmark = pytest.mark.one_engine  # the hooks are the same on every engine


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read(storage: Storage, key: str) -> bytes:
    _, body = await storage.get(key)
    return b"".join([chunk async for chunk in body])


async def _put(storage: Storage, key: str) -> None:
    await storage.put(key, _one_chunk(b"creative"), content_type="text/plain", max_bytes=100)


async def test_a_refused_transaction_leaves_no_file(local_storage: Storage, database: Database) -> None:
    async def refused() -> None:
        async with database.transaction() as session:
            await _put(local_storage, "ads/refused/a.txt")
            await _put(local_storage, "ads/refused/b.txt")
            delete_on_rollback(session, local_storage, ["ads/refused/a.txt", "ads/refused/b.txt"])
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused()
    for key in ("ads/refused/a.txt", "ads/refused/b.txt"):
        with pytest.raises(ObjectNotFound):
            await _read(local_storage, key)


async def test_a_committed_transaction_keeps_its_file(local_storage: Storage, database: Database) -> None:
    async with database.transaction() as session:
        await _put(local_storage, "ads/kept/a.txt")
        delete_on_rollback(session, local_storage, ["ads/kept/a.txt"])
    assert await _read(local_storage, "ads/kept/a.txt") == b"creative"
