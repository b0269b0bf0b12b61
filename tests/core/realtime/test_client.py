"""RealtimeClient against a real server: acknowledgements, reconnection with resume, token refresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pentad.core.realtime.client import Event, RealtimeClient, RealtimeClosed, RealtimeError
from pentad.core.realtime.protocol import CloseCode
from tests.core.realtime.conftest import (
    LiveServer,
    access_token,
    live_server,
    realtime_settings,
    room_member,
    wait_for,
)
from tests.core.realtime.realtime_app import Note
from tests.factories import issue_api_key


def client_for(server: LiveServer, token: str, **options: float) -> RealtimeClient:
    return RealtimeClient(server.ws_url, token, backoff_initial=0.05, backoff_max=0.2, **options)


async def test_operations_are_acknowledged_or_raise(server: LiveServer) -> None:
    platform = server.platform
    user = await room_member(platform, "r1")
    received: list[Event] = []
    async with client_for(server, await issue_api_key(platform, user)) as client:
        assert client.principal == {"id": str(user.id), "kind": "user"}
        subscription = await client.subscribe("test.typing.r1", received.append)
        assert subscription.recovered is False
        seq = await client.publish("test.typing.r1", {"typing": True})
        await wait_for(lambda: len(received) == 1, "the published event")
        assert (received[0].seq, received[0].data) == (seq, {"typing": True})
        assert await client.ping() >= 0
        with pytest.raises(RealtimeError) as refused:
            await client.subscribe("test.room.elsewhere", received.append)
        assert refused.value.code == "forbidden"
        assert "test.room.elsewhere" not in client.subscriptions
        await client.unsubscribe("test.typing.r1")
        assert await client.presence("test.room.r1") == []


async def test_reconnects_and_resumes_exactly_what_was_missed(server: LiveServer) -> None:
    platform = server.platform
    user = await room_member(platform, "r1")
    received: list[Event] = []
    async with client_for(server, await issue_api_key(platform, user)) as client:
        await client.subscribe("test.room.r1", received.append)
        await platform.hub.publish("test.room.r1", Note(text="before"))
        await wait_for(lambda: len(received) == 1, "the first event")
        # The server drops the socket (a restart would look the same): from the close on, nothing more is
        # sent on it, so the 1,000 events published next reach the client only by resuming.
        for connection in list(platform.hub.connections):
            connection.close(CloseCode.SERVICE_RESTART, "test")
        for number in range(1000):
            await platform.hub.publish("test.room.r1", Note(text=str(number)))
        await wait_for(lambda: len(received) == 1001, "the missed events")
        await platform.hub.publish("test.room.r1", Note(text="after"))
        await wait_for(lambda: len(received) == 1002, "the live event")
    assert client.connects == 2
    assert client.subscriptions["test.room.r1"].recovered
    assert [event.data["text"] for event in received[1:1001]] == [str(n) for n in range(1000)]
    seqs = [event.seq for event in received]
    assert seqs == list(range(seqs[0], seqs[0] + 1002))


async def test_a_token_provider_refreshes_on_the_same_socket(
    tmp_path: Path, realtime_database_url: str
) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, heartbeat_interval=0.2)
    async with live_server(settings) as running:
        user = await room_member(running.platform, "r1")
        issued: list[str] = []

        async def provider() -> str:
            issued.append(await access_token(running.platform, user, ttl=2))
            return issued[-1]

        client = RealtimeClient(running.ws_url, provider, refresh_margin=1.0)
        async with client:
            first_connection = client.connection_id
            await asyncio.sleep(3.5)
            assert await client.ping() >= 0
            assert client.connection_id == first_connection
            assert client.connects == 1
            assert len(issued) >= 3


async def test_refused_credentials_end_a_client_with_a_fixed_token(server: LiveServer) -> None:
    client = client_for(server, "pak_not_a_key")
    with pytest.raises(RealtimeClosed) as closed:
        await client.connect()
    assert closed.value.code == CloseCode.AUTH_FAILED


async def test_a_server_that_is_down_is_retried_until_the_connect_timeout() -> None:
    client = RealtimeClient("ws://127.0.0.1:9/ws", "token", backoff_initial=0.01, connect_timeout=0.3)
    with pytest.raises(RealtimeClosed):
        await client.connect()
