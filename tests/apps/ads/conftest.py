"""Fixtures of the ads tests: an app serving ads (the root `platform` and `client` fixtures build on it)
and accounts to act as."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.ads.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import Account, account


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["ads"],
        ratelimit={"enabled": False},
        security={"trusted_proxies": ["127.0.0.1"]},
    )


@pytest.fixture
async def app(settings: Settings, database: Database) -> FastAPI:
    app = create_app(settings, database=database, apps=[APP])
    platform: Platform = app.state.platform
    await platform.open_resources()  # what the lifespan does in `pentad serve`
    # Batches are stored when a test calls `platform.ingest.flush()`, never by the background flusher on
    # the test's one database connection while a request uses it.
    platform.ingest._start_flusher = lambda: None  # type: ignore[method-assign]
    return app


@pytest.fixture
async def owner(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)


@pytest.fixture
async def stranger(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)
