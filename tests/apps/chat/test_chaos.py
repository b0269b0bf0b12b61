"""Chaos: a sender keeps posting for 30 s (PENTAD_TEST_CHAOS_SECONDS) while the server is killed (SIGKILL)
and restarted twice.

Nothing may be lost or doubled: every message the sender attempted is in the channel exactly once, in
strictly increasing sequence numbers, every acknowledged one among them; and a second client that stays
subscribed throughout receives each of them exactly once, in order, across both restarts."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pentad_chat import ChatClient, ChatServer, Message, MessageEvent, OutgoingMessage
from tests.databases import scratch_database, selected_databases
from tests.sdk.live_chat import ChatServerProcess

DURATION = float(os.environ.get("PENTAD_TEST_CHAOS_SECONDS", "30"))
KILLS_AT = (DURATION * 0.25, DURATION * 0.58)
"""When the server is killed, seconds into the run (about 8 s and 17 s of the default 30)."""
DOWN_FOR = 1.0
"""How long the server stays dead each time, seconds: the sender's queue fills meanwhile."""
SEND_INTERVAL = 0.01
MAX_OUTSTANDING = 100
"""The sender stops queueing when this many messages wait for their acknowledgement."""


@pytest.fixture(params=["sqlite", "postgresql"])
async def chaos_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the test's own: the server commits into it, unlike the per-run test databases."""
    kind: str = request.param
    if kind not in selected_databases():
        pytest.skip(f"{kind} is not in PENTAD_TEST_DATABASES")
    async with scratch_database(kind, tmp_path) as url:
        yield url


async def kill_and_restart(server: ChatServerProcess, started: float, *clients: ChatClient) -> int:
    kills = 0
    for at in KILLS_AT:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        await server.kill()
        kills += 1
        await asyncio.sleep(DOWN_FOR)
        await server.start()
        # The next kill should find the clients back on the new process, however slow its start was.
        async with asyncio.timeout(60):
            for client in clients:
                await client.wait_connected()
    return kills


async def all_messages(client: ChatClient, channel_id: object) -> list[Message]:
    found: list[Message] = []
    after = 0
    while True:
        page = await client.history(channel_id, after=after, limit=200)  # type: ignore[arg-type]
        found.extend(page.messages)
        if not page.has_more:
            return found
        after = page.messages[-1].seq


@pytest.mark.slow
async def test_no_message_is_lost_or_doubled_when_the_server_is_killed(
    tmp_path: Path, chaos_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await ChatServerProcess.create(tmp_path, chaos_database_url)
    await server.start()
    try:
        async with ChatServer(server.base_url, server.server_key) as backend:
            for name in ("sender", "reader"):
                await backend.upsert_user(name, name=name.title())
            channel = await backend.create_channel("sender", kind="group", members=["reader"])
            sender_token = (await backend.create_user_token("sender")).token
            reader_token = (await backend.create_user_token("reader")).token

        sender = ChatClient(server.base_url, sender_token, backoff_max=1.0, timeout=5.0)
        reader = ChatClient(server.base_url, reader_token, backoff_max=1.0, timeout=5.0)
        received = reader.events("message.new")
        try:
            await sender.connect()
            await reader.connect()
            await reader.subscribe(channel.id)

            started = time.monotonic()
            killer = asyncio.create_task(kill_and_restart(server, started, sender, reader))
            attempted: list[OutgoingMessage] = []
            while time.monotonic() - started < DURATION:
                if len(sender.pending) < MAX_OUTSTANDING:
                    attempted.append(sender.enqueue(channel.id, f"chaos {len(attempted)}"))
                await asyncio.sleep(SEND_INTERVAL)
            kills = await killer
            async with asyncio.timeout(60):
                await sender.drain()

            acknowledged = [await o for o in attempted if o.acknowledged]
            stored = await all_messages(sender, channel.id)

            delivered: list[MessageEvent] = []
            async with asyncio.timeout(60):
                while len(delivered) < len(stored):
                    event = await received.get()
                    assert isinstance(event, MessageEvent)
                    delivered.append(event)
        finally:
            await sender.close()
            await reader.close()
    finally:
        await server.stop()

    retried = sum(o.attempts - 1 for o in attempted)
    with capsys.disabled():
        print(
            f"\nchaos ({chaos_database_url.split(':')[0]}): {len(attempted)} sent, {retried} retried, "
            f"{len(acknowledged)} acknowledged, {len(stored)} stored, {len(delivered)} delivered live "
            f"or synced, {kills} kills, {sender.connects} sender / {reader.connects} reader connections"
        )

    assert kills == len(KILLS_AT)
    assert retried > 0, "no send was retried: the kills hit nothing"
    assert len(acknowledged) == len(attempted)
    counts = Counter(m.client_id for m in stored)
    assert set(counts) == {o.client_id for o in attempted}
    assert max(counts.values()) == 1
    assert len(stored) == len(attempted)
    assert [m.text for m in stored] == [f"chaos {n}" for n in range(len(attempted))]
    seqs = [m.seq for m in stored]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    stored_ids = {m.id: m.seq for m in stored}
    assert all(stored_ids.get(m.id) == m.seq for m in acknowledged)
    assert [e.message.id for e in delivered] == [m.id for m in stored]
    assert min(reader.connects, sender.connects) >= len(KILLS_AT) + 1
