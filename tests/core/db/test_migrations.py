"""The migrations build exactly the tables the models describe, on every database: a model changed
without a migration (or a migration without its model change) fails here, not in production."""

from __future__ import annotations

from typing import Any

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
