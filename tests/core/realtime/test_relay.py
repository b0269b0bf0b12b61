"""The relay: one holder per address, send and request/reply to it, in one process and across processes
through a redis-server of our own (leases, a killed holder, fencing, Redis going away)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio
from structlog.testing import capture_logs

from pentad.core.platform import Platform
from pentad.core.realtime.relay import (
    AddressHeld,
    Inbox,
    LeaseLost,
    MemoryRelay,
    MessageTooLarge,
    NoHolder,
    RedisRelay,
    Relay,
    RelayData,
    RelayMessage,
    RelayTimeout,
    RelayUnavailable,
)
from tests.conftest import make_settings
from tests.core.realtime.conftest import WAIT, RedisProcess, wait_for
from tests.factories import free_port

LEASE = 1.0
"""The Redis relays' lease in these tests, seconds (6 by default)."""
SMALL = 4096


@pytest.fixture(params=["memory", "redis"])
async def relays(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Relay, Relay]]:
    """Two relays that reach each other: the same one twice in process, or two on one Redis (as two
    processes would have)."""
    if request.param == "memory":
        relay = MemoryRelay(max_message_bytes=SMALL)
        yield relay, relay
        await relay.close()
        return
    server = RedisProcess(tmp_path)
    await server.start()
    first = RedisRelay(server.url, lease_seconds=LEASE, max_message_bytes=SMALL)
    second = RedisRelay(server.url, lease_seconds=LEASE, max_message_bytes=SMALL)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
        await server.kill()


@contextlib.asynccontextmanager
async def answering(
    relay: Relay,
    address: str,
    answer: Callable[[RelayMessage], Awaitable[RelayData | None]],
    *,
    wait: float = 0.0,
    take_over: bool = False,
) -> AsyncIterator[list[RelayMessage]]:
    """Hold `address` and answer each message with `answer(message)` (None: no reply); the messages seen."""
    seen: list[RelayMessage] = []

    async def serve(inbox: Inbox) -> None:
        async for message in inbox:
            seen.append(message)
            reply = await answer(message)
            if reply is not None and message.reply is not None:
                await message.reply(reply)

    async with relay.hold(address, wait=wait, take_over=take_over) as inbox:
        task = asyncio.create_task(serve(inbox))
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def echo(message: RelayMessage) -> RelayData:
    return message.data[::-1]


async def test_a_request_reaches_the_holder_and_its_reply_comes_back_as_sent(
    relays: tuple[Relay, Relay],
) -> None:
    holder, asker = relays
    async with answering(holder, "panel.node.7", echo) as seen:
        assert await asker.request("panel.node.7", "ping", timeout=WAIT) == "gnip"
        assert await asker.request("panel.node.7", b"\x00\xffab", timeout=WAIT) == b"ba\xff\x00"
    assert [message.data for message in seen] == ["ping", b"\x00\xffab"]


async def test_send_delivers_without_waiting_and_says_when_nobody_holds(relays: tuple[Relay, Relay]) -> None:
    holder, sender = relays
    assert await sender.send("streams.media@node-1", "drop") is False
    async with holder.hold("streams.media@node-1") as inbox:
        assert await sender.send("streams.media@node-1", "drop 42") is True
        async with asyncio.timeout(WAIT):
            message = await anext(inbox)
    assert message.data == "drop 42"
    assert message.reply is None


async def test_a_request_to_nobody_fails_at_once(relays: tuple[Relay, Relay]) -> None:
    _, asker = relays
    with pytest.raises(NoHolder):
        async with asyncio.timeout(WAIT):  # not after the request's own timeout
            await asker.request("panel.node.absent", "hello", timeout=3600)


async def test_an_address_has_one_holder_and_a_waiting_hold_gets_it_once_released(
    relays: tuple[Relay, Relay],
) -> None:
    first, second = relays
    async with first.hold("panel.node.1"):
        with pytest.raises(AddressHeld):
            async with second.hold("panel.node.1"):
                pass
        async with second.hold("panel.node.2"):
            pass  # other addresses stay free

    holding = asyncio.Event()

    async def take_when_free() -> RelayData:
        async with second.hold("panel.node.1", wait=WAIT) as inbox:
            holding.set()
            message = await anext(inbox)
            assert message.reply is not None
            await message.reply("second")
            return message.data

    async with first.hold("panel.node.1"):
        taking = asyncio.create_task(take_when_free())
        await asyncio.sleep(0.3)
        assert not holding.is_set()
    async with asyncio.timeout(WAIT):
        await holding.wait()
    assert await first.request("panel.node.1", "who", timeout=WAIT) == "second"
    assert await taking == "who"


async def test_a_take_over_fences_the_previous_holder_off_at_once(relays: tuple[Relay, Relay]) -> None:
    """An agent reconnected to another worker while its old socket lingers: the new socket takes the
    node's address; the old one's inbox says so, gets nothing more, and its end frees nothing."""
    old, new = relays
    async with contextlib.AsyncExitStack() as old_socket:
        old_inbox = await old_socket.enter_async_context(old.hold("panel.node.5"))
        async with answering(new, "panel.node.5", echo, take_over=True) as seen:
            with pytest.raises(LeaseLost):
                async with asyncio.timeout(WAIT):
                    await anext(old_inbox)
            await old_socket.aclose()
            assert await old.request("panel.node.5", "abc", timeout=WAIT) == "cba"
            with pytest.raises(AddressHeld):
                async with old.hold("panel.node.5"):
                    pass
    assert [message.data for message in seen] == ["abc"]


async def test_a_holder_that_does_not_answer_times_the_request_out(relays: tuple[Relay, Relay]) -> None:
    holder, asker = relays

    async def ignore(message: RelayMessage) -> None:
        return None

    async with answering(holder, "panel.node.slow", ignore) as seen:
        with pytest.raises(RelayTimeout):
            await asker.request("panel.node.slow", "status", timeout=0.3)
        assert [message.data for message in seen] == ["status"]


async def test_a_holder_that_leaves_without_reading_fails_the_waiting_request(
    relays: tuple[Relay, Relay],
) -> None:
    holder, asker = relays
    async with holder.hold("panel.node.leaving"):
        asking = asyncio.create_task(asker.request("panel.node.leaving", "status", timeout=WAIT))
        await asyncio.sleep(0.3)  # delivered, never read
    with pytest.raises(NoHolder):
        await asking


async def test_oversize_messages_and_replies_are_refused_and_nothing_is_sent(
    relays: tuple[Relay, Relay],
) -> None:
    holder, asker = relays
    async with answering(holder, "panel.node.big", lambda message: big_reply(message)) as seen:
        with pytest.raises(MessageTooLarge):
            await asker.send("panel.node.big", b"x" * (SMALL + 1))
        with pytest.raises(MessageTooLarge):
            await asker.request("panel.node.big", "é" * (SMALL // 2 + 1), timeout=WAIT)  # bytes, not chars
        assert await asker.request("panel.node.big", "x" * SMALL, timeout=WAIT) == "ok"
        with pytest.raises(RelayTimeout):
            await asker.request("panel.node.big", "too big a reply", timeout=0.3)
    assert [len(message.data) for message in seen] == [SMALL, len("too big a reply")]


async def big_reply(message: RelayMessage) -> RelayData | None:
    if message.data == "too big a reply":
        assert message.reply is not None
        with pytest.raises(MessageTooLarge):
            await message.reply(b"y" * (SMALL + 1))
        return None
    return "ok"


async def test_addresses_are_checked() -> None:
    relay = MemoryRelay()
    for bad in ("", "has space", "new\nline", "x" * 201):
        with pytest.raises(ValueError, match="relay address"):
            await relay.send(bad, "data")
        with pytest.raises(ValueError, match="relay address"):
            async with relay.hold(bad):
                pass


async def test_closing_the_relay_ends_its_inboxes(relays: tuple[Relay, Relay]) -> None:
    holder, other = relays
    async with holder.hold("panel.node.closing") as inbox:
        reading = asyncio.create_task(anext(inbox, None))
        await asyncio.sleep(0.05)
        await holder.close()
        async with asyncio.timeout(WAIT):
            assert await reading is None
    if other is not holder:
        with pytest.raises(RelayUnavailable):
            await holder.request("panel.node.closing", "x", timeout=WAIT)
        with pytest.raises(RelayUnavailable):
            await holder.send("panel.node.closing", "x")


# ------------------------------------------------------------------ Redis only: processes, leases, outages


async def start_holder(url: str, address: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.core.realtime.relay_holder", url, address, str(LEASE)),
        cwd=Path(__file__).parents[3],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(WAIT):
        assert await process.stdout.readline() == b"holding\n"
    return process


async def test_the_address_moves_to_a_new_holder_after_the_first_process_dies(
    redis_server: RedisProcess,
) -> None:
    relay = RedisRelay(redis_server.url, lease_seconds=LEASE)
    holder = await start_holder(redis_server.url, "panel.node.9")
    try:
        assert await relay.request("panel.node.9", "hello", timeout=WAIT) == f"{holder.pid}:hello"
        with pytest.raises(AddressHeld):
            async with relay.hold("panel.node.9"):
                pass
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        # Its lease still stands, but nobody listens behind it: refused at once, not after the timeout.
        with pytest.raises(NoHolder):
            async with asyncio.timeout(WAIT):
                await relay.request("panel.node.9", "hello", timeout=3600)
        async with answering(relay, "panel.node.9", echo, wait=WAIT):  # free once its lease expired
            assert await relay.request("panel.node.9", "again", timeout=WAIT) == "niaga"
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await relay.close()


async def test_a_holder_that_lost_its_lease_is_fenced_off(redis_server: RedisProcess) -> None:
    stalled = RedisRelay(redis_server.url, lease_seconds=LEASE)
    successor = RedisRelay(redis_server.url, lease_seconds=LEASE)
    async with redis.asyncio.Redis.from_url(redis_server.url) as admin:
        try:
            async with stalled.hold("streams.media@node-1") as old_inbox:
                # As if the holder stalled past its lease and another process took the address meanwhile.
                await admin.delete("pentad:relay:{streams.media@node-1}:holder")
                async with answering(successor, "streams.media@node-1", echo) as seen:
                    assert await stalled.request("streams.media@node-1", "abc", timeout=WAIT) == "cba"
                    with pytest.raises(LeaseLost):
                        async with asyncio.timeout(WAIT):
                            await anext(old_inbox)
                    assert await successor.send("streams.media@node-1", "after") is True
                    await wait_for(lambda: len(seen) == 2, "the successor to get the second message")
                assert [message.data for message in seen] == ["abc", "after"]
        finally:
            await stalled.close()
            await successor.close()


async def test_redis_going_away_is_a_clear_error_and_fences_holders(redis_server: RedisProcess) -> None:
    holder = RedisRelay(redis_server.url, lease_seconds=LEASE)
    asker = RedisRelay(redis_server.url, lease_seconds=LEASE)
    try:
        async with answering(asker, "panel.node.warm", echo):
            assert await holder.request("panel.node.warm", "up", timeout=WAIT) == "pu"
        async with holder.hold("panel.node.3") as inbox:
            await redis_server.kill()
            with pytest.raises(RelayUnavailable) as refused:
                await asker.request("panel.node.3", "status", timeout=WAIT)
            assert refused.value.status == 503
            with pytest.raises(RelayUnavailable):
                await asker.send("panel.node.3", "note")
            with pytest.raises(RelayUnavailable):
                async with asker.hold("panel.node.4"):
                    pass
            with pytest.raises(LeaseLost):  # once its lease may have expired
                async with asyncio.timeout(WAIT):
                    await anext(inbox)
    finally:
        await holder.close()
        await asker.close()


async def test_a_holder_keeps_its_address_when_redis_restarts_within_its_lease(
    redis_server: RedisProcess,
) -> None:
    holder = RedisRelay(redis_server.url, lease_seconds=3.0)
    asker = RedisRelay(redis_server.url, lease_seconds=3.0)
    try:
        async with answering(holder, "streams.media@node-2", echo) as seen:
            assert await asker.request("streams.media@node-2", "one", timeout=WAIT) == "eno"
            await redis_server.kill()
            await redis_server.start()  # empty: the lease is gone, the address free

            async def answered() -> RelayData | None:
                with contextlib.suppress(NoHolder, RelayUnavailable):
                    return await asker.request("streams.media@node-2", "two", timeout=WAIT)
                return None

            async with asyncio.timeout(WAIT):  # once both have reconnected
                while True:
                    answer = await answered()
                    if answer is not None:
                        break
                    await asyncio.sleep(0.1)
            assert answer == "owt"
            with pytest.raises(AddressHeld):
                async with asker.hold("streams.media@node-2"):
                    pass
        assert [message.data for message in seen][-1] == "two"
    finally:
        await holder.close()
        await asker.close()


async def test_a_relay_whose_redis_never_answers_says_so() -> None:
    relay = RedisRelay(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RelayUnavailable):
            async with relay.hold("panel.node.1"):
                pass
        with pytest.raises(RelayUnavailable):
            await relay.send("panel.node.1", "x")
    finally:
        await relay.close()


def test_the_platform_relays_through_redis_when_it_has_one(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"
    assert isinstance(Platform.build(make_settings(tmp_path, database), []).relay, MemoryRelay)
    redis_settings = make_settings(tmp_path, database, redis={"url": "redis://127.0.0.1:1/3"})
    assert isinstance(Platform.build(redis_settings, []).relay, RedisRelay)
    broker_settings = make_settings(tmp_path, database, realtime={"broker_url": "redis://127.0.0.1:1/3"})
    assert isinstance(Platform.build(broker_settings, []).relay, RedisRelay)
    with capture_logs() as logs:
        workers = Platform.build(make_settings(tmp_path, database, server={"workers": 2}), [])
    assert isinstance(workers.relay, MemoryRelay)
    assert [log["workers"] for log in logs if log["event"] == "relay_single_process"] == [2]
