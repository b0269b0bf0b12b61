"""The migrations build exactly the tables the models describe, on every database: a model changed
without a migration (or a migration without its model change) fails here, not in production."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.core.db.base import Base
from pentad.core.db.partitions import child_parent

# Objects the models do not describe on purpose: the migrations' own bookkeeping and chat's engine-specific
# search index (an FTS5 virtual table and its shadow tables on SQLite, a GIN expression index on PostgreSQL),
# and the per-period tables of partitioned tables (core/db/partitions.py) with their indexes.
UNMODELLED_PREFIXES = ("alembic_version", "chat_messages_fts", "ix_chat_messages_search")


def _relevant(diff: Any) -> bool:
    entries = diff if isinstance(diff, list) else [diff]
    for entry in entries:
        for part in entry:
            name = getattr(part, "name", None)
            if isinstance(name, str) and name.startswith(UNMODELLED_PREFIXES):
                return False
            table = getattr(part, "table", None)
            for named in (part, table):
                if isinstance(named, sa.Table) and child_parent(named.name) is not None:
                    return False
    return True


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def compare(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        differences = await connection.run_sync(compare)
    assert [d for d in differences if _relevant(d)] == []


def test_migrate_check_says_whether_the_schema_is_current_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pentad migrate --check`: what a pod's init step waits on while the migration job runs."""
    from click.testing import CliRunner

    from pentad.cli import main

    database = tmp_path / "check.db"
    monkeypatch.setenv("PENTAD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PENTAD_DATABASE__URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.setenv("PENTAD_APPS", "chat")
    runner = CliRunner()

    before = runner.invoke(main, ["migrate", "--check"])
    assert before.exit_code == 1
    assert "migrations pending" in before.output
    # The check created no table: the database is still empty.
    with sqlite3.connect(database) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert [name for (name,) in tables if name != "alembic_version"] == []

    assert runner.invoke(main, ["migrate"]).exit_code == 0
    after = runner.invoke(main, ["migrate", "--check", "--wait", "5"])
    assert after.exit_code == 0, after.output
    assert "up to date" in after.output

    # Another app enabled later has migrations this database has not run yet.
    monkeypatch.setenv("PENTAD_APPS", "chat,streams")
    assert runner.invoke(main, ["migrate", "--check"]).exit_code == 1
