"""Sync pages never split the changes that share a revision (a thread reply and the parent it updated)."""

from __future__ import annotations

import httpx

from tests.apps.chat.factories import ChatTenantFixture, send


async def test_paging_through_sync_misses_nothing_when_a_reply_and_its_parent_share_a_revision(
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
        seen: set[str] = set()
        since = 0
        while True:
            response = await client.get(
                f"/api/chat/channels/{channel['id']}/sync",
                params={"since": since, "limit": limit},
                headers=alice.headers,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            seen |= {message["id"] for message in page["messages"]}
            if not page["has_more"]:
                break
            since = page["messages"][-1]["revision"]
        assert seen == expected, f"limit {limit}"
