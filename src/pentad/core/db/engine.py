"""Engines and sessions for SQLite (WAL), PostgreSQL and MariaDB/MySQL."""

from __future__ import annotations

import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pentad.core.config import DatabaseSettings
from pentad.core.db.hooks import run_after_commit, run_after_rollback

# SQLite transactions that will write must take the write lock up front (BEGIN IMMEDIATE): a deferred
# transaction that read first and then writes fails at once with "database is locked" if another writer
# committed in between, and the busy timeout does not help. Read-only work keeps cheap deferred BEGINs.
_sqlite_write_intent: ContextVar[bool] = ContextVar("pentad_sqlite_write_intent", default=False)


@contextmanager
def write_intent(*, writes: bool = True) -> Iterator[None]:
    """Declare whether the transactions opened inside this block will write."""
    token = _sqlite_write_intent.set(writes)
    try:
        yield
    finally:
        _sqlite_write_intent.reset(token)


SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _prepare_sqlite_file(url: str) -> None:
    """Create the database file readable by this user only (SQLite gives its -wal and -shm files the
    database file's mode), and make an existing one private if others could read it."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            if companion.stat().st_mode & 0o077:
                companion.chmod(0o600)
        except OSError:
            continue


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": settings.echo, "pool_pre_ping": settings.dialect != "sqlite"}
    if settings.dialect == "sqlite":
        _prepare_sqlite_file(settings.url)
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
    else:
        kwargs.update(pool_size=settings.pool_size, max_overflow=settings.max_overflow, pool_recycle=1800)
    engine = create_async_engine(settings.url, **kwargs)
    if settings.dialect == "sqlite":
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
    return engine


class _Statement:
    """The outcome of one statement, gathered in the connection's thread."""

    __slots__ = ("description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, *, many: bool = False) -> None:
        self.description = cursor.description
        self.rows: deque[Any] = deque(cursor.fetchall() if self.description and not many else ())
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, *, many: bool) -> _Statement:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        return _Statement(cursor, many=many)
    finally:
        cursor.close()


class OneHopCursor:
    """What SQLAlchemy's aiosqlite adapter asks of a cursor, with one hop to the connection's thread per
    statement: aiosqlite's own cursor makes four (open, execute, fetch all, close). The statement runs,
    its rows are fetched and the sqlite3 cursor is closed in that one hop; description, rowcount,
    lastrowid and the rows are read afterwards from what it gathered. So a result is always read whole,
    also for SQLAlchemy's "server side" cursors (Pentad streams no query results from SQLite)."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self._statement: _Statement | None = None

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> OneHopCursor:
        execute: Callable[..., Awaitable[_Statement]] = self._connection._execute
        self._statement = await execute(
            _run, self._connection._conn, sql, () if parameters is None else parameters, many=many
        )
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        return await self._run(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> OneHopCursor:
        return await self._run(sql, parameters, many=True)

    def _gathered(self) -> _Statement:
        if self._statement is None:
            raise sqlite3.ProgrammingError("no statement was executed on this cursor")
        return self._statement

    @property
    def description(self) -> Any:
        return None if self._statement is None else self._statement.description

    @property
    def rowcount(self) -> int:
        return -1 if self._statement is None else self._statement.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None if self._statement is None else self._statement.lastrowid

    async def fetchone(self) -> Any:
        rows = self._gathered().rows
        return rows.popleft() if rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._gathered().rows
        return [rows.popleft() for _ in range(min(len(rows), size or self.arraysize))]

    async def fetchall(self) -> list[Any]:
        rows = self._gathered().rows
        taken = list(rows)
        rows.clear()
        return taken

    async def close(self) -> None:
        self._statement = None


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection (its worker thread, commit, rollback, close) with OneHopCursor cursors."""

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)


def _one_hop_connect(database: str, **kwargs: Any) -> OneHopConnection:
    """aiosqlite.connect() with OneHopConnection (the arguments SQLAlchemy computed from the URL)."""

    def connector() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return connection

    connection = OneHopConnection(connector, iter_chunk_size=64)
    connection._thread.daemon = True
    return connection


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        # SQLAlchemy's documented hook for how a DBAPI connection is made: the aiosqlite adapter wraps
        # whatever `async_creator_fn` returns.
        creator: Callable[..., OneHopConnection] = _one_hop_connect
        return dialect.loaded_dbapi.connect(*cargs, async_creator_fn=creator, **cparams)

    # The sqlite3 module's own transaction handling breaks SAVEPOINT and transactional DDL;
    # SQLAlchemy's documented fix is to disable it and emit BEGIN ourselves.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_write_intent.get() else "BEGIN")


class Database:
    """Owns the engine and hands out sessions; one transaction per unit of work."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        owns_engine: bool = True,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self._owns_engine = owns_engine

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> Database:
        engine = create_engine(settings)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False, autoflush=True))

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions that live inside an outer transaction (tests roll it back afterwards)."""
        sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        return cls(connection.engine, sessionmaker, owns_engine=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self, *, writes: bool = True) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success, then runs its after-commit hooks (on failure: rolls
        back and runs its after-rollback hooks).

        `writes=False` declares read-only work, which on SQLite does not take the write lock."""
        with write_intent(writes=writes):
            async with self.sessionmaker() as session:
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    await run_after_rollback(session)
                    raise
        await run_after_commit(session)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()
