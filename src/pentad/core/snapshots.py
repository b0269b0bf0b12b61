"""PolledSnapshot: a process's in-memory copy of some rows, for hot paths that must not read the database
(an ingest route's site list, an ad server's zones).

It loads on first use, then reads a cheap signature of the rows (counts, versions, latest change) at most
every `poll` seconds, in the background: the request that notices the interval passed does not wait, it
answers from the copy it has. A change made in this process is seen at once (`invalidate()` after the
commit; the next use reloads); a change made by another process within `poll` seconds. Subclasses say how
to read the signature and the rows; keep one per process as an app resource (`AppSpec.resources`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.context import AppContext

T = TypeVar("T")

logger = structlog.get_logger("pentad.snapshots")


class PolledSnapshot(Generic[T]):
    """Rows of type T kept in memory, reloaded when their signature moves."""

    name = "snapshot"
    """Names the snapshot in the warning logged when a background check fails."""

    def __init__(self, context: AppContext, poll: float, empty: T) -> None:
        self._context = context
        self._poll = poll
        self._value = empty
        self._signature: Hashable | None = None
        self._checked_at = 0.0
        self._stale = True
        self._lock = asyncio.Lock()
        self._check: asyncio.Task[None] | None = None

    async def read_signature(self, session: AsyncSession) -> Hashable:
        """Something cheap to read that changes whenever the rows do."""
        raise NotImplementedError

    async def load(self, session: AsyncSession) -> T:
        """The rows, as the hot path reads them."""
        raise NotImplementedError

    async def current(self) -> T:
        """The copy to answer from: reloaded first when stale, checked in the background when due."""
        if self._stale:
            await self.reload()
        elif time.monotonic() - self._checked_at >= self._poll and self._check is None:
            self._checked_at = time.monotonic()
            self._check = asyncio.get_running_loop().create_task(self._check_in_background())
        return self._value

    def invalidate(self) -> None:
        """The rows changed in this process: the next use reloads (call after the commit)."""
        self._stale = True

    async def reload(self) -> None:
        async with self._lock:
            if not self._stale:
                return
            async with self._context.database.transaction(writes=False) as session:
                signature = await self.read_signature(session)
                value = await self.load(session)
            self._value, self._signature = value, signature
            self._checked_at = time.monotonic()
            self._stale = False

    async def check(self) -> bool:
        """Read the signature now and reload when it moved (another process changed the rows); whether
        it did."""
        async with self._context.database.transaction(writes=False) as session:
            signature = await self.read_signature(session)
        self._checked_at = time.monotonic()
        if signature == self._signature:
            return False
        self._stale = True
        await self.reload()
        return True

    async def _check_in_background(self) -> None:
        try:
            await self.check()
        except Exception:
            logger.warning("snapshot_check_failed", snapshot=self.name, exc_info=True)
        finally:
            self._check = None

    async def close(self) -> None:
        if self._check is not None:
            self._check.cancel()
            with contextlib.suppress(BaseException):
                await self._check
