"""Test harness: a real database per run (SQLite, PostgreSQL, MariaDB), each test in a rolled-back
transaction, the app driven in-process through httpx, the network limited to loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pentad.app import create_app
from pentad.apps import INSTALLED
from pentad.core.config import Settings
from pentad.core.db.engine import Database, create_engine
from pentad.core.db.migrate import upgrade_async
from pentad.core.platform import Platform
from tests.databases import scratch_database, selected_databases
from tests.factories import TEST_CRYPTO_KEYS, TEST_SECRET_KEY

# The test databases hold every installed app's tables; each test's app decides which apps it serves.
ALL_APPS = [app.load_spec() for app in INSTALLED.values()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `one_engine` needs a database but not a particular one: it runs on the first
    selected engine only, and its other-engine variants are deselected (not collected as skips)."""
    first = selected_databases()[0] if selected_databases() else None
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("database_url") if callspec is not None else None
        if engine is not None and engine != first and item.get_closest_marker("one_engine"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may only talk to this machine."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host = str(address[0])
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                raise OSError(f"tests may not connect to {host}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session", params=selected_databases())
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A fresh, migrated database for this test run."""
    async with scratch_database(request.param, tmp_path_factory.mktemp("db")) as url:
        await upgrade_async(url, ALL_APPS)
        yield url


@pytest.fixture(scope="module", params=selected_databases())
async def scratch_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """An empty database of the module's own on each engine: migration tests move it through revisions
    (the shared `database_url` stays at heads)."""
    async with scratch_database(request.param, tmp_path_factory.mktemp("scratch")) as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    from pentad.core.config import DatabaseSettings

    engine = create_engine(DatabaseSettings(url=database_url, pool_size=5))  # type: ignore[call-arg]
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The test's outer transaction; everything the test wrote is rolled back afterwards."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
def database(connection: AsyncConnection) -> Database:
    return Database.bound_to(connection)


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "data_dir": data_dir,
        "database": {"url": database_url},
        "auth": {"secret_key": TEST_SECRET_KEY},
        "crypto": {"keys": TEST_CRYPTO_KEYS},
        "log": {"level": "WARNING", "json_format": True},
        "apps": [],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}  # type: ignore[dict-item]
        else:
            values[key] = value
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[])


@pytest.fixture
def platform(app: FastAPI) -> Platform:
    platform: Platform = app.state.platform
    return platform


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
