"""Fixtures of the chat tests: an app serving chat (the root `platform` and `client` fixtures build on it),
and a tenant with a server key to make users with."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.chat.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, create_tenant
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, apps=["chat"])


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=[APP])


@pytest.fixture
async def tenant(platform: Platform, client: httpx.AsyncClient) -> ChatTenantFixture:
    return await create_tenant(platform, client)


@pytest.fixture
async def other_tenant(platform: Platform, client: httpx.AsyncClient) -> ChatTenantFixture:
    return await create_tenant(platform, client, slug="other")
