"""The chat topics on a real /ws connection: who may subscribe, that clients never publish, and what a send,
an edit, a reaction or a delete puts on the channel topic (only once the transaction commits)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pentad.apps.chat import notifications
from pentad.core.errors import BadRequest
from pentad.core.platform import Platform
from pentad.core.realtime.protocol import CloseCode
from tests.apps.chat.factories import ChatTenantFixture, send
from tests.apps.chat.sockets import Socket, connected, refused_with, settle
from tests.factories import access_token, create_user


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    """The hub's broker running, as it does in a served app (the lifespan starts it)."""
    await platform.hub.start()
    yield
    await platform.hub.stop()


async def subscribe(socket: Socket, topic: str) -> dict[str, Any]:
    return await socket.request("subscribe", topic=topic)


async def allowed(app: FastAPI, token: str, topic: str) -> bool:
    async with connected(app, token) as socket:
        ack = await subscribe(socket, topic)
    if not ack["ok"]:
        assert ack["error"]["code"] == "forbidden", ack
    return bool(ack["ok"])


async def test_a_channel_topic_is_for_those_who_may_read_the_channel(
    app: FastAPI,
    client: httpx.AsyncClient,
    platform: Platform,
    tenant: ChatTenantFixture,
    other_tenant: ChatTenantFixture,
    hub: None,
) -> None:
    alice, bob, erin = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("erin")
    dave = await tenant.user("dave")
    zed = await other_tenant.user("zed")
    private = (await tenant.channel(alice, bob, erin, kind="private", name="p"))["id"]
    public = (await tenant.channel(alice, bob, erin, name="open"))["id"]
    for channel in (private, public):
        banned = await client.post(
            f"/api/chat/channels/{channel}/restrictions",
            json={"user_id": str(erin.id), "kind": "ban"},
            headers=alice.headers,
        )
        assert banned.status_code == 201
    exiled = await tenant.user("exiled")
    await client.post(f"/api/chat/channels/{public}/join", headers=exiled.headers)
    exile = await client.post(
        "/api/chat/server/restrictions", json={"user_id": "exiled", "kind": "ban"}, headers=tenant.headers
    )
    assert exile.status_code == 201
    account = await create_user(platform)
    pentad_token = await access_token(client, account)

    expected = {
        (alice.token, private): True,
        (bob.token, private): True,
        (dave.token, private): False,
        (erin.token, private): False,
        (zed.token, private): False,
        (pentad_token, private): False,
        (alice.token, public): True,
        (dave.token, public): True,
        (erin.token, public): False,
        (exiled.token, public): False,
        (zed.token, public): False,
        (pentad_token, public): False,
    }
    found = {key: await allowed(app, key[0], f"chat.channel.{key[1]}") for key in expected}
    assert found == expected
    assert await allowed(app, alice.token, "chat.channel.not-a-uuid") is False

    async with connected(app, dave.token) as socket:
        refused = await socket.request("presence", topic=f"chat.channel.{private}")
        assert refused["error"]["code"] == "forbidden"
        assert (await socket.request("presence", topic=f"chat.channel.{public}"))["ok"]


async def test_a_user_topic_is_for_that_user_only(
    app: FastAPI, tenant: ChatTenantFixture, other_tenant: ChatTenantFixture, hub: None
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    zed = await other_tenant.user("zed")
    assert await allowed(app, bob.token, f"chat.user.{bob.id}") is True
    assert await allowed(app, bob.token, f"chat.user.{alice.id}") is False
    assert await allowed(app, zed.token, f"chat.user.{bob.id}") is False
    assert await allowed(app, bob.token, "chat.user.nobody") is False


async def test_clients_never_publish_on_chat_topics(
    app: FastAPI, tenant: ChatTenantFixture, hub: None
) -> None:
    alice = await tenant.user("alice")
    channel = (await tenant.channel(alice, name="c"))["id"]
    async with connected(app, alice.token) as socket:
        for topic in (f"chat.channel.{channel}", f"chat.user.{alice.id}"):
            assert (await subscribe(socket, topic))["ok"]
            ack = await socket.request("publish", topic=topic, data={"type": "message.new", "forged": True})
            assert ack["error"]["code"] == "publish_not_allowed", ack
        await settle()
        assert socket.pending_events() == []


async def test_a_member_receives_a_new_message_and_the_mentioned_their_mention(
    app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture, hub: None
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    async with connected(app, bob.token) as socket:
        assert (await subscribe(socket, f"chat.channel.{channel}"))["ok"]
        assert (await subscribe(socket, f"chat.user.{bob.id}"))["ok"]
        message = await send(client, alice, channel, "hello **@bob**")
        event = await socket.event(f"chat.channel.{channel}")
        assert event["data"] == {
            "type": "message.new",
            "channel_id": channel,
            "seq": message["seq"],
            "message": message,
            "parent": None,
        }
        mention = await socket.event(f"chat.user.{bob.id}")
        assert mention["data"] == {"type": "mention.new", "channel_id": channel, "message": message}

        reply = await send(client, bob, channel, "reply", parent_id=message["id"])
        threaded = await socket.event(f"chat.channel.{channel}")
        assert threaded["data"]["message"] == reply
        assert (threaded["data"]["parent"]["id"], threaded["data"]["parent"]["reply_count"]) == (
            message["id"],
            1,
        )
        assert threaded["data"]["parent"]["revision"] == reply["seq"]


async def test_changes_to_a_message_carry_the_sequence_they_took(
    app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture, hub: None
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    message = await send(client, alice, channel, "first")
    topic = f"chat.channel.{channel}"
    async with connected(app, bob.token) as socket:
        assert (await subscribe(socket, topic))["ok"]
        edited = (
            await client.patch(
                f"/api/chat/messages/{message['id']}", json={"text": "second"}, headers=alice.headers
            )
        ).json()
        reacted = (
            await client.put(f"/api/chat/messages/{message['id']}/reactions/🎉", headers=bob.headers)
        ).json()
        deleted = (await client.delete(f"/api/chat/messages/{message['id']}", headers=alice.headers)).json()
        events = [(await socket.event(topic))["data"] for _ in range(3)]
    assert [(e["type"], e["seq"]) for e in events] == [
        ("message.updated", edited["revision"]),
        ("reaction.added", reacted["revision"]),
        ("message.deleted", deleted["revision"]),
    ]
    assert [e["seq"] for e in events] == [2, 3, 4]
    assert events[0]["message"]["text"] == "second"
    assert (events[1]["emoji"], events[1]["user_id"]) == ("🎉", str(bob.id))
    assert (events[2]["message"]["text"], events[2]["message"]["deleted_at"]) == ("", deleted["deleted_at"])


async def test_a_failed_send_emits_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: ChatTenantFixture,
    hub: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    await client.put(
        "/api/chat/server/tenant/blocked-words", json={"blocked_words": ["darn"]}, headers=tenant.headers
    )
    async with connected(app, bob.token) as socket:
        assert (await subscribe(socket, f"chat.channel.{channel}"))["ok"]
        assert (await subscribe(socket, f"chat.user.{bob.id}"))["ok"]
        refused = await client.post(
            f"/api/chat/channels/{channel}/messages", json={"text": "darn @bob"}, headers=alice.headers
        )
        assert refused.status_code == 400

        async def fail_late(*args: object) -> None:
            raise BadRequest("Failing after the events were queued.", code="test_failure")

        # The failure comes after the service queued message.new and mention.new: the rollback drops them.
        monkeypatch.setattr(notifications, "message_posted", fail_late)
        late = await client.post(
            f"/api/chat/channels/{channel}/messages", json={"text": "hi @bob"}, headers=alice.headers
        )
        assert (late.status_code, late.json()["code"]) == (400, "test_failure")
        await settle()
        assert socket.pending_events() == []

        monkeypatch.undo()
        message = await send(client, alice, channel, "this one counts")
        event = await socket.event(f"chat.channel.{channel}")
        assert (event["data"]["message"]["id"], event["data"]["seq"], event["seq"]) == (message["id"], 1, 1)
    history = (await client.get(f"/api/chat/channels/{channel}/messages", headers=bob.headers)).json()
    assert [m["text"] for m in history["messages"]] == ["this one counts"]


async def test_membership_changes_reach_the_user_topic(
    app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture, hub: None
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, kind="private", name="p"))["id"]
    async with connected(app, bob.token) as socket:
        assert (await subscribe(socket, f"chat.user.{bob.id}"))["ok"]
        await client.post(
            f"/api/chat/channels/{channel}/invites", json={"user_ids": [str(bob.id)]}, headers=alice.headers
        )
        invited = await socket.event()
        assert (invited["data"]["type"], invited["data"]["channel"]["id"]) == ("invite.received", channel)
        await client.post(
            f"/api/chat/channels/{channel}/members", json={"user_ids": [str(bob.id)]}, headers=alice.headers
        )
        added = await socket.event()
        assert (added["data"]["type"], added["data"]["channel"]["id"]) == ("channel.added", channel)
        await client.post(
            f"/api/chat/channels/{channel}/restrictions",
            json={"user_id": str(bob.id), "kind": "ban"},
            headers=alice.headers,
        )
        removed = await socket.event()
        assert (removed["data"]["type"], removed["data"]["channel"]["id"]) == ("channel.removed", channel)


async def test_revoked_and_deactivated_users_cannot_connect(
    app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture, hub: None
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    assert await refused_with(app, alice.token) is None  # and the principal is cached now
    await client.post("/api/chat/server/users/alice/revoke-tokens", headers=tenant.headers)
    assert await refused_with(app, alice.token) == CloseCode.AUTH_FAILED
    fresh = (await client.post("/api/chat/server/users/alice/tokens", headers=tenant.headers)).json()["token"]
    assert await refused_with(app, fresh) is None

    assert await refused_with(app, bob.token) is None
    await client.post("/api/chat/server/users/bob/deactivate", headers=tenant.headers)
    assert await refused_with(app, bob.token) == CloseCode.AUTH_FAILED


@pytest.mark.parametrize("how", ["removed", "left", "banned"])
async def test_a_member_whose_membership_ends_is_unsubscribed_at_once(
    app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture, hub: None, how: str
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    topic = f"chat.channel.{channel}"
    async with connected(app, bob.token) as socket:
        assert (await subscribe(socket, topic))["ok"]
        if how == "removed":
            ended = await client.delete(
                f"/api/chat/channels/{channel}/members/{bob.id}", headers=alice.headers
            )
        elif how == "left":
            ended = await client.post(f"/api/chat/channels/{channel}/leave", headers=bob.headers)
        else:
            body = {"user_id": str(bob.id), "kind": "ban"}
            ended = await client.post(
                f"/api/chat/channels/{channel}/restrictions", json=body, headers=alice.headers
            )
        assert ended.status_code in (201, 204), ended.text
        # Well before the revalidation interval (a minute): the hub re-asked as soon as the change committed.
        while (frame := await socket.recv())["op"] != "unsubscribed":
            assert frame["op"] in ("event", "join", "leave"), frame
        assert frame == {"op": "unsubscribed", "topic": topic, "reason": "forbidden"}
        await send(client, alice, channel, "not for bob")
        await settle()
        assert socket.pending_events() == []


async def test_a_revoked_grant_ends_the_subscription_it_allowed_at_once(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, hub: None
) -> None:
    from tests.factories import bearer, create_admin

    admin, owner, reader = (
        await create_admin(platform),
        await create_user(platform),
        await create_user(platform),
    )
    owner_token = await access_token(client, owner)
    channel = (
        await client.post(
            "/api/chat/channels", json={"kind": "private", "name": "board"}, headers=bearer(owner_token)
        )
    ).json()["id"]
    admin_headers = bearer(await access_token(client, admin))
    granted = await client.post(
        f"/api/users/{reader.id}/grants",
        json={"resource_type": "chat.channel", "resource_id": channel, "role": "member"},
        headers=admin_headers,
    )
    assert granted.status_code == 201, granted.text
    topic = f"chat.channel.{channel}"
    async with connected(app, await access_token(client, reader)) as socket:
        assert (await subscribe(socket, topic))["ok"]
        revoked = await client.delete(
            f"/api/users/{reader.id}/grants/{granted.json()['id']}", headers=admin_headers
        )
        assert revoked.status_code == 204
        while (frame := await socket.recv())["op"] != "unsubscribed":
            assert frame["op"] in ("event", "join", "leave"), frame
        assert frame == {"op": "unsubscribed", "topic": topic, "reason": "forbidden"}
