"""Read state: unread and unread-mention counts, the read and delivered pointers, receipts."""

from __future__ import annotations

from typing import Any

import httpx

from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send


async def state(client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str) -> dict[str, Any]:
    channels = (await client.get("/api/chat/channels", headers=user.headers)).json()
    found: dict[str, Any] = next(c for c in channels if c["id"] == channel_id)
    return found


async def mark(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str, seq: int, what: str = "read"
) -> Any:
    response = await client.post(
        f"/api/chat/channels/{channel_id}/{what}", json={"seq": seq}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def receipts(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str
) -> dict[str, tuple[int, int]]:
    members = (await client.get(f"/api/chat/channels/{channel_id}/members", headers=user.headers)).json()
    return {m["user"]["handle"]: (m["last_read_seq"], m["last_delivered_seq"]) for m in members}


async def test_unread_counts_per_channel_and_own_messages_never_unread(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    busy = (await tenant.channel(alice, bob, name="busy"))["id"]
    quiet = (await tenant.channel(alice, bob, name="quiet"))["id"]
    for text in ("one", "two @bob", "three @channel"):
        await send(client, alice, busy, text)
    root = await send(client, alice, quiet, "root")
    await send(client, alice, quiet, "reply, not counted @bob", parent_id=root["id"])

    busy_state, quiet_state = await state(client, bob, busy), await state(client, bob, quiet)
    assert (busy_state["unread_count"], busy_state["unread_mentions"], busy_state["last_read_seq"]) == (
        3,
        2,
        0,
    )
    assert (quiet_state["unread_count"], quiet_state["unread_mentions"]) == (1, 1)
    for channel in (busy, quiet):
        mine = await state(client, alice, channel)
        assert (mine["unread_count"], mine["unread_mentions"]) == (0, 0)

    await send(client, bob, busy, "bob answers")
    answered = await state(client, bob, busy)
    assert (answered["unread_count"], answered["unread_mentions"], answered["last_read_seq"]) == (0, 0, 4)


async def test_marking_read_moves_forward_only(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    for number in range(5):
        await send(client, alice, channel, f"m{number} @bob")
    after_three = await mark(client, bob, channel, 3)
    assert (after_three["last_read_seq"], after_three["unread_count"], after_three["unread_mentions"]) == (
        3,
        2,
        2,
    )
    back = await mark(client, bob, channel, 1)
    assert (back["last_read_seq"], back["unread_count"]) == (3, 2)
    beyond = await mark(client, bob, channel, 999)
    assert (beyond["last_read_seq"], beyond["unread_count"], beyond["unread_mentions"]) == (5, 0, 0)
    negative = await client.post(f"/api/chat/channels/{channel}/read", json={"seq": -1}, headers=bob.headers)
    assert negative.status_code == 422


async def test_receipts_and_the_delivered_pointer(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    for number in range(4):
        await send(client, alice, channel, f"m{number}")
    assert await receipts(client, alice, channel) == {"alice": (4, 4), "bob": (0, 0)}
    await mark(client, bob, channel, 3, "delivered")
    assert (await receipts(client, alice, channel))["bob"] == (0, 3)
    await mark(client, bob, channel, 2, "delivered")
    assert (await receipts(client, alice, channel))["bob"] == (0, 3)
    await mark(client, bob, channel, 1)
    assert (await receipts(client, alice, channel))["bob"] == (1, 3)
    await mark(client, bob, channel, 4)
    assert (await receipts(client, bob, channel))["bob"] == (4, 4)


async def test_channel_wide_mentions_count_for_everyone(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob, carol = await tenant.user("alice"), await tenant.user("bob"), await tenant.user("carol")
    channel = (await tenant.channel(alice, bob, carol, name="c"))["id"]
    message = await send(client, alice, channel, "@channel standup, @here too")
    assert message["mentions_channel"] is True
    await send(client, alice, channel, "@everyone again")
    await send(client, alice, channel, "mail me at alice@channel.example")
    for user in (bob, carol):
        current = await state(client, user, channel)
        assert (current["unread_count"], current["unread_mentions"]) == (3, 2)


async def test_deleted_messages_are_not_unread(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    await send(client, alice, channel, "stays")
    oops = await send(client, alice, channel, "oops @bob")
    await client.delete(f"/api/chat/messages/{oops['id']}", headers=alice.headers)
    current = await state(client, bob, channel)
    assert (current["unread_count"], current["unread_mentions"]) == (1, 0)


async def test_read_state_belongs_to_members(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, name="open"))["id"]
    for number in range(3):
        await send(client, alice, channel, f"m{number}")
    visitor = (await client.get(f"/api/chat/channels/{channel}", headers=bob.headers)).json()
    assert (visitor["role"], visitor["unread_count"], visitor["last_read_seq"]) == (None, 0, 3)
    refused = await client.post(f"/api/chat/channels/{channel}/read", json={"seq": 3}, headers=bob.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_a_member")
    # Joining starts at the present, not with the whole backlog unread.
    joined = (await client.post(f"/api/chat/channels/{channel}/join", headers=bob.headers)).json()
    assert (joined["last_read_seq"], joined["unread_count"]) == (3, 0)
    await send(client, alice, channel, "new")
    assert (await state(client, bob, channel))["unread_count"] == 1


async def test_a_mention_in_a_thread_counts_though_replies_are_not_unread(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, name="c"))["id"]
    root = await send(client, bob, channel, "question")
    await send(client, alice, channel, "answer for @bob", parent_id=root["id"])
    current = await state(client, bob, channel)
    assert (current["unread_count"], current["unread_mentions"]) == (0, 1)
    read = await mark(client, bob, channel, current["last_seq"])
    assert (read["unread_count"], read["unread_mentions"]) == (0, 0)
