"""Fixtures of the ingest tests: the fake ESI (one server per session, reset per test, its clock frozen),
and a platform serving the market app against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.market.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from tests.apps.market.esi_support import CONTACT, FROZEN_AT, FakeEsiServer, start_fake_esi
from tests.conftest import make_settings


@pytest.fixture(scope="session")
async def fake_esi_server() -> AsyncIterator[FakeEsiServer]:
    async for server in start_fake_esi():
        yield server


@pytest.fixture
def esi(fake_esi_server: FakeEsiServer) -> FakeEsiServer:
    fake_esi_server.fake.reset()
    fake_esi_server.fake.freeze(FROZEN_AT)
    fake_esi_server.sleeps.clear()
    return fake_esi_server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake_esi_server: FakeEsiServer) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["market"],
        ratelimit={"enabled": False},
        market={
            "contact": CONTACT,
            "esi_base_url": fake_esi_server.url,
            "hubs": "jita:60003760:10000002,amarr:60008494:10000043",
        },
    )


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[APP])
