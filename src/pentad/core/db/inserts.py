"""INSERT helpers for many rows: in parts that leave the event loop free, and INSERT-or-skip on every engine.

Preparing a statement's rows (pydantic's model_dump, SQLAlchemy's parameter processing) runs on the event
loop, about 8 µs a row: a 2,000-row executemany held every request of the process for ~16 ms, which was
the analytics ingest's p99 (bench/analytics.py). `execute_in_parts` runs the statement for PART_ROWS rows
at a time, each an executemany (a prepared statement run over the rows by sqlite3, one pipelined round
trip on asyncpg, multi-row VALUES on the MySQL drivers), so requests are served between the parts; in
parts of 100 the longest hold is ~3 ms, at the same CPU per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Executable
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

PART_ROWS = 100


async def execute_in_parts(
    session: AsyncSession, statement: Executable, rows: Sequence[BaseModel] | Sequence[Mapping[str, Any]]
) -> None:
    """Execute `statement` (an INSERT) for `rows` (models, dumped here, or dicts), PART_ROWS at a time."""
    for start in range(0, len(rows), PART_ROWS):
        part = rows[start : start + PART_ROWS]
        values = [row.model_dump() if isinstance(row, BaseModel) else row for row in part]
        await session.execute(statement, values)


def insert_ignore(session: AsyncSession, table: Any) -> Any:
    """INSERT that skips rows whose key is already stored (ON CONFLICT DO NOTHING, MySQL's INSERT IGNORE)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return mysql.insert(table).prefix_with("IGNORE")
