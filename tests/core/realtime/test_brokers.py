"""The in-process broker: sequence numbers, epochs, bounded history, recovery answers, presence."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from pentad.core.auth.permissions import Permission
from pentad.core.realtime.brokers import MemoryBroker
from pentad.core.realtime.protocol import Member
from pentad.core.realtime.topics import TopicAccess, TopicSpec


async def allow(_access: TopicAccess) -> bool:
    return True


class Recorder:
    """A BrokerListener that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str, str]] = []
        self.presence: list[tuple[str, str]] = []
        self.ups = 0

    def on_event(self, topic: str, seq: int, epoch: str, frame: str, published: float) -> None:
        self.events.append((topic, seq, epoch, frame))

    def on_presence(self, topic: str, frame: str) -> None:
        self.presence.append((topic, frame))

    def on_broker_up(self) -> None:
        self.ups += 1


ANY = Permission("test.any", "A permission for the brokers' tests.")
SPEC = TopicSpec("mem.{name}", allow, history_size=3, history_ttl=60, requires=ANY)


@pytest.fixture
async def broker() -> MemoryBroker:
    return MemoryBroker()


async def test_each_topic_counts_its_own_events_and_frames_are_complete(broker: MemoryBroker) -> None:
    recorder = Recorder()
    await broker.start(recorder)
    first = await broker.publish("mem.a", '{"n":1}', SPEC)
    second = await broker.publish("mem.a", '{"n":2}', SPEC)
    other = await broker.publish("mem.b", '{"n":3}', SPEC)
    assert (first[0], second[0], other[0]) == (1, 2, 1)
    assert first[1] == second[1] != other[1]
    frame = orjson.loads(recorder.events[1][3])
    assert frame == {
        "op": "event",
        "topic": "mem.a",
        "seq": 2,
        "epoch": first[1],
        "ts": frame["ts"],
        "data": {"n": 2},
    }


async def test_history_recovers_what_it_still_holds(broker: MemoryBroker) -> None:
    position = await broker.history("mem.h", None, None, SPEC)
    assert (position.seq, position.recovered, position.frames) == (0, False, [])
    for n in range(5):
        await broker.publish("mem.h", f'{{"n":{n}}}', SPEC)
    recent = await broker.history("mem.h", 2, position.epoch, SPEC)
    assert recent.recovered
    assert [seq for seq, _ in recent.frames] == [3, 4, 5]
    up_to_date = await broker.history("mem.h", 5, position.epoch, SPEC)
    assert (up_to_date.recovered, up_to_date.frames) == (True, [])
    assert not (await broker.history("mem.h", 1, position.epoch, SPEC)).recovered
    assert not (await broker.history("mem.h", 2, "other-epoch", SPEC)).recovered
    assert not (await broker.history("mem.h", 9, position.epoch, SPEC)).recovered


async def test_history_older_than_its_ttl_is_not_replayed(broker: MemoryBroker) -> None:
    short = TopicSpec("mem.{name}", allow, history_size=10, history_ttl=0.05, requires=ANY)
    epoch = (await broker.history("mem.t", None, None, short)).epoch
    await broker.publish("mem.t", "{}", short)
    later = await broker.history("mem.t", 0, epoch, short)
    assert later.recovered
    await asyncio.sleep(0.1)
    expired = await broker.history("mem.t", 0, epoch, short)
    assert not expired.recovered
    assert expired.epoch != epoch


async def test_presence_announces_first_join_and_last_leave(broker: MemoryBroker) -> None:
    recorder = Recorder()
    await broker.start(recorder)
    alice = Member(id="a", kind="user")
    await broker.presence_join("mem.p", alice)
    await broker.presence_join("mem.p", alice)
    assert await broker.presence_list("mem.p") == [alice]
    await broker.presence_leave("mem.p", alice)
    assert await broker.presence_list("mem.p") == [alice]
    await broker.presence_leave("mem.p", alice)
    assert await broker.presence_list("mem.p") == []
    assert [orjson.loads(frame)["op"] for _, frame in recorder.presence] == ["join", "leave"]
