"""Engines and sessions for SQLite (WAL), PostgreSQL and MariaDB/MySQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import Any

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
from pentad.core.db.hooks import run_after_commit

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


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
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
        """A session whose work commits on success, then runs its after-commit hooks.

        `writes=False` declares read-only work, which on SQLite does not take the write lock."""
        with write_intent(writes=writes):
            async with self.sessionmaker() as session:
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        await run_after_commit(session)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()
