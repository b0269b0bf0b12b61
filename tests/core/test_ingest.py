"""Buffered ingest: rows appended one by one reach the database in a few batched INSERTs; rows a killed
process accepted are stored by the next one, once; a batch stored before a crash is not stored again; a
failed flush keeps its rows for the next try; a live process's spool is never taken."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from pentad.core import ingest as ingest_module
from pentad.core.config import DatabaseSettings
from pentad.core.context import AppContext
from pentad.core.db.base import UTCDateTime
from pentad.core.db.engine import Database
from pentad.core.db.inserts import PART_ROWS, execute_in_parts
from pentad.core.ingest import (
    FlushContext,
    Ingest,
    IngestStream,
    UnknownStream,
    insert_into,
)
from pentad.core.jobs.models import IngestBatch
from tests.core.jobs.conftest import REPO, StatementLog, eventually

STREAM = "test.hits"
START = datetime(2026, 12, 1, tzinfo=UTC)


class Hit(BaseModel):
    id: int
    path: str
    at: datetime


def hits(count: int, first: int = 0) -> list[Hit]:
    return [
        Hit(id=n, path=f"/page/{n % 7}", at=START + timedelta(seconds=n)) for n in range(first, first + count)
    ]


class Target:
    """A table of its own for one test, on a live database (what the flusher commits is committed)."""

    def __init__(self, database: Database, folder: Path) -> None:
        self.database = database
        self.folder = folder
        self.table = Table(
            f"ingest_test_{uuid.uuid4().hex[:10]}",
            MetaData(),
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("path", String(100), nullable=False),
            Column("at", UTCDateTime(), nullable=False),
        )
        self.built: list[Ingest] = []

    def ingest(self, *, batch_size: int = 1000, flush: Any = None, interval: float = 3600.0) -> Ingest:
        stream = IngestStream(STREAM, Hit, flush or insert_into(self.table), batch_size, interval)
        ingest = Ingest(self.database, self.folder, [stream])
        self.built.append(ingest)
        return ingest

    async def stored(self) -> list[Hit]:
        async with self.database.transaction(writes=False) as session:
            rows = (await session.execute(select(self.table).order_by(self.table.c.id))).all()
        return [Hit(id=row.id, path=row.path, at=row.at) for row in rows]

    async def batches(self) -> int:
        async with self.database.transaction(writes=False) as session:
            count = await session.scalar(select(func.count()).where(IngestBatch.stream == STREAM))
        return int(count or 0)

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"{STREAM}/*/*.jsonl"))


@pytest.fixture
async def target(tmp_path: Path, database_url: str) -> AsyncIterator[Target]:
    database = Database.from_settings(DatabaseSettings(url=database_url))  # type: ignore[call-arg]
    target = Target(database, tmp_path / "ingest")
    async with database.engine.begin() as connection:
        await connection.run_sync(target.table.create)
    yield target
    for ingest in target.built:
        await ingest.close()
    async with database.engine.begin() as connection:
        await connection.run_sync(target.table.drop)
        await connection.execute(IngestBatch.__table__.delete().where(IngestBatch.stream == STREAM))
    await database.dispose()


async def test_ten_thousand_appends_are_stored_with_a_few_inserts(target: Target) -> None:
    ingest = target.ingest(batch_size=2500)
    await ingest.start()
    rows = hits(10_000)
    with StatementLog.of(target.database.engine) as log:
        for start in range(0, len(rows), 100):
            await ingest.append(STREAM, *rows[start : start + 100])
        await ingest.flush()
    # 4 batches (transactions), each inserted in executemany parts of PART_ROWS rows
    assert log.inserts_into(target.table.name) == 10_000 // PART_ROWS
    assert log.inserts_into("jobs") == 0
    assert await target.stored() == rows
    assert await target.batches() == 4
    assert target.segments() == []


async def test_a_big_batch_is_inserted_in_parts_with_the_event_loop_free_between_them(target: Target) -> None:
    """Preparing rows holds the event loop: a 2,000-row statement held every request of the process for
    ~16 ms. Other tasks run between the parts, and every row is stored in the one transaction."""
    rows = hits(3 * PART_ROWS + 7)
    turns = 0
    inserting = True

    async def other_requests() -> None:
        nonlocal turns
        while inserting:
            turns += 1
            await asyncio.sleep(0)

    async with target.database.transaction() as session:
        neighbour = asyncio.create_task(other_requests())
        await asyncio.sleep(0)
        started = turns
        with StatementLog.of(target.database.engine) as log:
            await execute_in_parts(session, target.table.insert(), rows)
        inserting = False
        await neighbour
    assert log.inserts_into(target.table.name) == 4
    assert turns - started >= 4  # the neighbour ran while each part was written
    assert await target.stored() == rows


async def test_appends_arriving_one_at_a_time_under_load_share_their_fsyncs(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 events/s arriving one at a time: a round that starts while traffic is flowing waits a moment
    for the next appends, so a few rounds cover them all (each round is a thread hand-off and an fsync);
    every append still returns only once its rows are fsynced."""
    ingest = target.ingest()
    await ingest.start()
    rounds: list[int] = []
    real = ingest_module._fsync_all

    def counted(fds: list[int]) -> None:
        rounds.append(len(fds))
        real(fds)

    monkeypatch.setattr(ingest_module, "_fsync_all", counted)
    await ingest.append(STREAM, *hits(1))  # the traffic before
    arrivals = 40

    async def one(number: int) -> None:
        await asyncio.sleep(number * 0.0005)
        before = ingest._written
        await ingest.append(STREAM, *hits(1, first=number + 1))
        assert ingest._synced > before  # returned only once an fsync covered its rows

    await asyncio.gather(*(one(number) for number in range(arrivals)))
    assert len(rounds) - 1 <= arrivals // 3  # one a round without the wait (23 measured), 8 with it
    await ingest.flush()
    assert len(await target.stored()) == arrivals + 1


async def test_a_partial_batch_is_flushed_by_the_background_task_after_its_interval(target: Target) -> None:
    ingest = target.ingest(batch_size=1000, interval=0.05)
    await ingest.start()
    for row in hits(30):
        ingest.append_nowait(STREAM, row)

    async def all_stored() -> bool:
        return len(await target.stored()) == 30

    await eventually(all_stored)
    assert await target.stored() == hits(30)
    assert await target.batches() == 1


async def test_close_stores_what_is_buffered(target: Target) -> None:
    ingest = target.ingest()
    await ingest.start()
    await ingest.append(STREAM, *hits(5))
    await ingest.close()
    assert await target.stored() == hits(5)
    assert target.segments() == []


# ------------------------------------------------------------------ crashes

APPEND_THEN_WAIT = """
import asyncio, sys
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import Database
from pentad.core.db.inserts import PART_ROWS, execute_in_parts
from pentad.core.ingest import Ingest, IngestStream, insert_into
from sqlalchemy import Column, Integer, MetaData, Table
from tests.core.test_ingest import STREAM, Hit, hits

async def main() -> None:
    database = Database.from_settings(DatabaseSettings(url=sys.argv[2]))
    unused = Table("unused", MetaData(), Column("id", Integer))
    stream = IngestStream(STREAM, Hit, insert_into(unused), batch_size=100_000, flush_interval=3600)
    ingest = Ingest(database, __import__("pathlib").Path(sys.argv[1]), [stream])
    rows = hits(2500)
    for start in range(0, len(rows), 250):
        await ingest.append(STREAM, *rows[start : start + 250])
    print("appended", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_rows_a_killed_process_accepted_are_stored_once_by_the_next(
    target: Target, database_url: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        APPEND_THEN_WAIT,
        str(target.folder),
        database_url,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert line.strip() == b"appended"
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    (segment,) = target.segments()
    with segment.open("a") as spool:
        spool.write('{"id": 99999, "path": "/cut sho')  # a write the crash cut short: never accepted

    replays: list[bool] = []
    insert = insert_into(target.table)

    async def recording(flush: FlushContext, rows: Any) -> None:
        replays.append(flush.replay)
        await insert(flush, rows)

    first = target.ingest(batch_size=1000, flush=recording)
    await first.start()
    assert await first.flush() == 2500
    assert replays == [True]
    assert await target.stored() == hits(2500)
    second = target.ingest(batch_size=1000)
    await second.start()
    assert await second.flush() == 0
    assert await target.stored() == hits(2500)
    assert target.segments() == []


async def test_a_batch_stored_just_before_a_crash_is_not_stored_again(target: Target, tmp_path: Path) -> None:
    ingest = target.ingest()
    await ingest.start()
    await ingest.append(STREAM, *hits(40))
    # The crash falls between the commit and the deletion of the segment: keep a copy to put back.
    (segment,) = target.segments()
    kept = tmp_path / segment.name
    shutil.copy(segment, kept)
    assert await ingest.flush() == 40
    orphan = target.folder / STREAM / "crashed-process"
    orphan.mkdir()
    shutil.copy(kept, orphan / segment.name)

    restarted = target.ingest()
    await restarted.start()
    assert await restarted.flush() == 0
    assert await target.stored() == hits(40)
    assert await target.batches() == 1
    assert target.segments() == []
    assert not orphan.exists()


async def test_a_failed_flush_keeps_its_rows_for_the_next_try(target: Target) -> None:
    insert = insert_into(target.table)
    attempts: list[int] = []

    tries: list[tuple[uuid.UUID, bool]] = []

    async def flaky(flush: FlushContext, rows: Any) -> None:
        attempts.append(len(rows))
        tries.append((flush.batch_id, flush.replay))
        await insert(flush, rows)
        if len(attempts) == 1:
            raise ConnectionError("database went away mid-batch")

    ingest = target.ingest(flush=flaky)
    await ingest.start()
    await ingest.append(STREAM, *hits(10))
    with pytest.raises(ConnectionError):
        await ingest.flush()
    assert await target.stored() == []
    assert len(target.segments()) == 1
    assert await ingest.flush() == 10
    assert attempts == [10, 10]
    assert await target.stored() == hits(10)
    (first_batch, first_replay), (second_batch, second_replay) = tries
    assert first_batch == second_batch
    assert (first_replay, second_replay) == (False, True)


async def test_a_live_process_spool_is_never_taken(target: Target) -> None:
    alive = target.ingest()
    await alive.append(STREAM, *hits(3))
    other = target.ingest()
    await other.start()
    assert await other.flush() == 0
    assert await target.stored() == []
    assert await alive.flush() == 3


async def test_append_refuses_rows_of_another_model_and_unknown_streams(target: Target) -> None:
    class Other(BaseModel):
        id: int

    ingest = target.ingest()
    with pytest.raises(TypeError, match="takes Hit, not Other"):
        ingest.append_nowait(STREAM, Other(id=1))
    with pytest.raises(UnknownStream):
        ingest.append_nowait("test.nothing", *hits(1))
    assert target.segments() == []


def test_streams_are_checked_when_built(tmp_path: Path) -> None:
    database = Database.from_settings(DatabaseSettings(url="sqlite+aiosqlite://"))  # type: ignore[call-arg]
    stream = IngestStream(STREAM, Hit, insert_into(Table("t", MetaData(), Column("id", Integer))))
    with pytest.raises(ValueError, match="declared twice"):
        Ingest(database, tmp_path, [stream, stream])
    with pytest.raises(ValueError, match="batch_size"):
        Ingest(database, tmp_path, [IngestStream(STREAM, Hit, stream.flush, batch_size=0)])


async def test_a_flush_gets_the_app_context_its_stream_and_the_recorded_batch_id(target: Target) -> None:
    class Context:
        """The part of an AppContext this flush reads (the Platform binds itself in production)."""

        base_url = "https://stats.example"

    seen: list[tuple[str, str, uuid.UUID, bool, int]] = []
    insert = insert_into(target.table)

    async def flush(context: FlushContext, rows: Any) -> None:
        seen.append(
            (context.context.base_url, context.stream.name, context.batch_id, context.replay, len(rows))
        )
        await insert(context, rows)

    ingest = target.ingest(flush=flush)
    ingest.bind(cast(AppContext, Context()))
    await ingest.append(STREAM, *hits(7))
    assert await ingest.flush() == 7
    ((base_url, stream, batch_id, replay, count),) = seen
    assert (base_url, stream, replay, count) == ("https://stats.example", STREAM, False, 7)
    async with target.database.transaction(writes=False) as session:
        recorded = await session.scalars(select(IngestBatch.batch_id).where(IngestBatch.stream == STREAM))
        assert list(recorded) == [batch_id]


async def test_an_unbound_ingest_refuses_a_flush_that_asks_for_the_context(target: Target) -> None:
    async def flush(context: FlushContext, _rows: Any) -> None:
        context.context.app_settings(BaseModel)

    ingest = target.ingest(flush=flush)
    await ingest.append(STREAM, *hits(1))
    with pytest.raises(RuntimeError, match="not bound"):
        await ingest.flush()
    assert await target.batches() == 0
    assert len(target.segments()) == 1
