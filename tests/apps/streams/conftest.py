"""Fixtures of the streams tests: an app serving streams (the root `platform` and `client` fixtures build
on it), the hub running, and accounts to act as."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.streams.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import Account, account


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, apps=["streams"], ratelimit={"enabled": False})


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[APP])


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    """The hub's broker running, as it does in a served app (the lifespan starts it)."""
    await platform.hub.start()
    yield
    await platform.hub.stop()


@pytest.fixture
async def owner(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)


@pytest.fixture
async def stranger(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)
