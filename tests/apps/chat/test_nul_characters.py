"""A NUL character (U+0000) anywhere in chat input is refused with 422, and nothing is stored.

PostgreSQL cannot store it (asyncpg refused it with a 500); the core's NUL guard answers first, for every
app. Run on every database: PENTAD_TEST_DATABASES=sqlite,postgresql,mariadb.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, send
from tests.apps.chat.support import changed_tables, snapshot

REACTION = quote("x\x00y")


def assert_nul_refused(response: httpx.Response, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert "U+0000" in problem["detail"]
    assert problem["errors"] == [
        {"loc": loc, "msg": "must not contain the NUL character (U+0000)", "type": "nul_character"}
    ]


async def test_nul_in_message_channel_reaction_or_user_name_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    message = await send(client, alice, channel["id"], "first")
    before = await snapshot(platform)

    response = await client.post(
        f"/api/chat/channels/{channel['id']}/messages", json={"text": "a\x00b"}, headers=alice.headers
    )
    assert_nul_refused(response, ["body", "text"])

    response = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "edited\x00"}, headers=alice.headers
    )
    assert_nul_refused(response, ["body", "text"])

    response = await client.post(
        "/api/chat/channels", json={"kind": "public", "name": "ra\x00ndom"}, headers=alice.headers
    )
    assert_nul_refused(response, ["body", "name"])

    response = await client.put(
        f"/api/chat/messages/{message['id']}/reactions/{REACTION}", headers=alice.headers
    )
    assert_nul_refused(response, ["path"])

    response = await client.put(
        "/api/chat/server/users/bob", json={"name": "Bob\x00by"}, headers=tenant.headers
    )
    assert_nul_refused(response, ["body", "name"])

    response = await client.put(
        "/api/chat/server/users/alice",
        json={"name": "Alice", "data": {"nick\x00": 1}},
        headers=tenant.headers,
    )
    assert_nul_refused(response, ["body", "data", "nick\\u0000"])

    response = await client.get("/api/chat/search", params={"q": "fir\x00st"}, headers=alice.headers)
    assert_nul_refused(response, ["query", "q"])

    assert changed_tables(before, await snapshot(platform)) == {}


async def test_text_that_only_looks_like_an_escaped_nul_is_stored_as_written(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)

    message = await send(client, alice, channel["id"], "a literal \\u0000 and %00")

    response = await client.get(f"/api/chat/messages/{message['id']}", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "a literal \\u0000 and %00"
