"""Shared fixtures of the market tests: the shipped static data subset, imported once per database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pentad.apps.market import sde
from pentad.core.db.engine import Database


@pytest.fixture(scope="module")
async def subset_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose outer transaction holds the imported subset for the whole module (rolled back at
    its end); tests get a savepoint of it each (`static_db`)."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        async with Database.bound_to(connection).transaction() as session:
            await sde.import_subset(session)
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
async def static_db(subset_connection: AsyncConnection) -> AsyncIterator[Database]:
    """A database holding the subset; what the test writes is rolled back."""
    savepoint = await subset_connection.begin_nested()
    yield Database.bound_to(subset_connection)
    if savepoint.is_active:
        await savepoint.rollback()
