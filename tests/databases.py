"""The database servers the tests use, and throw-away databases on them.

`scratch_database(kind, directory)` gives a test (or a module fixture) an empty database of its own, for
tests that move through migrations or let a server process commit into it; the per-run shared database
(`database_url` in conftest.py) stays at heads.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

SERVER_URLS = {
    "postgresql": os.environ.get(
        "PENTAD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("PENTAD_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"),
}
REQUIRE_SERVICES = os.environ.get("PENTAD_TEST_REQUIRE_SERVICES") == "1"


def selected_databases() -> list[str]:
    raw = os.environ.get("PENTAD_TEST_DATABASES", "sqlite,postgresql,mariadb")
    return [name.strip() for name in raw.split(",") if name.strip()]


def reachable(url: str) -> bool:
    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 0), timeout=1):
            return True
    except OSError:
        return False


def require_server(kind: str) -> str:
    """The admin URL of a database server, or skip (fail under PENTAD_TEST_REQUIRE_SERVICES=1)."""
    admin_url = SERVER_URLS[kind]
    if not reachable(admin_url):
        if REQUIRE_SERVICES:
            pytest.fail(f"{kind} is required (PENTAD_TEST_REQUIRE_SERVICES=1) but not reachable")
        pytest.skip(f"{kind} not reachable")
    return admin_url


async def create_server_database(admin_url: str) -> str:
    name = f"pentad_test_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f"CREATE DATABASE {name}"))
    await engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_server_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        if make_url(admin_url).get_backend_name() == "postgresql":
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    await engine.dispose()


@asynccontextmanager
async def scratch_database(kind: str, directory: Path) -> AsyncIterator[str]:
    """An empty database of `kind` ("sqlite" files go in `directory`), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / f'scratch-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin_url = require_server(kind)
    url = await create_server_database(admin_url)
    try:
        yield url
    finally:
        await drop_server_database(admin_url, url)
