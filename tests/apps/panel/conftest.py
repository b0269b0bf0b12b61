"""Fixtures of the panel tests: an app serving the panel (the root `platform` and `client` fixtures build
on it) and accounts to act as."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.panel.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import Account, account


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, apps=["panel"], ratelimit={"enabled": False})


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[APP])


@pytest.fixture
async def admin(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform, admin=True)


@pytest.fixture
async def member(platform: Platform, client: httpx.AsyncClient) -> Account:
    """A member: `panel.use` only (sees what is shared with them)."""
    return await account(platform)


@pytest.fixture
async def stranger(platform: Platform, client: httpx.AsyncClient) -> Account:
    return await account(platform)
