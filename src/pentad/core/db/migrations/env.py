"""Alembic environment: runs migrations over the async engine on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import pentad.core.audit
import pentad.core.auth.models
import pentad.core.jobs.models
import pentad.core.push
import pentad.core.visitors.ids  # noqa: F401  (registers the core tables on Base.metadata)
from pentad.core.config import DatabaseSettings
from pentad.core.db.base import Base
from pentad.core.db.engine import create_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        # Also after a failed migration: a connection left to the garbage collector outlives its loop.
        await engine.dispose()


url: str = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url") or ""
if context.is_offline_mode():
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(url))
