"""Shared fixtures of the market tests: the shipped static data subset, imported once per database, and an
app serving the market app only (the root `platform` and `client` fixtures build on it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pentad.app import create_app
from pentad.apps.market import sde
from pentad.apps.market.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from tests.apps.market.esi_support import FROZEN_AT, FakeEsiServer, start_fake_esi
from tests.conftest import make_settings


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


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, apps=["market"], ratelimit={"enabled": False})


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[APP])


@pytest.fixture(scope="session")
async def fake_esi_server() -> AsyncIterator[FakeEsiServer]:
    """The fake ESI (tests/fakes/market/esi.py) on a loopback port, one for the whole run."""
    async for server in start_fake_esi():
        yield server


@pytest.fixture
def esi(fake_esi_server: FakeEsiServer) -> FakeEsiServer:
    """The fake ESI, reset, its clock frozen at FROZEN_AT."""
    fake_esi_server.fake.reset()
    fake_esi_server.fake.freeze(FROZEN_AT)
    fake_esi_server.sleeps.clear()
    return fake_esi_server
