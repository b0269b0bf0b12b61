from collections.abc import AsyncIterator
import pytest
from fastapi import FastAPI
import httpx
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, send
from tests.apps.chat.sockets import connected


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    await platform.hub.start()
    yield
    await platform.hub.stop()


async def test_spike(app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture, hub: None) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    channel = await tenant.channel(alice, bob, kind="private", name="p")
    async with connected(app, bob.token) as ws:
        ack = await ws.request("subscribe", topic=f"chat.channel.{channel['id']}")
        print(ack)
        await send(client, alice, channel["id"], "hi @bob")
        ev = await ws.event()
        print(ev)
