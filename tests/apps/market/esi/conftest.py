from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.apps.market.esi_support import FROZEN_AT, FakeEsiServer, start_fake_esi


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
