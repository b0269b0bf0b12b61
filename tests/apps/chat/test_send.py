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

from tests.apps.chat.factories import ChatTenantFixture, send

MAX_STATEMENTS_PER_SEND = {"sqlite": 5, "postgresql": 5, "mysql": 6}
"""A plain text message in a channel of a tenant without webhooks, the sender's credential cached: the
chat user with its tenant; the channel with the membership, bans and mutes and whether the tenant has
webhooks; the next sequence number (read back separately where UPDATE … RETURNING is missing: MariaDB);
the message; the sender's read position."""


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
