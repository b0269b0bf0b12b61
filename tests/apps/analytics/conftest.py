"""Fixtures of the analytics tests: an app serving analytics (the root `platform` and `client` fixtures
build on it), a trusted loopback proxy (so each simulated visitor has its own address), and a site owned
by a member."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.analytics.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import Account, account
from tests.servers import clickhouse  # noqa: F401  (one ClickHouse server per run, for the store tests)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["analytics"],
        ratelimit={"enabled": False},
        security={"trusted_proxies": ["127.0.0.1"]},
        analytics={"max_clock_skew": 7200, "session_timeout": 600},
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
async def owner(platform: Platform) -> Account:
    return await account(platform)


@pytest.fixture
async def site(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    response = await client.post(
        "/api/analytics/sites",
        json={"domain": "shop.example", "hosts": ["shop-cdn.example"], "excluded_paths": ["/admin/*"]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body
