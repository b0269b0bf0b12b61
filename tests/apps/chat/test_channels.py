"""Channels: the four kinds, joining, invitations, leaving, archiving, roles and who may manage what."""

from __future__ import annotations

from typing import Any

import httpx

from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send
from tests.apps.chat.support import audit_events


async def channel_ids(client: httpx.AsyncClient, user: ChatUserFixture, **params: Any) -> list[str]:
    response = await client.get("/api/chat/channels", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


async def test_public_channels_are_listed_and_joined_freely(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    response = await client.post(
        "/api/chat/channels",
        json={"kind": "public", "name": " general ", "topic": "hi"},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    channel = response.json()
    assert (channel["name"], channel["role"], channel["member_count"]) == ("general", "owner", 1)
    unnamed = await client.post(
        "/api/chat/channels", json={"kind": "public", "name": " "}, headers=alice.headers
    )
    assert (unnamed.status_code, unnamed.json()["code"]) == (400, "name_required")

    public = (await client.get("/api/chat/channels/public", headers=bob.headers)).json()
    assert [c["id"] for c in public] == [channel["id"]]
    assert await channel_ids(client, bob) == []
    peek = (await client.get(f"/api/chat/channels/{channel['id']}", headers=bob.headers)).json()
    assert peek["role"] is None
    assert (
        await client.get(f"/api/chat/channels/{channel['id']}/messages", headers=bob.headers)
    ).status_code == 200
    cannot_post = await client.post(
        f"/api/chat/channels/{channel['id']}/messages", json={"text": "hi"}, headers=bob.headers
    )
    assert (cannot_post.status_code, cannot_post.json()["code"]) == (403, "not_a_member")

    joined = await client.post(f"/api/chat/channels/{channel['id']}/join", headers=bob.headers)
    assert joined.status_code == 200
    assert (joined.json()["role"], joined.json()["member_count"]) == ("member", 2)
    assert (
        await client.post(f"/api/chat/channels/{channel['id']}/join", headers=bob.headers)
    ).status_code == 200
    assert await channel_ids(client, bob) == [channel["id"]]
    await send(client, bob, channel["id"], "joined")


async def test_a_private_channel_is_invisible_and_cannot_be_joined(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = await tenant.channel(alice, kind="private", name="secret")
    assert channel["kind"] == "private"
    assert (await client.get("/api/chat/channels/public", headers=bob.headers)).json() == []
    for method, path in (
        ("GET", f"/api/chat/channels/{channel['id']}"),
        ("POST", f"/api/chat/channels/{channel['id']}/join"),
        ("GET", f"/api/chat/channels/{channel['id']}/messages"),
    ):
        response = await client.request(method, path, headers=bob.headers)
        assert (response.status_code, response.json()["code"]) == (404, "channel_not_found"), path


async def test_invitations_are_accepted_or_declined(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = await tenant.channel(alice, kind="private", name="secret")
    response = await client.post(
        f"/api/chat/channels/{channel['id']}/invites",
        json={"user_ids": [str(bob.id), str(carol.id), str(bob.id)]},
        headers=alice.headers,
    )
    assert response.json() == {"invited": 2}
    again = await client.post(
        f"/api/chat/channels/{channel['id']}/invites", json={"user_ids": [str(bob.id)]}, headers=alice.headers
    )
    assert again.json() == {"invited": 0}

    invites = (await client.get("/api/chat/invites", headers=bob.headers)).json()
    assert [(i["channel"]["id"], i["invited_by"]) for i in invites] == [(channel["id"], str(alice.id))]
    # Being invited is not being a member.
    assert (await client.get(f"/api/chat/channels/{channel['id']}", headers=bob.headers)).status_code == 404
    not_theirs = await client.post(f"/api/chat/invites/{invites[0]['id']}/accept", headers=carol.headers)
    assert not_theirs.status_code == 404
    accepted = await client.post(f"/api/chat/invites/{invites[0]['id']}/accept", headers=bob.headers)
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "member"
    assert channel["id"] in await channel_ids(client, bob)
    assert (await client.get("/api/chat/invites", headers=bob.headers)).json() == []
    used = await client.post(f"/api/chat/invites/{invites[0]['id']}/accept", headers=bob.headers)
    assert used.status_code == 404

    carols = (await client.get("/api/chat/invites", headers=carol.headers)).json()
    declined = await client.post(f"/api/chat/invites/{carols[0]['id']}/decline", headers=carol.headers)
    assert declined.status_code == 204
    assert (await client.get("/api/chat/invites", headers=carol.headers)).json() == []
    assert (await client.get(f"/api/chat/channels/{channel['id']}", headers=carol.headers)).status_code == 404


async def test_a_direct_channel_is_created_once_per_pair(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    body = {"kind": "direct", "members": [str(bob.id)]}
    first = await client.post("/api/chat/channels", json=body, headers=alice.headers)
    assert first.status_code == 201
    assert first.json()["role"] == "member"
    assert {m["id"] for m in first.json()["members"]} == {str(alice.id), str(bob.id)}
    second = await client.post("/api/chat/channels", json=body, headers=alice.headers)
    assert (second.status_code, second.json()["id"]) == (200, first.json()["id"])
    reverse = await client.post(
        "/api/chat/channels", json={"kind": "direct", "members": [str(alice.id)]}, headers=bob.headers
    )
    assert (reverse.status_code, reverse.json()["id"]) == (200, first.json()["id"])
    assert (await channel_ids(client, alice)).count(first.json()["id"]) == 1

    for members in ([], [str(bob.id), str(carol.id)], [str(alice.id)]):
        bad = await client.post(
            "/api/chat/channels", json={"kind": "direct", "members": members}, headers=alice.headers
        )
        assert (bad.status_code, bad.json()["code"]) == (400, "direct_needs_one"), members
    direct = first.json()["id"]
    leave = await client.post(f"/api/chat/channels/{direct}/leave", headers=alice.headers)
    assert (leave.status_code, leave.json()["code"]) == (400, "direct_channel")
    add = await client.post(
        f"/api/chat/channels/{direct}/members", json={"user_ids": [str(carol.id)]}, headers=alice.headers
    )
    assert add.status_code in (400, 403)
    assert (await client.get(f"/api/chat/channels/{direct}", headers=carol.headers)).status_code == 404


async def test_a_group_needs_no_name_and_shows_its_people(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    response = await client.post(
        "/api/chat/channels",
        json={"kind": "group", "members": [str(bob.id), str(carol.id)]},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert group["member_count"] == 3
    assert {m["id"] for m in group["members"]} == {str(alice.id), str(bob.id), str(carol.id)}
    assert group["id"] in await channel_ids(client, carol)
    outsider = await tenant.user("dave")
    assert (
        await client.get(f"/api/chat/channels/{group['id']}", headers=outsider.headers)
    ).status_code == 404


async def test_leaving_a_channel(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = await tenant.channel(alice, bob, kind="private", name="secret")
    response = await client.post(f"/api/chat/channels/{channel['id']}/leave", headers=bob.headers)
    assert response.status_code == 204
    assert channel["id"] not in await channel_ids(client, bob)
    assert (await client.get(f"/api/chat/channels/{channel['id']}", headers=bob.headers)).status_code == 404
    twice = await client.post(f"/api/chat/channels/{channel['id']}/leave", headers=bob.headers)
    assert twice.status_code == 404
    assert [e.details["user_id"] for e in await audit_events(platform, "chat.member_left")] == [str(bob.id)]


async def test_an_archived_channel_refuses_posts_until_unarchived(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = await tenant.channel(alice, bob, name="old")
    message = await send(client, bob, channel["id"], "before")
    refused = await client.put(f"/api/chat/channels/{channel['id']}/archive", headers=bob.headers)
    assert refused.status_code == 403
    archived = await client.put(f"/api/chat/channels/{channel['id']}/archive", headers=alice.headers)
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None

    post = await client.post(
        f"/api/chat/channels/{channel['id']}/messages", json={"text": "x"}, headers=bob.headers
    )
    assert (post.status_code, post.json()["code"]) == (409, "channel_archived")
    edit = await client.patch(f"/api/chat/messages/{message['id']}", json={"text": "y"}, headers=bob.headers)
    assert edit.status_code == 409
    react = await client.put(f"/api/chat/messages/{message['id']}/reactions/👍", headers=bob.headers)
    assert react.status_code == 409
    history = (await client.get(f"/api/chat/channels/{channel['id']}/messages", headers=bob.headers)).json()
    assert [m["text"] for m in history["messages"]] == ["before"]
    assert channel["id"] not in await channel_ids(client, bob)
    assert channel["id"] in await channel_ids(client, bob, include_archived="true")
    assert channel["id"] not in [
        c["id"] for c in (await client.get("/api/chat/channels/public", headers=bob.headers)).json()
    ]

    unarchived = await client.delete(f"/api/chat/channels/{channel['id']}/archive", headers=alice.headers)
    assert unarchived.json()["archived_at"] is None
    await send(client, bob, channel["id"], "after")
    actions = [e.action for e in await audit_events(platform, "chat.channel_archived")]
    actions += [e.action for e in await audit_events(platform, "chat.channel_unarchived")]
    assert actions == ["chat.channel_archived", "chat.channel_unarchived"]


async def test_roles_decide_who_manages_and_who_moderates(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = await tenant.channel(alice, bob, carol, name="team")
    url = f"/api/chat/channels/{channel['id']}"

    rename = await client.patch(url, json={"name": "mine"}, headers=bob.headers)
    assert (rename.status_code, rename.json()["code"]) == (403, "channel_permission")
    slow = await client.patch(url, json={"slow_mode_seconds": 5}, headers=bob.headers)
    assert slow.status_code == 403
    promote_self = await client.patch(f"{url}/members/{bob.id}", json={"role": "owner"}, headers=bob.headers)
    assert promote_self.status_code == 403
    kick = await client.delete(f"{url}/members/{carol.id}", headers=bob.headers)
    assert kick.status_code == 403

    promoted = await client.patch(
        f"{url}/members/{bob.id}", json={"role": "moderator"}, headers=alice.headers
    )
    assert (promoted.status_code, promoted.json()["role"]) == (200, "moderator")
    assert (await client.patch(url, json={"slow_mode_seconds": 5}, headers=bob.headers)).status_code == 200
    assert (await client.patch(url, json={"name": "mine"}, headers=bob.headers)).status_code == 403
    message = await send(client, carol, channel["id"], "pin me")
    assert (
        await client.put(f"/api/chat/messages/{message['id']}/pin", headers=bob.headers)
    ).status_code == 200
    assert (
        await client.put(f"/api/chat/messages/{message['id']}/pin", headers=carol.headers)
    ).status_code == 403

    renamed = await client.patch(url, json={"name": "renamed", "topic": "t"}, headers=alice.headers)
    assert (renamed.json()["name"], renamed.json()["topic"]) == ("renamed", "t")
    added = await client.post(f"{url}/members", json={"user_ids": [str(bob.id)]}, headers=alice.headers)
    assert (added.status_code, added.json()) == (201, [])
    removed = await client.delete(f"{url}/members/{carol.id}", headers=alice.headers)
    assert removed.status_code == 204
    members = (await client.get(f"{url}/members", headers=alice.headers)).json()
    assert {(m["user"]["id"], m["role"]) for m in members} == {
        (str(alice.id), "owner"),
        (str(bob.id), "moderator"),
    }
    assert len(await audit_events(platform, "chat.member_role_changed")) == 1
    assert len(await audit_events(platform, "chat.member_removed")) == 1


async def test_adding_members_takes_users_of_the_tenant_only(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, other_tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    stranger = await other_tenant.user("stranger")
    channel = await tenant.channel(alice, kind="private", name="p")
    response = await client.post(
        f"/api/chat/channels/{channel['id']}/members",
        json={"user_ids": [str(stranger.id)]},
        headers=alice.headers,
    )
    assert (response.status_code, response.json()["code"]) == (404, "chat_user_not_found")
    invite = await client.post(
        f"/api/chat/channels/{channel['id']}/invites",
        json={"user_ids": [str(stranger.id)]},
        headers=alice.headers,
    )
    assert invite.status_code == 404
    assert (await client.get("/api/chat/invites", headers=stranger.headers)).json() == []


async def test_the_server_api_creates_channels_for_users(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    body = {"kind": "direct", "created_by": "alice", "members": ["bob"]}
    first = await client.post("/api/chat/server/channels", json=body, headers=tenant.headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/chat/server/channels", json=body, headers=tenant.headers)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert first.json()["id"] in await channel_ids(client, bob)

    team = await client.post(
        "/api/chat/server/channels",
        json={"kind": "private", "name": "team", "created_by": "alice", "members": ["bob"]},
        headers=tenant.headers,
    )
    assert team.status_code == 201
    assert (await client.get(f"/api/chat/channels/{team.json()['id']}", headers=alice.headers)).json()[
        "role"
    ] == "owner"
    message = await client.post(
        f"/api/chat/server/channels/{team.json()['id']}/messages",
        json={"user_id": "bob", "text": "from the backend", "client_id": "srv-1"},
        headers=tenant.headers,
    )
    assert message.status_code == 201
    assert message.json()["user"]["id"] == str(bob.id)
    replay = await client.post(
        f"/api/chat/server/channels/{team.json()['id']}/messages",
        json={"user_id": "bob", "text": "from the backend", "client_id": "srv-1"},
        headers=tenant.headers,
    )
    assert (replay.status_code, replay.json()["id"]) == (200, message.json()["id"])
    missing = await client.post(
        "/api/chat/server/channels",
        json={"kind": "group", "created_by": "alice", "members": ["nobody"]},
        headers=tenant.headers,
    )
    assert missing.status_code == 404
