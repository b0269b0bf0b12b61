"""Paging through sync: a client that follows `next_since` gets every change exactly once, and a page never
splits the changes that share a revision (a thread reply and the parent it updated)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send


async def follow_sync(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str, since: int, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every message a client gets by following the cursor, and the pages it read."""
    messages: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    while True:
        response = await client.get(
            f"/api/chat/channels/{channel_id}/sync",
            params={"since": since, "limit": limit},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        messages += page["messages"]
        assert page["next_since"] >= since
        since = page["next_since"]
        if not page["has_more"]:
            return messages, pages


async def test_following_next_since_gets_every_change_exactly_once_across_pages(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    sent = [await send(client, alice, channel["id"], f"message {number}") for number in range(11)]
    edited = sent[2]["id"]
    response = await client.patch(
        f"/api/chat/messages/{edited}", json={"text": "edited"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    last_seq = response.json()["revision"]

    messages, pages = await follow_sync(client, alice, channel["id"], since=0, limit=4)

    assert [message["id"] for message in messages] == [m["id"] for m in sent if m["id"] != edited] + [edited]
    assert [message["revision"] for message in messages] == sorted(m["revision"] for m in messages)
    assert len(pages) == 3
    # `last_seq` is the channel's newest number on every page; only the cursor marks the page's end.
    assert [page["last_seq"] for page in pages] == [last_seq] * 3
    assert [page["next_since"] for page in pages] == [
        pages[0]["messages"][-1]["revision"],
        pages[1]["messages"][-1]["revision"],
        last_seq,
    ]
    assert pages[0]["next_since"] < last_seq

    # From the last page's cursor there is nothing new, until there is.
    caught_up, _ = await follow_sync(client, alice, channel["id"], since=pages[-1]["next_since"], limit=4)
    assert caught_up == []
    later = await send(client, alice, channel["id"], "later")
    news, _ = await follow_sync(client, alice, channel["id"], since=pages[-1]["next_since"], limit=4)
    assert [message["id"] for message in news] == [later["id"]]


async def test_a_page_never_ends_between_a_reply_and_its_parent(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    parent = await send(client, alice, channel["id"], "root")
    expected = {parent["id"]}
    for number in range(6):
        reply = await send(client, alice, channel["id"], f"reply {number}", parent_id=parent["id"])
        expected.add(reply["id"])

    for limit in (1, 2, 3):
        messages, _ = await follow_sync(client, alice, channel["id"], since=0, limit=limit)
        # The parent moves to each reply's revision; every reply comes once, the parent at its latest.
        assert sorted(message["id"] for message in messages) == sorted(expected), f"limit {limit}"
