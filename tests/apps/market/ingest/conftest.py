"""Fixtures of the ingest tests: the fake ESI (one server per session, reset per test, its clock frozen),
and a platform serving the market app against it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.market.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from tests.apps.market.esi_support import CONTACT, FakeEsiServer
from tests.conftest import make_settings


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
