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
from tests.apps.ads.support import Account, account
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, apps=["ads"])


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[APP])


@pytest.fixture
async def owner(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)


@pytest.fixture
async def stranger(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)
