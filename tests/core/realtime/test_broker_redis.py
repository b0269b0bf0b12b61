"""The Redis broker against a redis-server of our own: sequence, history, presence, restarts, and two
`pentad serve` processes sharing one Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio

from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.realtime.broker_redis import RedisBroker
from pentad.core.realtime.brokers import BrokerUnavailable
from pentad.core.realtime.client import Event, RealtimeClient, RealtimeClosed, RealtimeError
from pentad.core.realtime.protocol import CloseCode, Member
from pentad.core.realtime.publish import recheck
from pentad.core.realtime.topics import TopicSpec
from tests.core.realtime.conftest import (
    RedisProcess,
    ServeProcess,
    live_server,
    peer,
    ready_status,
    realtime_settings,
    room_member,
    serve_environment,
    wait_for,
    wait_ready_status,
)
from tests.core.realtime.realtime_app import Note
from tests.core.realtime.test_brokers import ANY, Recorder, allow
from tests.factories import issue_api_key

SPEC = TopicSpec("redis.{name}", allow, history_size=5, history_ttl=60, requires=ANY)


async def keep_publishing(client: RealtimeClient) -> Counter[str]:
    """Publish every 10 ms until cancelled; count what happened to each attempt."""
    outcomes: Counter[str] = Counter()
    try:
        while True:
            try:
                await client.publish("test.typing.r1", {"typing": True})
                outcomes["ok"] += 1
            except RealtimeError as exc:
                outcomes[exc.code] += 1
            except (RealtimeClosed, TimeoutError):
                outcomes["closed"] += 1
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        return outcomes


async def stop(task: asyncio.Task[Counter[str]]) -> Counter[str]:
    task.cancel()
    return await task


async def started(url: str) -> tuple[RedisBroker, Recorder]:
    broker = RedisBroker(url)
    recorder = Recorder()
    await broker.start(recorder)
    await wait_for(lambda: broker.healthy, "the broker to connect")
    return broker, recorder


async def test_publish_assigns_consecutive_seqs_and_delivers_to_subscribed_nodes(
    redis_server: RedisProcess,
) -> None:
    broker, recorder = await started(redis_server.url)
    other, other_recorder = await started(redis_server.url)
    try:
        await broker.subscribe("redis.a")
        first = await other.publish("redis.a", '{"n":1}', SPEC)
        second = await other.publish("redis.a", '{"n":2}', SPEC)
        await other.publish("redis.b", '{"n":3}', SPEC)
        assert second == (first[0] + 1, first[1])
        await wait_for(lambda: len(recorder.events) == 2, "two events")
        assert [(topic, seq) for topic, seq, _, _ in recorder.events] == [("redis.a", 1), ("redis.a", 2)]
        assert '"data":{"n":2}' in recorder.events[1][3]
        assert other_recorder.events == []
        broker.unsubscribe("redis.a")
        await asyncio.sleep(0.1)
        await other.publish("redis.a", '{"n":4}', SPEC)
        await asyncio.sleep(0.2)
        assert len(recorder.events) == 2
    finally:
        await broker.close()
        await other.close()


async def test_history_is_capped_and_answers_recovery(redis_server: RedisProcess) -> None:
    broker, _ = await started(redis_server.url)
    try:
        position = await broker.history("redis.h", None, None, SPEC)
        assert (position.seq, position.recovered) == (0, False)
        for n in range(8):
            await broker.publish("redis.h", f'{{"n":{n}}}', SPEC)
        recent = await broker.history("redis.h", 4, position.epoch, SPEC)
        assert recent.recovered
        assert [seq for seq, _ in recent.frames] == [5, 6, 7, 8]
        assert '"seq":5' in recent.frames[0][1]
        assert not (await broker.history("redis.h", 2, position.epoch, SPEC)).recovered
        assert (await broker.history("redis.h", 8, position.epoch, SPEC)).frames == []
        assert (await broker.history("redis.h", 8, position.epoch, SPEC)).recovered
        assert not (await broker.history("redis.h", 4, "another", SPEC)).recovered
    finally:
        await broker.close()


async def test_presence_counts_members_across_nodes(redis_server: RedisProcess) -> None:
    broker, recorder = await started(redis_server.url)
    other, _ = await started(redis_server.url)
    alice = Member(id="alice", kind="user")
    try:
        await broker.subscribe("redis.p")
        await broker.presence_join("redis.p", alice)
        await other.presence_join("redis.p", alice)
        assert await broker.presence_list("redis.p") == [alice]
        await other.presence_leave("redis.p", alice)
        assert await broker.presence_list("redis.p") == [alice]
        await broker.presence_leave("redis.p", alice)
        assert await broker.presence_list("redis.p") == []
        await wait_for(lambda: len(recorder.presence) == 2, "one join and one leave")
        assert ['"op":"join"' in recorder.presence[0][1], '"op":"leave"' in recorder.presence[1][1]] == [
            True,
            True,
        ]
    finally:
        await broker.close()
        await other.close()


async def test_a_redis_restart_is_survived_with_a_new_epoch(redis_server: RedisProcess) -> None:
    broker, recorder = await started(redis_server.url)
    try:
        await broker.subscribe("redis.r")
        _, epoch = await broker.publish("redis.r", "{}", SPEC)
        await redis_server.kill()
        await wait_for(lambda: not broker.healthy, "the broker to notice")
        with pytest.raises(BrokerUnavailable):
            await broker.publish("redis.r", "{}", SPEC)
        await redis_server.start()
        await wait_for(lambda: broker.healthy and recorder.ups >= 2, "the broker to reconnect")
        history = await broker.history("redis.r", 1, epoch, SPEC)
        assert not history.recovered
        assert history.epoch != epoch
        await broker.publish("redis.r", "{}", SPEC)
        await wait_for(lambda: len(recorder.events) == 2, "the event published after the restart")
        assert recorder.events[-1][1:3] == (1, history.epoch)
    finally:
        await broker.close()


async def test_the_hub_catches_up_live_subscribers_after_an_outage(
    tmp_path: Path, realtime_database_url: str, redis_server: RedisProcess
) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, broker_url=redis_server.url)
    async with live_server(settings) as running:
        platform = running.platform
        user = await room_member(platform, "r1")
        async with peer(running, await issue_api_key(platform, user)) as client:
            assert (await client.request("subscribe", topic="test.room.r1"))["ok"]
            await platform.hub.publish("test.room.r1", Note(text="before"))
            assert (await client.recv_op("event"))["data"] == {"text": "before"}
            # Events published while this node's subscription is down reach the client once it is back.
            subscriber = platform.hub.broker
            assert isinstance(subscriber, RedisBroker)
            async with redis.asyncio.Redis.from_url(redis_server.url) as raw:
                await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
                await wait_for(lambda: not subscriber.healthy, "the subscription to drop")
                await platform.hub.publish("test.room.r1", Note(text="during"))
            await wait_for(lambda: subscriber.healthy, "the subscription to come back")
            assert (await client.recv_op("event"))["data"] == {"text": "during"}
            # A Redis restart loses the history: the client is told to refetch.
            await redis_server.kill()
            assert await ready_status(running.http_url) == 503
            await redis_server.start()
            await wait_for(lambda: subscriber.healthy, "the broker to reconnect")
            reset = await client.recv_op("reset")
            assert reset["topic"] == "test.room.r1"
            await wait_ready_status(running.http_url, 200)


async def test_two_serve_processes_share_events_through_redis_and_survive_its_restart(
    tmp_path: Path, realtime_database_url: str, redis_server: RedisProcess
) -> None:
    env = serve_environment(tmp_path, realtime_database_url, PENTAD_REALTIME__BROKER_URL=redis_server.url)
    first, second = ServeProcess(env), ServeProcess(env)
    await first.start()
    await second.start()
    try:
        async with live_server(realtime_settings(tmp_path, realtime_database_url)) as local:
            user = await room_member(local.platform, "r1")
            key = await issue_api_key(local.platform, user)
        received: list[Event] = []
        resets: list[str] = []
        listener = RealtimeClient(second.ws_url, key, backoff_initial=0.05, backoff_max=0.5)
        publisher = RealtimeClient(first.ws_url, key, backoff_initial=0.05, backoff_max=0.5)
        async with listener, publisher:
            await listener.subscribe("test.typing.r1", received.append)
            subscription = await listener.subscribe("test.room.r1", received.append, on_reset=resets.append)
            await publisher.publish("test.typing.r1", {"typing": True})
            await wait_for(lambda: len(received) == 1, "the event from the other process")
            assert received[0].data == {"typing": True}
            epoch_before = subscription.epoch
            # Redis restarts, while the publisher keeps publishing and the listener is away: the
            # processes report not ready, reconnect, and resuming cannot recover the lost history.
            await listener.close()
            publishing = asyncio.create_task(keep_publishing(publisher))
            await asyncio.sleep(0.2)
            await redis_server.kill()
            for process in (first, second):
                await wait_ready_status(process.http_url, 503)
            await redis_server.start()
            for process in (first, second):
                await wait_ready_status(process.http_url, 200)
            outcomes = await stop(publishing)
            assert outcomes["ok"] > 0
            assert outcomes["unavailable"] + outcomes["closed"] > 0
            await listener.connect()
            assert subscription.recovered is False
            assert subscription.epoch != epoch_before
            assert resets == ["test.room.r1"]
            await wait_for(lambda: publisher.connected, "the publisher to be connected")
            await publisher.publish("test.typing.r1", {"typing": False})
            await wait_for(lambda: len(received) == 2, "an event after the restart")
            assert received[1].data == {"typing": False}
    finally:
        await first.stop()
        await second.stop()


async def test_a_recheck_on_one_node_ends_a_subscription_on_another_at_once(
    tmp_path: Path, realtime_database_url: str, redis_server: RedisProcess
) -> None:
    """A grant revoked through node A ends the subscription held on node B without waiting for B's
    revalidation (a minute by default); another member's subscription to the same room carries on."""
    settings = realtime_settings(tmp_path, realtime_database_url, broker_url=redis_server.url)
    async with live_server(settings) as first, live_server(settings) as second:
        leaving, staying = await room_member(first.platform, "r9"), await room_member(first.platform, "r9")
        async with (
            peer(second, await issue_api_key(first.platform, leaving)) as gone,
            peer(second, await issue_api_key(first.platform, staying)) as kept,
        ):
            for client in (gone, kept):
                assert (await client.request("subscribe", topic="test.room.r9"))["ok"]
            async with first.platform.database.transaction() as session:
                service = AuthService(session, first.platform)
                for grant in await service.list_grants(leaving.id):
                    await service.revoke_grant(leaving.id, grant.id, actor=audit.SYSTEM)
                recheck(session, [leaving.id, staying.id], "test.room.r9")
            ended = await gone.recv_op("unsubscribed")
            assert ended == {"op": "unsubscribed", "topic": "test.room.r9", "reason": "forbidden"}
            await first.platform.hub.publish("test.room.r9", Note(text="after"))
            assert (await kept.recv_op("event"))["data"] == {"text": "after"}
            # Without a topic, the principal's whole connection is revalidated: a revoked key closes it.
            async with first.platform.database.transaction() as session:
                service = AuthService(session, first.platform)
                for key in await service.list_api_keys(staying.id):
                    await service.revoke_api_key(key.id, audit.SYSTEM, owner_id=staying.id)
                recheck(session, [staying.id])
            assert await kept.closed_with() == CloseCode.CREDENTIALS_REVOKED
