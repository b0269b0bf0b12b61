"""Buffered ingest: append rows fast and durably, store them in the database in batches.

For high-volume writes (analytics events, ad impressions) where one transaction, or one job, per row
would cost more than the row. An app declares a stream with the pydantic model of its rows and a flush
callback that stores a batch (normally one batched INSERT, `insert_into(table)`):

    HITS = IngestStream("analytics.hits", Hit, insert_into(hits_table), batch_size=2000)
    AppSpec(ingest=[HITS])
    await context.ingest.append("analytics.hits", Hit(...))        # on disk when it returns

A flush callback gets a `FlushContext` (the transaction's session, the app context for settings and
resources, the stream, the batch id, and `replay`: whether this batch may have been tried before, because a
crashed process left it or an earlier attempt failed) and the rows. Writes to the session commit with the
batch id; a store outside the database (ClickHouse) uses the batch id to make a replayed batch idempotent.

The spool. Every process has its own spool folder per stream, `<data dir>/ingest/<stream>/<id>/`, held
with an exclusive lock (flock) while the process lives. `append` writes the rows as JSON lines to the
open segment file and waits for an fsync that it shares with every append made meanwhile (group commit;
while traffic flows, a round waits GROUP_COMMIT_DELAY for more appends to share it);
`append_nowait` returns once the rows reached the operating system (they survive the process, and are
fsynced before they are flushed). A segment holds at most `batch_size` rows; it is one batch, named by a
UUIDv7 batch id.

Flushing. A background task flushes each full segment, and a partial one once it is `flush_interval`
seconds old: in one transaction it calls the stream's flush callback and records the batch id in
`ingest_batches`; after the commit it deletes the segment. A process that crashed leaves its folder
unlocked: the next process to start (any of them) takes its segments and flushes them, skipping the
segments whose batch id is already recorded (committed before the crash, not yet deleted). So every row
that was accepted is stored, and none twice. Batch ids are kept for PENTAD_JOBS__RETENTION_DAYS.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.context import AppContext
from pentad.core.db.base import uuid7
from pentad.core.db.inserts import execute_in_parts
from pentad.core.jobs import repository

if TYPE_CHECKING:
    from pentad.core.db.engine import Database

logger = structlog.get_logger("pentad.ingest")


class FlushContext:
    """What a flush callback gets besides its rows: the transaction that records the batch (`session`),
    the app context (`context`: settings, resources, ...), the `stream`, the `batch_id` (a UUIDv7, the same
    on every attempt of the batch) and `replay`: True when the batch was adopted from a crashed process's
    spool or an earlier attempt to store it failed (so it may already be partly stored outside the
    database)."""

    __slots__ = ("_context", "batch_id", "replay", "session", "stream")

    def __init__(
        self,
        session: AsyncSession,
        context: AppContext | None,
        stream: IngestStream,
        batch_id: uuid.UUID,
        *,
        replay: bool,
    ) -> None:
        self.session = session
        self._context = context
        self.stream = stream
        self.batch_id = batch_id
        self.replay = replay

    @property
    def bound(self) -> bool:
        """Whether the Ingest is bound to a platform (`context` answers); only a flush's unit test is not."""
        return self._context is not None

    @property
    def context(self) -> AppContext:
        if self._context is None:
            raise RuntimeError("this Ingest is not bound to a platform (Ingest.bind)")
        return self._context


FlushRows = Callable[[FlushContext, Sequence[BaseModel]], Awaitable[None]]

LOCK_FILE = "lock"
SEGMENT_SUFFIX = ".jsonl"
RETRY_MAX = 30.0
GROUP_COMMIT_DELAY = 0.002
"""Seconds an fsync round waits, when the previous one ended less than BUSY_GAP ago, for more appends to
share it. At 2,000 events/s one at a time a round covered one or two appends, and the rounds (a thread
hand-off and the kernel's fsync) took a quarter of the core: with the wait, 93 % -> 69 % of a core at that
rate (bench/analytics.py), for 1 ms more at the median. An append with no traffic before it is not held."""
BUSY_GAP = 0.05


@dataclass(frozen=True)
class IngestStream:
    """A stream of rows of `row` (a pydantic model), named `<app>.<what>`, stored by `flush` in batches of
    at most `batch_size` rows; a partial batch waits at most `flush_interval` seconds."""

    name: str
    row: type[BaseModel]
    flush: FlushRows
    batch_size: int = 1000
    flush_interval: float = 1.0


def insert_into(table: Table | Any) -> FlushRows:
    """A flush callback that inserts a batch into `table` (a Table or a mapped class) in executemany parts
    (core/db/inserts.py), measured 5-12x faster than SQLAlchemy compiling one VALUES list of the rows."""
    target: Table = table if isinstance(table, Table) else table.__table__

    async def flush(flush: FlushContext, rows: Sequence[BaseModel]) -> None:
        await execute_in_parts(flush.session, insert(target), rows)

    return flush


@dataclass
class _Segment:
    batch_id: uuid.UUID
    path: Path
    rows: list[BaseModel] = field(default_factory=list)
    fd: int | None = None
    dirty: bool = False
    opened_at: float = 0.0
    replay: bool = False
    """Adopted from a crashed process, or an attempt to store it failed."""


class _Spool:
    """One stream's segments in this process: the open one and the sealed ones waiting for a flush."""

    def __init__(self, stream: IngestStream, base: Path) -> None:
        self.stream = stream
        self.base = base
        self.folder: Path | None = None
        self.lock_fd: int | None = None
        self.active: _Segment | None = None
        self.sealed: deque[_Segment] = deque()
        self.retry_at = 0.0
        self.retry_delay = 0.0

    def open(self) -> None:
        """Take a folder of our own, locked while this process lives; renamed into place only once locked,
        so no other process mistakes it for the folder of a crashed one."""
        if self.folder is not None:
            return
        self.base.mkdir(parents=True, exist_ok=True)
        name = uuid7().hex
        staging = self.base / f".{name}"
        staging.mkdir()
        self.lock_fd = os.open(staging / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        staging.rename(self.base / name)
        self.folder = self.base / name

    def write(self, rows: Sequence[BaseModel], now: float) -> bool:
        """Append rows to the open segment(s); True when a segment was sealed (full)."""
        assert self.folder is not None
        sealed = False
        position = 0
        while position < len(rows):
            if self.active is None:
                batch_id = uuid7()
                path = self.folder / f"{batch_id.hex}{SEGMENT_SUFFIX}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
                self.active = _Segment(batch_id, path, fd=fd, opened_at=now)
            segment = self.active
            room = self.stream.batch_size - len(segment.rows)
            chunk = rows[position : position + room]
            position += len(chunk)
            data = b"".join(row.model_dump_json().encode() + b"\n" for row in chunk)
            assert segment.fd is not None
            view = memoryview(data)
            while view:
                view = view[os.write(segment.fd, view) :]
            segment.rows.extend(chunk)
            segment.dirty = True
            if len(segment.rows) >= self.stream.batch_size:
                self.seal()
                sealed = True
        return sealed

    def seal(self) -> None:
        if self.active is not None and self.active.rows:
            self.sealed.append(self.active)
            self.active = None

    def segments(self) -> list[_Segment]:
        return [*self.sealed, *([self.active] if self.active else [])]

    def adopt_orphans(self) -> int:
        """Take the segments of crashed processes' folders (unlocked) into ours, as sealed batches."""
        assert self.folder is not None
        adopted = 0
        for folder in sorted(self.base.iterdir()):
            if folder == self.folder or folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                lock_fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock_fd)
                continue  # its process is alive
            try:
                for path in sorted(folder.glob(f"*{SEGMENT_SUFFIX}")):
                    target = self.folder / path.name
                    path.rename(target)
                    rows = self._read(target)
                    if rows:
                        self.sealed.append(_Segment(uuid.UUID(hex=path.stem), target, rows, replay=True))
                        adopted += len(rows)
                    else:
                        target.unlink()
                shutil.rmtree(folder, ignore_errors=True)
            finally:
                os.close(lock_fd)
        return adopted

    def _read(self, path: Path) -> list[BaseModel]:
        rows: list[BaseModel] = []
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line:
                continue
            try:
                rows.append(self.stream.row.model_validate_json(line))
            except ValidationError:
                # Only a write cut short by the crash can leave a broken line, and only the last one: its
                # append never returned, so the row was never accepted.
                logger.warning(
                    "ingest_torn_line_skipped", stream=self.stream.name, file=path.name, line=number
                )
        return rows

    def release(self) -> None:
        """Give up our folder: removed when empty, else left for the next process to adopt."""
        if self.folder is None:
            return
        for segment in self.segments():
            if segment.fd is not None:
                os.close(segment.fd)
                segment.fd = None
        if not any(self.folder.glob(f"*{SEGMENT_SUFFIX}")):
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        self.folder = None


class UnknownStream(LookupError):
    """append() named a stream no enabled app declares."""


class Ingest:
    """The platform's ingest streams in this process: their spools and the task that flushes them."""

    def __init__(
        self,
        database: Database,
        folder: Path,
        streams: Iterable[IngestStream],
        *,
        context: AppContext | None = None,
    ) -> None:
        self.database = database
        self._context = context
        self._spools: dict[str, _Spool] = {}
        for stream in streams:
            if stream.name in self._spools:
                raise ValueError(f"ingest stream {stream.name!r} is declared twice")
            if stream.batch_size < 1 or stream.flush_interval <= 0:
                raise ValueError(f"ingest stream {stream.name!r}: batch_size >= 1 and flush_interval > 0")
            self._spools[stream.name] = _Spool(stream, folder / stream.name)
        self._written = 0
        self._synced = 0
        self._sync_round: asyncio.Future[None] | None = None
        self._last_round_end = float("-inf")
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def streams(self) -> list[str]:
        return sorted(self._spools)

    def bind(self, context: AppContext) -> None:
        """The app context flush callbacks get (`FlushContext.context`); the Platform binds itself."""
        self._context = context

    async def start(self) -> None:
        """Open every stream's spool, adopt what crashed processes left, start flushing in the background."""
        for spool in self._spools.values():
            spool.open()
            adopted = spool.adopt_orphans()
            if adopted:
                logger.info("ingest_spool_replayed", stream=spool.stream.name, rows=adopted)
        self._start_flusher()
        self._wake.set()

    def _start_flusher(self) -> None:
        if self._flusher is None and not self._closing:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="pentad ingest")

    def _spool(self, stream: str) -> _Spool:
        spool = self._spools.get(stream)
        if spool is None:
            raise UnknownStream(f"no enabled app declares the ingest stream {stream!r}")
        return spool

    def append_nowait(self, stream: str, *rows: BaseModel) -> None:
        """Accept rows: written to the spool (they survive this process) before this returns, on disk
        after the next group fsync. TypeError for a row of another model than the stream's."""
        if self._closing:
            raise RuntimeError("ingest is closed")
        spool = self._spool(stream)
        for row in rows:
            if not isinstance(row, spool.stream.row):
                raise TypeError(
                    f"stream {stream!r} takes {spool.stream.row.__name__}, not {type(row).__name__}"
                )
        spool.open()
        self._start_flusher()
        self._written += 1
        if spool.write(rows, asyncio.get_running_loop().time()):
            self._wake.set()

    async def append(self, stream: str, *rows: BaseModel) -> None:
        """Accept rows durably: on disk (fsynced) when this returns."""
        self.append_nowait(stream, *rows)
        await self.sync()

    async def sync(self) -> None:
        """fsync every segment written so far. Callers share rounds: one fsync covers every write made
        before it started, and everyone waiting for it wakes when it ends."""
        target = self._written
        while self._synced < target:
            if self._sync_round is None:
                self._sync_round = asyncio.ensure_future(self._fsync_round())
            await asyncio.shield(self._sync_round)

    async def _fsync_round(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if loop.time() - self._last_round_end < BUSY_GAP:
                await asyncio.sleep(GROUP_COMMIT_DELAY)
            covered = self._written
            dirty = [
                segment
                for spool in self._spools.values()
                for segment in spool.segments()
                if segment.dirty and segment.fd is not None
            ]
            for segment in dirty:
                segment.dirty = False
            await asyncio.to_thread(_fsync_all, [segment.fd for segment in dirty if segment.fd is not None])
            self._synced = max(self._synced, covered)
        finally:
            self._sync_round = None
            self._last_round_end = loop.time()

    async def _quiesce_fsync(self) -> None:
        """Let a running fsync round end: a descriptor it holds must not be closed under it."""
        while self._sync_round is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sync_round)

    async def flush(self) -> int:
        """Store every accepted row now (partial batches too); returns the rows stored. Raises when the
        database refuses a batch (it stays in the spool)."""
        return await self._flush_sealed(raise_errors=True, seal=True)

    async def _flush_loop(self) -> None:
        while not self._closing:
            timeout = min((spool.stream.flush_interval for spool in self._spools.values()), default=1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            now = asyncio.get_running_loop().time()
            for spool in self._spools.values():
                active = spool.active
                if active is not None and now - active.opened_at >= spool.stream.flush_interval:
                    spool.seal()
            try:
                await self._flush_sealed(raise_errors=False)
            except Exception:
                logger.warning("ingest_flush_failed", exc_info=True)

    async def _flush_sealed(self, *, raise_errors: bool, seal: bool = False) -> int:
        stored = 0
        async with self._flush_lock:
            if seal:
                for spool in self._spools.values():
                    spool.seal()
            await self.sync()
            now = asyncio.get_running_loop().time()
            for spool in self._spools.values():
                if not raise_errors and spool.retry_at > now:
                    continue
                while spool.sealed:
                    segment = spool.sealed[0]
                    try:
                        stored += await self._store(spool.stream, segment)
                    except Exception:
                        segment.replay = True
                        spool.retry_delay = min(RETRY_MAX, max(0.5, spool.retry_delay * 2))
                        spool.retry_at = now + spool.retry_delay
                        if raise_errors:
                            raise
                        logger.warning(
                            "ingest_batch_not_stored",
                            stream=spool.stream.name,
                            batch_id=str(segment.batch_id),
                            retry_in=spool.retry_delay,
                            exc_info=True,
                        )
                        break
                    spool.retry_delay = 0.0
                    spool.sealed.popleft()
                    await self._quiesce_fsync()
                    if segment.fd is not None:
                        os.close(segment.fd)
                        segment.fd = None
                    segment.path.unlink(missing_ok=True)
        return stored

    async def _store(self, stream: IngestStream, segment: _Segment) -> int:
        async with self.database.transaction() as session:
            if await repository.ingest_batch_stored(session, stream.name, segment.batch_id):
                logger.info("ingest_batch_already_stored", stream=stream.name, batch_id=str(segment.batch_id))
                return 0
            context = FlushContext(session, self._context, stream, segment.batch_id, replay=segment.replay)
            await stream.flush(context, segment.rows)
            await repository.record_ingest_batch(session, stream.name, segment.batch_id, len(segment.rows))
        return len(segment.rows)

    async def close(self) -> None:
        """Flush what is buffered (what cannot be stored stays in the spool for the next start), stop."""
        self._closing = True
        if self._flusher is not None:
            self._wake.set()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if any(spool.segments() for spool in self._spools.values()):
            try:
                await self.flush()
            except Exception:
                logger.warning("ingest_flush_at_close_failed", exc_info=True)
        await self._quiesce_fsync()
        for spool in self._spools.values():
            spool.release()


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)
