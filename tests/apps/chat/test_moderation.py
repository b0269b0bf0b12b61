"""Moderation: channel bans and mutes (and their expiry), tenant-wide bans, slow mode, blocked words, reports,
and the audit trail every one of them leaves."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import update

from pentad.apps.chat.models import ChatRestriction
from pentad.core.db.base import utcnow
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send
from tests.apps.chat.support import audit_events


async def restrict(
    client: httpx.AsyncClient,
    moderator: ChatUserFixture,
    channel_id: str,
    user: ChatUserFixture,
    kind: str,
    **extra: object,
) -> httpx.Response:
    return await client.post(
        f"/api/chat/channels/{channel_id}/restrictions",
        json={"user_id": str(user.id), "kind": kind, **extra},
        headers=moderator.headers,
    )


async def post(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str, text: str = "hi"
) -> httpx.Response:
    return await client.post(
        f"/api/chat/channels/{channel_id}/messages", json={"text": text}, headers=user.headers
    )


async def test_a_channel_ban_removes_hides_and_keeps_out(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    public = (await tenant.channel(alice, bob, carol, name="open"))["id"]
    private = (await tenant.channel(alice, bob, kind="private", name="closed"))["id"]
    message = await send(client, bob, public, "mine")

    not_moderator = await restrict(client, carol, public, bob, "ban")
    assert not_moderator.status_code == 403
    yourself = await restrict(client, alice, public, alice, "ban")
    assert (yourself.status_code, yourself.json()["code"]) == (400, "self_restriction")
    response = await restrict(client, alice, public, bob, "ban", reason="spam")
    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["reason"], response.json()["expires_at"]) == (
        "ban",
        "spam",
        None,
    )
    assert (await restrict(client, alice, private, bob, "ban")).status_code == 201

    members = (await client.get(f"/api/chat/channels/{public}/members", headers=alice.headers)).json()
    assert str(bob.id) not in [m["user"]["id"] for m in members]
    for path in (f"/api/chat/channels/{public}", f"/api/chat/channels/{public}/messages"):
        refused = await client.get(path, headers=bob.headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "banned")
    assert (await client.get(f"/api/chat/channels/{private}", headers=bob.headers)).status_code == 404
    assert (await client.get(f"/api/chat/messages/{message['id']}", headers=bob.headers)).status_code in (
        403,
        404,
    )
    rejoin = await client.post(f"/api/chat/channels/{public}/join", headers=bob.headers)
    assert (rejoin.status_code, rejoin.json()["code"]) == (403, "banned")
    assert (await client.get("/api/chat/channels", headers=bob.headers)).json() == []
    assert (await client.get("/api/chat/channels/public", headers=bob.headers)).json() == []
    await client.post(
        f"/api/chat/channels/{private}/invites", json={"user_ids": [str(bob.id)]}, headers=alice.headers
    )
    invites = (await client.get("/api/chat/invites", headers=bob.headers)).json()
    for invite in invites:
        accepted = await client.post(f"/api/chat/invites/{invite['id']}/accept", headers=bob.headers)
        assert accepted.status_code == 403

    listed = (await client.get(f"/api/chat/channels/{public}/restrictions", headers=alice.headers)).json()
    assert [(r["user_id"], r["kind"]) for r in listed] == [(str(bob.id), "ban")]
    assert (
        await client.get(f"/api/chat/channels/{public}/restrictions", headers=carol.headers)
    ).status_code == 403
    lifted = await client.delete(
        f"/api/chat/channels/{public}/restrictions/{listed[0]['id']}", headers=alice.headers
    )
    assert lifted.status_code == 204
    assert (await client.post(f"/api/chat/channels/{public}/join", headers=bob.headers)).status_code == 200
    assert [e.details["user_id"] for e in await audit_events(platform, "chat.user_banned")] == [
        str(bob.id)
    ] * 2
    assert len(await audit_events(platform, "chat.ban_lifted")) == 1


async def test_a_moderator_cannot_ban_the_owner(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, carol, name="c"))["id"]
    for user in (bob, carol):
        await client.patch(
            f"/api/chat/channels/{channel}/members/{user.id}",
            json={"role": "moderator"},
            headers=alice.headers,
        )
    for target in (alice, carol):
        refused = await restrict(client, bob, channel, target, "ban")
        assert refused.status_code == 403, target
        assert (await restrict(client, bob, channel, target, "mute")).status_code == 403
    assert (await client.get(f"/api/chat/channels/{channel}", headers=alice.headers)).json()[
        "role"
    ] == "owner"
    assert (await restrict(client, alice, channel, carol, "mute")).status_code == 201


async def test_a_muted_member_reads_but_does_not_post_or_react(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    own = await send(client, bob, channel, "before the mute")
    response = await restrict(client, alice, channel, bob, "mute", duration=3600)
    assert response.status_code == 201
    assert response.json()["expires_at"] is not None

    assert (
        await client.get(f"/api/chat/channels/{channel}/messages", headers=bob.headers)
    ).status_code == 200
    for attempt in (
        await post(client, bob, channel),
        await client.put(f"/api/chat/messages/{own['id']}/reactions/👍", headers=bob.headers),
        await client.patch(f"/api/chat/messages/{own['id']}", json={"text": "edited"}, headers=bob.headers),
        await client.post(f"/api/chat/channels/{channel}/typing", json={"active": True}, headers=bob.headers),
    ):
        assert (attempt.status_code, attempt.json()["code"]) == (403, "muted")
    assert (
        await client.post(f"/api/chat/channels/{channel}/read", json={"seq": 1}, headers=bob.headers)
    ).status_code == 200
    assert (await post(client, alice, channel, "the moderator speaks")).status_code == 201
    events = await audit_events(platform, "chat.user_muted")
    assert [(e.details["user_id"], e.details["expires_at"] is not None) for e in events] == [
        (str(bob.id), True)
    ]


async def test_an_expired_restriction_no_longer_applies(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    mute = (await restrict(client, alice, channel, bob, "mute", duration=60)).json()
    assert (await post(client, bob, channel)).status_code == 403
    async with platform.database.transaction() as session:
        await session.execute(
            update(ChatRestriction)
            .where(ChatRestriction.id == uuid.UUID(mute["id"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await post(client, bob, channel)).status_code == 201
    assert (
        await client.get(f"/api/chat/channels/{channel}/restrictions", headers=alice.headers)
    ).json() == []

    ban = (await restrict(client, alice, channel, bob, "ban", duration=60)).json()
    assert (await client.get(f"/api/chat/channels/{channel}", headers=bob.headers)).status_code == 403
    async with platform.database.transaction() as session:
        await session.execute(
            update(ChatRestriction)
            .where(ChatRestriction.id == uuid.UUID(ban["id"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await client.post(f"/api/chat/channels/{channel}/join", headers=bob.headers)).status_code == 200
    assert (await post(client, bob, channel)).status_code == 201


async def test_a_tenant_wide_ban_through_the_server_api(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    private = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    response = await client.post(
        "/api/chat/server/restrictions",
        json={"user_id": "bob", "kind": "ban", "reason": "abuse"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    restriction = response.json()
    assert restriction["channel_id"] is None

    for channel_id in (channel, private):
        refused = await client.get(f"/api/chat/channels/{channel_id}/messages", headers=bob.headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "banned")
        assert (await post(client, bob, channel_id)).status_code == 403
    created = await client.post("/api/chat/channels", json={"name": "mine"}, headers=bob.headers)
    assert (created.status_code, created.json()["code"]) == (403, "banned")
    assert (await client.get("/api/chat/channels/public", headers=bob.headers)).json() == []
    assert (await client.get("/api/chat/channels", headers=bob.headers)).json() == []
    listed = (await client.get("/api/chat/server/restrictions", headers=tenant.headers)).json()
    assert [r["id"] for r in listed] == [restriction["id"]]

    lifted = await client.delete(f"/api/chat/server/restrictions/{restriction['id']}", headers=tenant.headers)
    assert lifted.status_code == 204
    assert (await post(client, bob, channel)).status_code == 201
    assert [e.details["reason"] for e in await audit_events(platform, "chat.tenant_ban")] == ["abuse"]
    assert len(await audit_events(platform, "chat.tenant_ban_lifted")) == 1


async def test_a_tenant_wide_mute_silences_every_channel(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    first = (await tenant.channel(alice, bob, name="one"))["id"]
    second = (await tenant.channel(alice, bob, kind="group"))["id"]
    response = await client.post(
        "/api/chat/server/restrictions", json={"user_id": "bob", "kind": "mute"}, headers=tenant.headers
    )
    assert response.status_code == 201
    for channel in (first, second):
        refused = await post(client, bob, channel)
        assert (refused.status_code, refused.json()["code"]) == (403, "muted")
        assert (
            await client.get(f"/api/chat/channels/{channel}/messages", headers=bob.headers)
        ).status_code == 200


async def test_slow_mode_holds_members_back_but_not_moderators(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    response = await client.patch(
        f"/api/chat/channels/{channel}", json={"slow_mode_seconds": 30}, headers=alice.headers
    )
    assert response.json()["slow_mode_seconds"] == 30
    assert (await post(client, bob, channel, "first")).status_code == 201
    held = await post(client, bob, channel, "second")
    assert (held.status_code, held.json()["code"]) == (429, "slow_mode")
    assert 1 <= int(held.headers["Retry-After"]) <= 30
    for number in range(3):
        assert (await post(client, alice, channel, f"moderator {number}")).status_code == 201
    await client.patch(f"/api/chat/channels/{channel}", json={"slow_mode_seconds": 0}, headers=alice.headers)
    assert (await post(client, bob, channel, "free again")).status_code == 201
    changes = [e.details["changes"] for e in await audit_events(platform, "chat.channel_updated")]
    assert changes == [{"slow_mode_seconds": 30}, {"slow_mode_seconds": 0}]


async def test_blocked_words_are_refused_case_insensitively_as_whole_words(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    response = await client.put(
        "/api/chat/server/tenant/blocked-words",
        json={"blocked_words": ["Darn", "heck it", "c++"]},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["blocked_words"] == ["c++", "darn", "heck it"]
    for text in ("darn", "oh DARN!", "well, Heck it", "(c++)", "**darn**"):
        refused = await post(client, bob, channel, text)
        assert (refused.status_code, refused.json()["code"]) == (400, "blocked_word"), text
    for text in ("darning socks", "undarned", "heck", "c+"):
        assert (await post(client, bob, channel, text)).status_code == 201, text
    message = await send(client, bob, channel, "clean")
    edited = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "DaRn"}, headers=bob.headers
    )
    assert (edited.status_code, edited.json()["code"]) == (400, "blocked_word")
    assert len(await audit_events(platform, "chat.tenant_updated")) == 1


async def test_reports_go_to_the_moderators(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, carol, name="c"))["id"]
    rude = await send(client, bob, channel, "rude")
    own = await client.post(
        f"/api/chat/messages/{rude['id']}/reports", json={"reason": "x"}, headers=bob.headers
    )
    assert (own.status_code, own.json()["code"]) == (400, "own_message")
    response = await client.post(
        f"/api/chat/messages/{rude['id']}/reports", json={"reason": "insult"}, headers=carol.headers
    )
    assert response.status_code == 201, response.text
    report = response.json()
    again = await client.post(
        f"/api/chat/messages/{rude['id']}/reports", json={"reason": "again"}, headers=carol.headers
    )
    assert again.json()["id"] == report["id"]

    assert (await client.get("/api/chat/reports", headers=carol.headers)).json() == []
    assert (await client.get("/api/chat/reports", headers=bob.headers)).json() == []
    queue = (await client.get("/api/chat/reports", headers=alice.headers)).json()
    assert [(r["id"], r["reason"], r["status"]) for r in queue] == [(report["id"], "insult", "open")]

    refused = await client.post(
        f"/api/chat/reports/{report['id']}/resolve",
        json={"status": "resolved", "delete_message": True},
        headers=carol.headers,
    )
    assert refused.status_code == 403
    resolved = await client.post(
        f"/api/chat/reports/{report['id']}/resolve",
        json={"status": "resolved", "resolution": "removed", "delete_message": True},
        headers=alice.headers,
    )
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolved_by"]) == ("resolved", str(alice.id))
    gone = (await client.get(f"/api/chat/messages/{rude['id']}", headers=alice.headers)).json()
    assert (gone["text"], gone["deleted_at"] is not None) == ("", True)
    assert (await client.get("/api/chat/reports", headers=alice.headers)).json() == []
    done = (
        await client.get("/api/chat/reports", params={"status": "resolved"}, headers=alice.headers)
    ).json()
    assert [r["id"] for r in done] == [report["id"]]

    assert len(await audit_events(platform, "chat.message_reported")) == 1
    assert [e.resource_id for e in await audit_events(platform, "chat.report_resolved")] == [report["id"]]
    assert [e.resource_id for e in await audit_events(platform, "chat.message_deleted_by_moderator")] == [
        rude["id"]
    ]


async def test_tenant_moderators_see_every_report_of_the_tenant(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, other_tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    guard = await tenant.user("guard", role="moderator")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    rude = await send(client, bob, channel, "rude")
    report = (await client.post(f"/api/chat/messages/{rude['id']}/reports", headers=alice.headers)).json()
    queue = (await client.get("/api/chat/reports", headers=guard.headers)).json()
    assert [r["id"] for r in queue] == [report["id"]]
    dismissed = await client.post(
        f"/api/chat/reports/{report['id']}/resolve", json={"status": "dismissed"}, headers=guard.headers
    )
    assert dismissed.json()["status"] == "dismissed"
    foreign = await other_tenant.user("foreign", role="moderator")
    assert (
        await client.get("/api/chat/reports", params={"status": "dismissed"}, headers=foreign.headers)
    ).json() == []
    other = await client.post(
        f"/api/chat/reports/{report['id']}/resolve", json={"status": "resolved"}, headers=foreign.headers
    )
    assert other.status_code == 404
