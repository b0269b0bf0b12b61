"""What each chat action emits: one test per realtime event kind (events.py), each performing the action
through the HTTP API and asserting exactly the frames published (topic and payload), and that a refused
or no-op action publishes nothing.

The frames are taken where the core hands them to the broker, after the commit (core publish), so they are
what every subscriber would receive. The emission does not depend on the database: SQLite only
(test_topics.py drives the same events through real /ws connections on every database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import httpx
import orjson
import pytest
from pydantic import BaseModel

from pentad.apps.chat import events, schemas
from pentad.core.platform import Platform
from pentad.core.realtime.topics import TopicSpec
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send

Frame = tuple[str, dict[str, Any]]
CHANNEL_FIELDS = tuple(schemas.Channel.model_fields)


# What an action emits does not depend on the database.
pytestmark = pytest.mark.one_engine


class Frames:
    """Every event the core publishes, in publish order."""

    def __init__(self) -> None:
        self.sent: list[Frame] = []

    def take(self) -> list[Frame]:
        taken, self.sent = self.sent, []
        return taken


@pytest.fixture
def frames(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Frames:
    captured = Frames()

    async def record(topic: str, data_json: str, spec: TopicSpec) -> tuple[int, str]:
        captured.sent.append((topic, orjson.loads(data_json)))
        return len(captured.sent), "test"

    monkeypatch.setattr(platform.hub.broker, "publish", record)
    return captured


def channel_topic(channel_id: str) -> str:
    return f"chat.channel.{channel_id}"


def user_topic(user: ChatUserFixture) -> str:
    return f"chat.user.{user.id}"


def channel_of(state: dict[str, Any]) -> dict[str, Any]:
    """The channel part of a ChannelState answer: what channel events carry."""
    return {name: state[name] for name in CHANNEL_FIELDS}


async def user_of(client: httpx.AsyncClient, user: ChatUserFixture) -> dict[str, Any]:
    me: dict[str, Any] = (await client.get("/api/chat/me", headers=user.headers)).json()
    return me


async def channel_state(client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/chat/channels/{channel_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


# ---------------------------------------------------------------- messages


async def test_a_send_emits_message_new_on_the_channel_and_nothing_when_refused(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, eve = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("eve")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    frames.take()

    message = await send(client, alice, channel, "hello")

    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "message.new", "channel_id": channel, "seq": 1, "message": message, "parent": None},
        )
    ]
    outsider = await client.post(
        f"/api/chat/channels/{channel}/messages", json={"text": "hi"}, headers=eve.headers
    )
    empty = await client.post(
        f"/api/chat/channels/{channel}/messages", json={"text": " "}, headers=bob.headers
    )
    assert (outsider.status_code, empty.status_code) == (404, 400)
    assert frames.take() == []


async def test_a_reply_carries_its_thread_parent(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    first = await send(client, alice, channel, "first")
    frames.take()

    reply = await send(client, bob, channel, "reply", parent_id=first["id"])

    parent = (await client.get(f"/api/chat/messages/{first['id']}", headers=alice.headers)).json()
    assert (parent["reply_count"], parent["revision"]) == (1, reply["seq"])
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "message.new", "channel_id": channel, "seq": 2, "message": reply, "parent": parent},
        )
    ]


async def test_a_mention_of_a_member_emits_mention_new_on_their_topic_only(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    frames.take()

    message = await send(client, alice, channel, f"@{bob.handle} @{carol.handle} @{alice.handle} look")

    assert message["mentioned_user_ids"] == [str(bob.id)]
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "message.new", "channel_id": channel, "seq": 1, "message": message, "parent": None},
        ),
        (user_topic(bob), {"type": "mention.new", "channel_id": channel, "message": message}),
    ]


async def test_an_edit_emits_message_updated_with_the_revision_it_took(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    message = await send(client, alice, channel, "first")
    frames.take()

    edited = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "second"}, headers=alice.headers
    )

    assert edited.status_code == 200
    assert frames.take() == [
        (
            channel_topic(channel),
            {
                "type": "message.updated",
                "channel_id": channel,
                "seq": 2,
                "message": edited.json(),
                "parent": None,
            },
        )
    ]
    not_author = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "x"}, headers=bob.headers
    )
    unchanged = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "second"}, headers=alice.headers
    )
    assert (not_author.status_code, unchanged.status_code) == (403, 200)
    assert frames.take() == []


async def test_pinning_emits_message_updated_and_only_moderators_pin_in_named_channels(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    message = await send(client, bob, channel, "pin me")
    frames.take()

    refused = await client.put(f"/api/chat/messages/{message['id']}/pin", headers=bob.headers)
    assert refused.status_code == 403
    assert frames.take() == []

    pinned = (await client.put(f"/api/chat/messages/{message['id']}/pin", headers=alice.headers)).json()
    again = await client.put(f"/api/chat/messages/{message['id']}/pin", headers=alice.headers)
    unpinned = (await client.delete(f"/api/chat/messages/{message['id']}/pin", headers=alice.headers)).json()

    assert again.status_code == 200
    assert pinned["pinned_at"] is not None
    assert unpinned["pinned_at"] is None
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "message.updated", "channel_id": channel, "seq": 2, "message": pinned, "parent": None},
        ),
        (
            channel_topic(channel),
            {"type": "message.updated", "channel_id": channel, "seq": 3, "message": unpinned, "parent": None},
        ),
    ]


async def test_a_delete_emits_message_deleted_with_the_tombstone(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    message = await send(client, alice, channel, "regret")
    frames.take()

    refused = await client.delete(f"/api/chat/messages/{message['id']}", headers=bob.headers)
    assert refused.status_code == 403
    assert frames.take() == []

    deleted = (await client.delete(f"/api/chat/messages/{message['id']}", headers=alice.headers)).json()
    again = await client.delete(f"/api/chat/messages/{message['id']}", headers=alice.headers)

    assert again.status_code == 200
    assert (deleted["text"], deleted["deleted_at"] is not None) == ("", True)
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "message.deleted", "channel_id": channel, "seq": 2, "message": deleted, "parent": None},
        )
    ]


# ---------------------------------------------------------------- reactions, read state, typing, presence


async def test_reacting_emits_reaction_added_and_removed(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, dave = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("dave")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    message = await send(client, alice, channel, "react")
    frames.take()
    path = f"/api/chat/messages/{message['id']}/reactions/🎉"

    added = (await client.put(path, headers=bob.headers)).json()
    twice = await client.put(path, headers=bob.headers)
    removed = (await client.delete(path, headers=bob.headers)).json()
    not_a_member = await client.put(path, headers=dave.headers)

    assert (twice.status_code, not_a_member.status_code) == (200, 403)
    assert added["reactions"] == [{"emoji": "🎉", "count": 1, "user_ids": [str(bob.id)]}]
    common = {"channel_id": channel, "user_id": str(bob.id), "emoji": "🎉"}
    assert frames.take() == [
        (channel_topic(channel), {"type": "reaction.added", **common, "seq": 2, "message": added}),
        (channel_topic(channel), {"type": "reaction.removed", **common, "seq": 3, "message": removed}),
    ]


async def test_moving_the_read_position_emits_read_updated_and_nothing_when_it_does_not_move(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, dave = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("dave")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    for text in ("one", "two", "three"):
        await send(client, alice, channel, text)
    frames.take()

    delivered = await client.post(
        f"/api/chat/channels/{channel}/delivered", json={"seq": 2}, headers=bob.headers
    )
    read = await client.post(f"/api/chat/channels/{channel}/read", json={"seq": 99}, headers=bob.headers)
    backwards = await client.post(f"/api/chat/channels/{channel}/read", json={"seq": 1}, headers=bob.headers)
    outsider = await client.post(f"/api/chat/channels/{channel}/read", json={"seq": 3}, headers=dave.headers)

    assert [r.status_code for r in (delivered, read, backwards, outsider)] == [200, 200, 200, 403]
    reader = {"type": "read.updated", "channel_id": channel, "user_id": str(bob.id)}
    assert frames.take() == [
        (channel_topic(channel), {**reader, "last_read_seq": 0, "last_delivered_seq": 2}),
        (channel_topic(channel), {**reader, "last_read_seq": 3, "last_delivered_seq": 3}),
    ]


async def test_typing_emits_typing_start_and_stop_from_those_who_may_post(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, dave = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("dave")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    message = await send(client, alice, channel, "thread")
    bob_view = await user_of(client, bob)
    frames.take()

    started = await client.post(f"/api/chat/channels/{channel}/typing", headers=bob.headers)
    stopped = await client.post(
        f"/api/chat/channels/{channel}/typing",
        json={"active": False, "parent_id": message["id"]},
        headers=bob.headers,
    )
    not_a_member = await client.post(f"/api/chat/channels/{channel}/typing", headers=dave.headers)

    assert [r.status_code for r in (started, stopped, not_a_member)] == [204, 204, 403]
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "typing.start", "channel_id": channel, "user": bob_view, "parent_id": None},
        ),
        (
            channel_topic(channel),
            {"type": "typing.stop", "channel_id": channel, "user": bob_view, "parent_id": message["id"]},
        ),
    ]


async def test_a_presence_change_emits_presence_updated_on_each_of_the_users_channels(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    first = (await tenant.channel(alice, bob, name="one"))["id"]
    second = (await tenant.channel(alice, kind="private", name="two"))["id"]
    await tenant.channel(bob, name="not-alices")
    frames.take()

    away = await client.put("/api/chat/me/presence", json={"status": "away"}, headers=alice.headers)
    still_away = await client.put("/api/chat/me/presence", json={"status": "away"}, headers=alice.headers)

    assert (away.status_code, still_away.status_code) == (200, 200)
    view = away.json()
    assert view["presence"] == "away"
    published = frames.take()
    assert sorted(published, key=lambda frame: frame[0]) == sorted(
        [(channel_topic(c), {"type": "presence.updated", "user": view}) for c in (first, second)],
        key=lambda frame: frame[0],
    )


# ---------------------------------------------------------------- channels and membership


async def test_creating_a_channel_emits_channel_added_to_each_member(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")

    created = await tenant.channel(alice, bob, kind="direct", name="")
    again = await tenant.channel(alice, bob, kind="direct", name="")

    assert again["id"] == created["id"]
    added = {"type": "channel.added", "channel": channel_of(created)}
    assert frames.take() == [(user_topic(alice), added), (user_topic(bob), added)]
    no_name = await client.post(
        "/api/chat/channels", json={"kind": "public", "name": " ", "members": []}, headers=alice.headers
    )
    assert no_name.status_code == 400
    assert frames.take() == []


async def test_updating_a_channel_emits_channel_updated_for_its_managers_only(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    frames.take()

    refused = await client.patch(f"/api/chat/channels/{channel}", json={"topic": "mine"}, headers=bob.headers)
    assert refused.status_code == 403
    assert frames.take() == []

    updated = await client.patch(
        f"/api/chat/channels/{channel}",
        json={"topic": "plans", "slow_mode_seconds": 5},
        headers=alice.headers,
    )

    assert (updated.json()["topic"], updated.json()["slow_mode_seconds"]) == ("plans", 5)
    assert frames.take() == [
        (channel_topic(channel), {"type": "channel.updated", "channel": channel_of(updated.json())})
    ]


async def test_archiving_emits_channel_archived_and_unarchived(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    frames.take()

    refused = await client.put(f"/api/chat/channels/{channel}/archive", headers=bob.headers)
    assert refused.status_code == 403
    assert frames.take() == []

    archived = (await client.put(f"/api/chat/channels/{channel}/archive", headers=alice.headers)).json()
    unarchived = (await client.delete(f"/api/chat/channels/{channel}/archive", headers=alice.headers)).json()

    assert archived["archived_at"] is not None
    assert unarchived["archived_at"] is None
    assert frames.take() == [
        (channel_topic(channel), {"type": "channel.archived", "channel": channel_of(archived)}),
        (channel_topic(channel), {"type": "channel.unarchived", "channel": channel_of(unarchived)}),
    ]


async def test_joining_emits_member_added_on_the_channel_and_channel_added_to_the_joiner(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, dave = await tenant.user("alice"), await tenant.user("dave")
    public = (await tenant.channel(alice, name="open"))["id"]
    private = (await tenant.channel(alice, kind="private", name="closed"))["id"]
    frames.take()

    joined = (await client.post(f"/api/chat/channels/{public}/join", headers=dave.headers)).json()
    again = await client.post(f"/api/chat/channels/{public}/join", headers=dave.headers)
    refused = await client.post(f"/api/chat/channels/{private}/join", headers=dave.headers)

    assert (again.status_code, refused.status_code) == (200, 404)
    assert frames.take() == [
        (
            channel_topic(public),
            {
                "type": "member.added",
                "channel_id": public,
                "user": await user_of(client, dave),
                "role": "member",
            },
        ),
        (user_topic(dave), {"type": "channel.added", "channel": channel_of(joined)}),
    ]


async def test_adding_members_emits_member_added_for_each_new_member(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    frames.take()

    refused = await client.post(
        f"/api/chat/channels/{channel}/members", json={"user_ids": [str(carol.id)]}, headers=bob.headers
    )
    assert refused.status_code == 403
    assert frames.take() == []

    added = await client.post(
        f"/api/chat/channels/{channel}/members",
        json={"user_ids": [str(bob.id), str(carol.id)], "role": "moderator"},
        headers=alice.headers,
    )

    assert [m["user"]["id"] for m in added.json()] == [str(carol.id)]
    carol_view = await user_of(client, carol)
    state = await channel_state(client, alice, channel)
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "member.added", "channel_id": channel, "user": carol_view, "role": "moderator"},
        ),
        (user_topic(carol), {"type": "channel.added", "channel": channel_of(state)}),
    ]


async def test_changing_a_role_emits_member_updated(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    frames.take()

    refused = await client.patch(
        f"/api/chat/channels/{channel}/members/{alice.id}", json={"role": "member"}, headers=bob.headers
    )
    assert refused.status_code == 403
    assert frames.take() == []

    promoted = await client.patch(
        f"/api/chat/channels/{channel}/members/{bob.id}", json={"role": "moderator"}, headers=alice.headers
    )

    assert promoted.status_code == 200
    assert frames.take() == [
        (
            channel_topic(channel),
            {
                "type": "member.updated",
                "channel_id": channel,
                "user": await user_of(client, bob),
                "role": "moderator",
            },
        )
    ]


async def test_leaving_or_being_removed_emits_member_removed_and_channel_removed(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, carol, kind="private", name="p"))["id"]
    bob_view, carol_view = await user_of(client, bob), await user_of(client, carol)
    frames.take()

    refused = await client.delete(f"/api/chat/channels/{channel}/members/{carol.id}", headers=bob.headers)
    assert refused.status_code == 403
    assert frames.take() == []

    left = await client.post(f"/api/chat/channels/{channel}/leave", headers=bob.headers)
    removed = await client.delete(f"/api/chat/channels/{channel}/members/{carol.id}", headers=alice.headers)
    gone = await client.delete(f"/api/chat/channels/{channel}/members/{carol.id}", headers=alice.headers)

    assert [r.status_code for r in (left, removed, gone)] == [204, 204, 404]
    view = channel_of(await channel_state(client, alice, channel))
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "member.removed", "channel_id": channel, "user": bob_view, "role": None},
        ),
        (user_topic(bob), {"type": "channel.removed", "channel": view}),
        (
            channel_topic(channel),
            {"type": "member.removed", "channel_id": channel, "user": carol_view, "role": None},
        ),
        (user_topic(carol), {"type": "channel.removed", "channel": view}),
    ]


async def test_a_ban_removes_the_member_with_its_events_and_a_mute_emits_nothing(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, carol, name="c"))["id"]
    bob_view = await user_of(client, bob)
    frames.take()
    restrictions = f"/api/chat/channels/{channel}/restrictions"

    refused = await client.post(
        restrictions, json={"user_id": str(bob.id), "kind": "ban"}, headers=carol.headers
    )
    muted = await client.post(
        restrictions, json={"user_id": str(carol.id), "kind": "mute"}, headers=alice.headers
    )
    assert (refused.status_code, muted.status_code) == (403, 201)
    assert frames.take() == []

    banned = await client.post(
        restrictions, json={"user_id": str(bob.id), "kind": "ban"}, headers=alice.headers
    )

    assert banned.status_code == 201
    view = channel_of(await channel_state(client, alice, channel))
    assert frames.take() == [
        (
            channel_topic(channel),
            {"type": "member.removed", "channel_id": channel, "user": bob_view, "role": None},
        ),
        (user_topic(bob), {"type": "channel.removed", "channel": view}),
    ]


async def test_inviting_emits_invite_received_and_accepting_the_member_events(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, frames: Frames
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    view = channel_of(await channel_state(client, alice, channel))
    frames.take()
    invites = f"/api/chat/channels/{channel}/invites"

    refused = await client.post(invites, json={"user_ids": [str(carol.id)]}, headers=bob.headers)
    assert refused.status_code == 403
    assert frames.take() == []

    invited = await client.post(
        invites, json={"user_ids": [str(carol.id), str(bob.id)]}, headers=alice.headers
    )
    again = await client.post(invites, json={"user_ids": [str(carol.id)]}, headers=alice.headers)

    assert (invited.json(), again.json()) == ({"invited": 1}, {"invited": 0})
    assert frames.take() == [(user_topic(carol), {"type": "invite.received", "channel": view})]

    invite_id = (await client.get("/api/chat/invites", headers=carol.headers)).json()[0]["id"]
    accepted = (await client.post(f"/api/chat/invites/{invite_id}/accept", headers=carol.headers)).json()
    assert frames.take() == [
        (
            channel_topic(channel),
            {
                "type": "member.added",
                "channel_id": channel,
                "user": await user_of(client, carol),
                "role": "member",
            },
        ),
        (user_topic(carol), {"type": "channel.added", "channel": channel_of(accepted)}),
    ]


def test_every_event_kind_of_events_py_has_its_test() -> None:
    """A new event kind needs its test here: every kind the realtime payload models declare is asserted."""
    models = [
        model
        for model in vars(events).values()
        if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields
    ]
    declared = {kind for model in models for kind in get_args(model.model_fields["type"].annotation)}
    assert {"message.new", "read.updated", "invite.received"} <= declared  # the models were found
    source = Path(__file__).read_text(encoding="utf-8")
    assert {kind for kind in declared if f'"type": "{kind}"' not in source} == set()
