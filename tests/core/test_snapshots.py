"""PolledSnapshot: the copy a hot path answers from, reloaded at once after a change in this process and
within the poll interval after another process's."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from pentad.core.platform import Platform
from pentad.core.snapshots import PolledSnapshot

pytestmark = pytest.mark.one_engine


class Counted(PolledSnapshot[list[int]]):
    """A snapshot of an in-memory 'table', counting its reads."""

    name = "test.counted"

    def __init__(self, platform: Platform, poll: float) -> None:
        super().__init__(platform, poll, [])
        self.rows: list[int] = []
        self.loads = 0
        self.fail_signature = False

    async def read_signature(self, session: AsyncSession) -> Hashable:
        if self.fail_signature:
            raise RuntimeError("signature unreadable")
        return tuple(self.rows)

    async def load(self, session: AsyncSession) -> list[int]:
        self.loads += 1
        return list(self.rows)


async def test_loads_once_and_answers_from_memory(platform: Platform) -> None:
    snapshot = Counted(platform, poll=3600)
    snapshot.rows = [1, 2]
    assert await snapshot.current() == [1, 2]
    snapshot.rows.append(3)  # another process's change, not yet due for a check
    assert await snapshot.current() == [1, 2]
    assert snapshot.loads == 1
    snapshot.invalidate()  # this process's change
    assert await snapshot.current() == [1, 2, 3]
    assert snapshot.loads == 2
    await snapshot.close()


async def test_a_due_check_reloads_in_the_background_only_when_the_signature_moved(
    platform: Platform,
) -> None:
    snapshot = Counted(platform, poll=0)
    snapshot.rows = [1]
    await snapshot.current()
    assert not await snapshot.check()
    assert snapshot.loads == 1
    snapshot.rows = [1, 5]
    assert await snapshot.current() == [1]  # answers at once, the check runs behind it
    for _ in range(100):
        if await snapshot.current() == [1, 5]:
            break
        await asyncio.sleep(0.01)
    assert await snapshot.current() == [1, 5]
    await snapshot.close()


async def test_a_failing_check_keeps_the_copy_and_is_logged(platform: Platform) -> None:
    snapshot = Counted(platform, poll=0)
    snapshot.rows = [7]
    await snapshot.current()
    snapshot.fail_signature = True
    with capture_logs() as logs:
        assert await snapshot.current() == [7]
        await asyncio.sleep(0.05)
    assert [log["snapshot"] for log in logs if log["event"] == "snapshot_check_failed"] == ["test.counted"]
    assert await snapshot.current() == [7]
    await snapshot.close()
