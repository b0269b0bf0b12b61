"""The send hot path's cost in SQL statements, pinned so it cannot grow unnoticed (bench/chat.py reports the
figure with its load). That the shortcuts keep behaviour is the other tests' job: webhooks still get every
message (test_webhooks.py), bans and mutes still hold (test_moderation.py), sequence numbers stay gapless
under concurrent senders (tests/sdk)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, send

MAX_STATEMENTS_PER_SEND = {"sqlite": 4, "postgresql": 4, "mysql": 5}
"""A plain text message in a channel of a tenant without webhooks, the sender's credential cached (and with
it the chat user and its tenant, tenancy.ACTOR_ROWS): the channel with the membership, bans and mutes and
whether the tenant has webhooks; the next sequence number (read back separately where UPDATE … RETURNING is
missing: MariaDB); the message; the sender's read position."""


@contextmanager
def statements(connection: AsyncConnection) -> Iterator[list[str]]:
    executed: list[str] = []

    def count(*args: object) -> None:
        executed.append(str(args[2]).split("\n", 1)[0])

    sync = connection.sync_connection
    assert sync is not None
    event.listen(sync, "before_cursor_execute", count)
    try:
        yield executed
    finally:
        event.remove(sync, "before_cursor_execute", count)


async def test_a_plain_send_costs_a_handful_of_statements(
    client: httpx.AsyncClient, connection: AsyncConnection, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    await send(client, alice, channel, "the first send caches the credential")

    with statements(connection) as executed:
        message = await send(client, alice, channel, "a plain text message")

    assert message["seq"] == 2
    # What the test's outer transaction adds around each request (savepoints) is not the send's cost.
    own = [s for s in executed if "SAVEPOINT" not in s.upper()]
    assert len(own) <= MAX_STATEMENTS_PER_SEND[connection.dialect.name], "\n".join(own)


async def test_a_cached_chat_user_costs_no_statement_and_follows_every_change(
    client: httpx.AsyncClient, connection: AsyncConnection, tenant: ChatTenantFixture
) -> None:
    """The chat user and tenant are kept with the cached credential (tenancy.ACTOR_ROWS); every change to
    either is seen by the next request."""
    alice, bob = await tenant.user("alice", name="Alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, kind="private", name="p"))["id"]
    assert (await client.get("/api/chat/me", headers=alice.headers)).json()["name"] == "Alice"
    with statements(connection) as executed:
        response = await client.get("/api/chat/me", headers=alice.headers)
    assert response.status_code == 200
    assert [s for s in executed if "SAVEPOINT" not in s.upper()] == []

    # The tenant's backend renames her.
    renamed = await client.put(
        "/api/chat/server/users/alice", json={"name": "Alicia"}, headers=tenant.headers
    )
    assert renamed.status_code == 200
    assert (await client.get("/api/chat/me", headers=alice.headers)).json()["name"] == "Alicia"

    # Her own presence.
    away = await client.put("/api/chat/me/presence", json={"status": "away"}, headers=alice.headers)
    assert away.status_code == 200
    assert (await client.get("/api/chat/me", headers=alice.headers)).json()["presence"] == "away"

    # A blocked word set after she was cached holds for her next send.
    blocked = await client.put(
        "/api/chat/server/tenant/blocked-words", json={"blocked_words": ["darn"]}, headers=tenant.headers
    )
    assert blocked.status_code == 200
    refused = await client.post(
        f"/api/chat/channels/{channel}/messages", json={"text": "oh darn"}, headers=alice.headers
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "blocked_word")

    # Deactivated: refused at once, nothing sent.
    deactivated = await client.post("/api/chat/server/users/alice/deactivate", headers=tenant.headers)
    assert deactivated.status_code == 200
    assert (await client.get("/api/chat/me", headers=alice.headers)).status_code == 401
    gone = await client.post(
        f"/api/chat/channels/{channel}/messages", json={"text": "still here?"}, headers=alice.headers
    )
    assert gone.status_code == 401
    history = await client.get(f"/api/chat/channels/{channel}/messages", headers=bob.headers)
    assert [m["text"] for m in history.json()["messages"]] == []


async def test_sends_are_counted_on_metrics_once_committed_and_refusals_are_not(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    def sent() -> float:
        value = platform.metrics.registry.get_sample_value("pentad_chat_messages_sent_total")
        return value or 0.0

    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = (await tenant.channel(alice, bob, kind="private", name="counted"))["id"]
    before = sent()
    await send(client, alice, channel, "one")
    await send(client, bob, channel, "two")
    assert sent() == before + 2

    await client.patch(f"/api/chat/channels/{channel}", json={"slow_mode_seconds": 60}, headers=alice.headers)
    held = await client.post(
        f"/api/chat/channels/{channel}/messages", json={"text": "too soon"}, headers=bob.headers
    )
    assert held.status_code == 429
    assert sent() == before + 2
