"""Fixtures of the trader tests: the fake SSO (a thread per module) and the fake ESI with its character
routes, and an app wired to both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.market.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.apps.market.esi_support import CONTACT, FakeEsiServer
from tests.apps.market.trader_support import (
    ALT,
    CALLBACK,
    CLIENT_ID,
    TRADER,
    Account,
    account,
    token_verifier,
)
from tests.conftest import make_settings
from tests.core.auth.test_password_reset import Inbox
from tests.factories import free_port
from tests.fakes.market.esi_characters import CharacterEsi
from tests.fakes.market.sso import FakeSso


@pytest.fixture(scope="module")
def sso() -> Iterator[FakeSso]:
    fake = FakeSso()
    fake.add_character(TRADER, "Trader Joe")
    fake.add_character(ALT, "Alt Ernative")
    fake.serve()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback (aiosmtpd) for the module."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def inbox(smtp_server: tuple[Inbox, int]) -> Inbox:
    smtp_server[0].messages.clear()
    return smtp_server[0]


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str,
    sso: FakeSso,
    fake_esi_server: FakeEsiServer,
    smtp_server: tuple[Inbox, int],
) -> Settings:
    return trader_settings(
        tmp_path, database_url, sso, fake_esi_server, mail={"host": "127.0.0.1", "port": smtp_server[1]}
    )


def trader_settings(
    tmp_path: Path,
    database_url: str,
    sso: FakeSso,
    fake_esi_server: FakeEsiServer,
    *,
    mail: dict[str, Any] | None = None,
    **market: Any,
) -> Settings:
    """The market app against the fake SSO and ESI (`market`: more of its settings)."""
    return make_settings(
        tmp_path,
        database_url,
        apps=["market"],
        ratelimit={"enabled": False},
        outbound={"allowed_networks": ["127.0.0.0/8"]},
        server={"base_url": "https://pentad.test"},
        **({"mail": mail} if mail is not None else {}),
        market={
            "esi_client_id": CLIENT_ID,
            "sso_base_url": sso.base_url,
            "contact": CONTACT,
            "esi_base_url": fake_esi_server.url,
            "esi_max_retries": 1,
            **market,
        },
    )


@pytest.fixture
async def app(settings: Settings, database: Database, sso: FakeSso) -> AsyncIterator[FastAPI]:
    app = create_app(settings, database=database, apps=[APP])
    platform: Platform = app.state.platform
    await platform.open_resources()
    sso.reset()
    sso.register(CLIENT_ID, platform.base_url.rstrip("/") + CALLBACK)
    yield app
    await platform.resources.close()


@pytest.fixture
def chars(esi: FakeEsiServer, sso: FakeSso) -> CharacterEsi:
    return CharacterEsi(esi.fake, token_verifier(sso))


@pytest.fixture
async def alice(platform: Platform) -> Account:
    return await account(platform)
