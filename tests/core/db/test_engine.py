"""core/db/engine.py on SQLite: every statement makes one hop to the connection's thread (OneHopCursor), and
what SQLAlchemy reads of a statement is unchanged: rows, rowcount, RETURNING, executemany, errors, the
connection pragmas and BEGIN IMMEDIATE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import OneHopConnection, create_engine, write_intent


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'hop.db'}"))
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        await connection.execute(
            text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))")
        )
    yield engine
    await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to a connection's thread, by name."""
    sent: list[str] = []
    execute = OneHopConnection._execute

    async def counting(self: OneHopConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneHopConnection, "_execute", counting)
    return sent


async def test_a_statement_is_one_hop_and_reads_as_before(engine: AsyncEngine, hops: list[str]) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, OneHopConnection)
        await connection.execute(text("SELECT 1"))  # the BEGIN and a first statement
        hops.clear()
        inserted = await connection.execute(
            text("INSERT INTO parent (name) VALUES (:name) RETURNING id"), [{"name": "a"}]
        )
        assert inserted.scalar_one() == 1
        await connection.execute(
            text("INSERT INTO parent (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}]
        )
        updated = await connection.execute(text("UPDATE parent SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        rows = await connection.execute(text("SELECT id, name FROM parent ORDER BY id"))
        assert rows.fetchone() == (1, "a")
        assert rows.fetchmany(1) == [(2, "b!")]
        assert rows.fetchall() == [(3, "c!")]
        empty = await connection.execute(text("SELECT id FROM parent WHERE id < 0"))
        assert empty.first() is None
        await connection.commit()
    # Five statements, five hops (aiosqlite's own cursor makes up to four per statement), then the commit
    # and the pool's reset when the connection goes back.
    assert hops == ["_run"] * 5 + ["commit", "rollback"]


async def test_errors_surface_and_the_connection_goes_on(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO parent (name) VALUES ('a')"))
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO parent (name) VALUES ('a')"))
        await connection.rollback()
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):  # PRAGMA foreign_keys=ON still applies
            await connection.execute(text("INSERT INTO child (parent_id) VALUES (42)"))
        await connection.rollback()
        assert (await connection.execute(text("SELECT count(*) FROM parent"))).scalar_one() == 0
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"


async def test_write_intent_still_begins_immediate(engine: AsyncEngine, tmp_path: Path) -> None:
    async with engine.connect() as writer:
        with write_intent():
            await writer.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the write lock is held from here
        other = create_engine(
            DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'hop.db'}", sqlite_busy_timeout_ms=50)
        )
        try:
            async with other.connect() as second:
                with write_intent(), pytest.raises(Exception, match="locked"):
                    await second.execute(text("SELECT 1"))
        finally:
            await other.dispose()
        await writer.rollback()
