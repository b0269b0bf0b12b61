"""/ws against a real uvicorn server: authentication, authorisation, every operation and close code."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.realtime.protocol import CloseCode
from pentad.core.realtime.publish import publish
from tests.core.realtime.conftest import (
    LiveServer,
    access_token,
    live_server,
    peer,
    realtime_settings,
    room_member,
)
from tests.core.realtime.realtime_app import Note
from tests.factories import issue_api_key, issue_service_token


async def test_subscribe_and_receive_what_a_service_publishes(server: LiveServer) -> None:
    user = await room_member(server.platform, "r1")
    async with peer(server, await issue_api_key(server.platform, user)) as client:
        ack = await client.request("subscribe", topic="test.room.r1")
        assert ack["ok"]
        assert ack["result"]["recovered"] is False
        async with server.platform.database.transaction() as session:
            publish(session, "test.room.r1", Note(text="hello"))
        event = await client.recv_op("event")
    assert event["topic"] == "test.room.r1"
    assert event["data"] == {"text": "hello"}
    assert event["seq"] == ack["result"]["seq"] + 1
    assert event["epoch"] == ack["result"]["epoch"]


async def test_access_tokens_and_service_tokens_authenticate(server: LiveServer) -> None:
    user = await room_member(server.platform)
    for token in (await access_token(server.platform, user), await issue_service_token(server.platform)):
        async with peer(server) as client:
            ack = await client.request("auth", token=token)
            assert ack["ok"], ack
            assert set(ack["result"]) >= {"principal", "connection_id", "expires_at", "heartbeat_interval"}


async def test_a_subscriber_without_permission_is_refused(server: LiveServer) -> None:
    outsider = await room_member(server.platform, "other-room")
    async with peer(server, await issue_api_key(server.platform, outsider)) as client:
        ack = await client.request("subscribe", topic="test.room.r1")
        assert ack == {
            "op": "ack",
            "id": ack["id"],
            "ok": False,
            "error": {"code": "forbidden", "message": "You may not subscribe on this topic."},
        }
        presence = await client.request("presence", topic="test.room.r1")
        assert presence["error"]["code"] == "forbidden"


async def test_unknown_topics_and_bad_requests_are_refused(server: LiveServer) -> None:
    user = await room_member(server.platform, "r1")
    async with peer(server, await issue_api_key(server.platform, user)) as client:
        assert (await client.request("subscribe", topic="no.such.topic"))["error"]["code"] == "unknown_topic"
        assert (await client.request("subscribe", topic="test.room"))["error"]["code"] == "unknown_topic"
        assert (await client.request("subscribe", topic="bad topic!"))["error"]["code"] == "bad_request"
        assert (await client.request("unsubscribe", topic="test.room.r1"))["error"][
            "code"
        ] == "not_subscribed"
        assert (await client.request("frobnicate"))["error"]["code"] == "bad_request"
        assert (await client.request("ping"))["ok"]


async def test_client_publish_only_where_the_topic_allows_it(server: LiveServer) -> None:
    user = await room_member(server.platform, "r1")
    outsider = await room_member(server.platform)
    async with (
        peer(server, await issue_api_key(server.platform, user)) as member,
        peer(server, await issue_api_key(server.platform, outsider)) as stranger,
    ):
        refused = await member.request("publish", topic="test.room.r1", data={"text": "x"})
        assert refused["error"]["code"] == "publish_not_allowed"
        forbidden = await stranger.request("publish", topic="test.typing.r1", data={"typing": True})
        assert forbidden["error"]["code"] == "forbidden"
        assert (await member.request("subscribe", topic="test.typing.r1"))["ok"]
        published = await member.request("publish", topic="test.typing.r1", data={"typing": True})
        assert published["ok"]
        event = await member.recv_op("event")
    assert event["data"] == {"typing": True}
    assert event["seq"] == published["result"]["seq"]


async def test_no_auth_bad_token_and_a_first_frame_that_is_not_auth_are_closed(server: LiveServer) -> None:
    async with peer(server) as client:
        await client.send({"op": "auth", "id": 1, "token": "pak_nonsense"})
        assert await client.closed_with() == CloseCode.AUTH_FAILED
    async with peer(server) as client:
        await client.send({"op": "subscribe", "id": 1, "topic": "test.room.r1"})
        assert await client.closed_with() == CloseCode.AUTH_FAILED
    async with peer(server) as client:
        await client.ws.send("this is not JSON")
        assert await client.closed_with() == CloseCode.BAD_MESSAGE


async def test_a_socket_that_does_not_authenticate_in_time_is_closed(
    tmp_path: Path, realtime_database_url: str
) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, auth_timeout=0.3)
    async with live_server(settings) as running, peer(running) as client:
        assert await client.closed_with() == CloseCode.AUTH_TIMEOUT


async def test_reauthentication_on_the_same_socket_outlives_the_first_token(
    tmp_path: Path, realtime_database_url: str
) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, heartbeat_interval=0.2)
    async with live_server(settings) as running:
        user = await room_member(running.platform, "r1")
        short = await access_token(running.platform, user, ttl=2)
        async with peer(running, short) as client:
            assert (await client.request("subscribe", topic="test.room.r1"))["ok"]
            fresh = await access_token(running.platform, user)
            reauth = await client.request("auth", token=fresh)
            assert reauth["ok"]
            assert reauth["result"]["expires_at"] > time.time() + 60
            someone_else = await access_token(running.platform, await room_member(running.platform))
            refused = await client.request("auth", token=someone_else)
            assert refused["error"]["code"] == "principal_changed"
            bad = await client.request("auth", token="pak_nonsense")
            assert bad["error"]["code"] == "auth_failed"
            await asyncio.sleep(3)
            assert (await client.request("ping"))["ok"]
            await running.platform.hub.publish("test.room.r1", Note(text="still here"))
            assert (await client.recv_op("event"))["data"] == {"text": "still here"}


async def test_expired_credentials_close_the_socket(tmp_path: Path, realtime_database_url: str) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, heartbeat_interval=0.2)
    async with live_server(settings) as running:
        user = await room_member(running.platform)
        # Long enough to be valid when the socket authenticates on a busy machine, short enough to expire.
        async with peer(running, await access_token(running.platform, user, ttl=3)) as client:
            assert await client.closed_with() == CloseCode.CREDENTIALS_EXPIRED


async def test_revoked_credentials_close_the_socket(tmp_path: Path, realtime_database_url: str) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, revalidate_interval=0.2)
    async with live_server(settings) as running:
        platform = running.platform
        user = await room_member(platform)
        token = await access_token(platform, user)
        async with peer(running, token) as client:
            async with platform.database.transaction() as session:
                service = AuthService(session, platform)
                for auth_session in await service.list_sessions(user.id):
                    await service.revoke_session(user.id, auth_session.id, audit.SYSTEM)
            assert await client.closed_with() == CloseCode.CREDENTIALS_REVOKED


async def test_losing_a_grant_ends_the_subscription(tmp_path: Path, realtime_database_url: str) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, revalidate_interval=0.2)
    async with live_server(settings) as running:
        platform = running.platform
        user = await room_member(platform, "r1")
        async with peer(running, await issue_api_key(platform, user)) as client:
            assert (await client.request("subscribe", topic="test.room.r1"))["ok"]
            async with platform.database.transaction() as session:
                service = AuthService(session, platform)
                for grant in await service.list_grants(user.id):
                    await service.revoke_grant(user.id, grant.id, actor=audit.SYSTEM)
            ended = await client.recv_op("unsubscribed")
    assert ended == {"op": "unsubscribed", "topic": "test.room.r1", "reason": "forbidden"}


async def test_a_silent_client_is_closed_as_idle(tmp_path: Path, realtime_database_url: str) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, heartbeat_interval=0.2, idle_timeout=0.6)
    async with live_server(settings) as running:
        user = await room_member(running.platform)
        async with peer(running, await issue_api_key(running.platform, user)) as client:
            first = await client.recv()
            assert first == {"op": "ping"}
            assert await client.closed_with() == CloseCode.IDLE_TIMEOUT


async def test_answering_pings_keeps_the_socket_open(tmp_path: Path, realtime_database_url: str) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, heartbeat_interval=0.1, idle_timeout=0.5)
    async with live_server(settings) as running:
        user = await room_member(running.platform)
        async with peer(running, await issue_api_key(running.platform, user)) as client:
            for _ in range(15):
                assert await client.recv() == {"op": "ping"}
                await client.send({"op": "pong"})
            assert (await client.request("ping"))["ok"]


async def test_presence_counts_a_persons_two_connections_once(server: LiveServer) -> None:
    platform = server.platform
    alice = await room_member(platform, "r1")
    bob = await room_member(platform, "r1")
    async with (
        peer(server, await issue_api_key(platform, alice)) as alice_phone,
        peer(server, await issue_api_key(platform, alice)) as alice_laptop,
        peer(server, await issue_api_key(platform, bob)) as bob_socket,
    ):
        assert (await bob_socket.request("subscribe", topic="test.room.r1"))["ok"]
        assert (await bob_socket.recv_op("join"))["member"]["id"] == str(bob.id)
        for socket in (alice_phone, alice_laptop):
            assert (await socket.request("subscribe", topic="test.room.r1"))["ok"]
        joined = await bob_socket.recv_op("join")
        assert joined["member"] == {"id": str(alice.id), "kind": "user"}
        members = (await bob_socket.request("presence", topic="test.room.r1"))["result"]["members"]
        assert sorted(m["id"] for m in members) == sorted([str(alice.id), str(bob.id)])
        assert (await alice_phone.request("unsubscribe", topic="test.room.r1"))["ok"]
        members = (await bob_socket.request("presence", topic="test.room.r1"))["result"]["members"]
        assert len(members) == 2
        await alice_laptop.ws.close()
        left = await bob_socket.recv_op("leave")
        assert left["member"]["id"] == str(alice.id)
        members = (await bob_socket.request("presence", topic="test.room.r1"))["result"]["members"]
        assert [m["id"] for m in members] == [str(bob.id)]


async def test_presence_is_only_for_topics_that_enable_it(server: LiveServer) -> None:
    user = await room_member(server.platform, "r1")
    async with peer(server, await issue_api_key(server.platform, user)) as client:
        refused = await client.request("presence", topic="test.typing.r1")
    assert refused["error"]["code"] == "presence_not_enabled"


async def test_resume_after_a_disconnect_delivers_exactly_what_was_missed(server: LiveServer) -> None:
    platform = server.platform
    user = await room_member(platform, "r1")
    key = await issue_api_key(platform, user)
    async with peer(server, key) as client:
        ack = await client.request("subscribe", topic="test.room.r1")
        epoch, seq = ack["result"]["epoch"], ack["result"]["seq"]
        await platform.hub.publish("test.room.r1", Note(text="seen"))
        seen = await client.recv_op("event")
        seq = seen["seq"]
    for number in range(1000):
        await platform.hub.publish("test.room.r1", Note(text=f"missed {number}"))
    async with peer(server, key) as client:
        ack = await client.request("subscribe", topic="test.room.r1", since=seq, epoch=epoch)
        assert ack["result"] == {"epoch": epoch, "seq": seq + 1000, "recovered": True}
        await platform.hub.publish("test.room.r1", Note(text="live"))
        events = [await client.recv_op("event") for _ in range(1001)]
    assert [event["data"]["text"] for event in events[:1000]] == [f"missed {n}" for n in range(1000)]
    assert [event["seq"] for event in events] == list(range(seq + 1, seq + 1002))
    assert events[-1]["data"] == {"text": "live"}


async def test_resume_from_an_unknown_epoch_is_not_recovered(server: LiveServer) -> None:
    user = await room_member(server.platform, "r1")
    async with peer(server, await issue_api_key(server.platform, user)) as client:
        ack = await client.request("subscribe", topic="test.room.r1", since=5, epoch="not-the-epoch")
    assert ack["result"]["recovered"] is False


async def test_a_slow_consumer_is_closed_while_the_others_keep_receiving(
    tmp_path: Path, realtime_database_url: str
) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, send_queue_size=16)
    async with live_server(settings) as running:
        platform = running.platform
        user = await room_member(platform, "r1")
        key = await issue_api_key(platform, user)
        async with (
            peer(running, key, compression=None) as slow,
            peer(running, key, compression=None) as fast,
        ):
            assert (await slow.request("subscribe", topic="test.room.r1"))["ok"]
            assert (await fast.request("subscribe", topic="test.room.r1"))["ok"]
            # The slow client stops reading its socket: the kernel buffers fill, then the server's queue.
            slow.ws.transport.pause_reading()
            big = base64.b64encode(os.urandom(24576)).decode()
            hub = platform.hub
            for number in range(3000):
                await hub.publish("test.room.r1", Note(text=f"{number} {big}"))
                event = await fast.recv_op("event")
                assert event["data"]["text"].startswith(f"{number} ")
                if any(connection.closed for connection in hub.connections):
                    break
            for number in range(3000, 3010):
                await hub.publish("test.room.r1", Note(text=f"{number}"))
                assert (await fast.recv_op("event"))["data"]["text"] == f"{number}"
            slow.ws.transport.resume_reading()
            assert await slow.closed_with() == CloseCode.SLOW_CONSUMER
