"""The hub with recording sockets: subscription order and resume, encode-once fan-out, slow consumers,
presence per principal, metrics."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pentad.core.auth.principal import Principal
from pentad.core.config import RealtimeSettings
from pentad.core.metrics import Metrics
from pentad.core.realtime.brokers import History, MemoryBroker
from pentad.core.realtime.hub import EVERY_SUBSCRIBER, Connection, Hub, UnknownTopic
from pentad.core.realtime.protocol import CloseCode
from pentad.core.realtime.topics import TopicSpec
from tests.core.realtime.conftest import wait_for
from tests.core.realtime.realtime_app import Note
from tests.core.realtime.test_brokers import ANY, allow

ROOM = TopicSpec("room.{id}", allow, history_size=100, presence=True, requires=ANY)
FEED = TopicSpec("feed.{id}", allow, history_size=100, requires=ANY)


class Socket:
    """An ASGI `send` that records messages; `hold()` makes it block like a congested socket."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, message: dict[str, Any]) -> None:
        await self.open.wait()
        self.messages.append(message)

    def hold(self) -> None:
        self.open.clear()

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [orjson.loads(m["text"]) for m in self.messages if m["type"] == "websocket.send"]

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["op"] == op]


def principal(user_id: uuid.UUID | None = None) -> Principal:
    user_id = user_id or uuid.uuid4()
    return Principal("user", user_id, "u", frozenset(), frozenset(), "api_key", uuid.uuid4())


class RacingBroker(MemoryBroker):
    """Publishes `during` events while a subscriber's history is being read."""

    def __init__(self) -> None:
        super().__init__()
        self.during: list[str] = []

    async def history(self, topic: str, since: int | None, epoch: str | None, spec: TopicSpec) -> History:
        history = await super().history(topic, since, epoch, spec)
        for data in self.during:
            await self.publish(topic, data, spec)
        self.during = []
        return history


async def make_hub(broker: MemoryBroker | None = None, **settings: Any) -> tuple[Hub, Metrics]:
    metrics = Metrics()
    hub = Hub(RealtimeSettings(**settings), broker or MemoryBroker(), metrics, [ROOM, FEED])
    await hub.start()
    return hub, metrics


async def connect(hub: Hub, socket: Socket, who: Principal | None = None) -> Connection:
    connection = hub.connect(socket)
    connection.principal = who or principal()
    return connection


async def test_subscribe_acknowledges_replays_then_goes_live_without_duplicates() -> None:
    broker = RacingBroker()
    hub, _ = await make_hub(broker)
    try:
        seq, epoch = await hub.publish("room.1", Note(text="0"))
        for n in range(1, 4):
            await hub.publish("room.1", Note(text=str(n)))
        socket = Socket()
        connection = await connect(hub, socket)
        broker.during = ['{"text":"4"}', '{"text":"5"}']
        await hub.subscribe(connection, 9, "room.1", ROOM, since=seq, epoch=epoch)
        await hub.publish("room.1", Note(text="6"))
        await wait_for(lambda: len(socket.ops("event")) == 6, "six events")
        ack = socket.frames[0]
        assert ack == {
            "op": "ack",
            "id": 9,
            "ok": True,
            "result": {"epoch": epoch, "seq": 4, "recovered": True},
        }
        events = socket.ops("event")
        assert [event["data"]["text"] for event in events] == ["1", "2", "3", "4", "5", "6"]
        assert [event["seq"] for event in events] == [2, 3, 4, 5, 6, 7]
    finally:
        await hub.stop()


async def test_a_fresh_subscription_is_not_recovered_and_gets_only_new_events() -> None:
    hub, _ = await make_hub()
    try:
        await hub.publish("room.2", Note(text="old"))
        socket = Socket()
        await hub.subscribe(await connect(hub, socket), 1, "room.2", ROOM, since=None, epoch=None)
        await hub.publish("room.2", Note(text="new"))
        await wait_for(lambda: len(socket.ops("event")) == 1, "the new event")
        assert socket.frames[0]["result"]["recovered"] is False
        assert socket.frames[0]["result"]["seq"] == 1
        assert socket.ops("event")[0]["data"] == {"text": "new"}
    finally:
        await hub.stop()


async def test_an_event_is_encoded_once_for_all_subscribers() -> None:
    hub, _ = await make_hub()
    try:
        sockets = [Socket() for _ in range(3)]
        for socket in sockets:
            await hub.subscribe(await connect(hub, socket), 1, "room.3", ROOM, since=None, epoch=None)
        await hub.publish("room.3", Note(text="once"))
        await wait_for(lambda: all(len(s.ops("event")) == 1 for s in sockets), "three deliveries")
        delivered = [next(m for m in s.messages if "once" in m.get("text", "")) for s in sockets]
        assert delivered[0] is delivered[1] is delivered[2]
    finally:
        await hub.stop()


async def test_a_slow_consumer_is_closed_and_delays_nobody() -> None:
    hub, metrics = await make_hub(send_queue_size=16)
    try:
        slow, fast = Socket(), Socket()
        slow_connection = await connect(hub, slow)
        for connection in (slow_connection, await connect(hub, fast)):
            await hub.subscribe(connection, 1, "room.4", ROOM, since=None, epoch=None)
        await wait_for(lambda: len(slow.ops("ack")) == 1, "the slow socket's acknowledgement")
        slow.hold()
        for n in range(40):
            await hub.publish("room.4", Note(text=str(n)))
            await asyncio.sleep(0)
        await wait_for(lambda: len(fast.ops("event")) == 40, "every event at the fast socket")
        assert slow_connection.closed
        slow.open.set()
        await wait_for(lambda: slow.messages[-1]["type"] == "websocket.close", "the close frame")
        assert slow.messages[-1]["code"] == CloseCode.SLOW_CONSUMER
        assert len(slow.ops("event")) < 40
        assert metric(metrics, "pentad_realtime_slow_consumer_closes_total") == 1
    finally:
        await hub.stop()


async def test_sends_that_must_wait_are_finished_by_the_writer_in_order() -> None:
    hub, _ = await make_hub()
    try:
        socket = Socket()
        connection = await connect(hub, socket)
        await hub.subscribe(connection, 1, "room.7", ROOM, since=None, epoch=None)
        await wait_for(lambda: len(socket.ops("ack")) == 1, "the acknowledgement")
        socket.hold()
        for n in range(5):
            await hub.publish("room.7", Note(text=str(n)))
        await asyncio.sleep(0.05)
        assert socket.ops("event") == []
        socket.open.set()
        await wait_for(lambda: len(socket.ops("event")) == 5, "five events")
        assert [event["data"]["text"] for event in socket.ops("event")] == ["0", "1", "2", "3", "4"]
        assert not connection.closed
        await hub.publish("room.7", Note(text="5"))
        assert socket.ops("event")[-1]["data"]["text"] == "5"
    finally:
        await hub.stop()


class FrameSocket(Socket):
    """A socket whose server also takes pre-encoded frames (wsserver.py), refused while it is held, as a
    congested transport refuses them; `texts` is every event's text in the order the socket got it."""

    def __init__(self) -> None:
        super().__init__()
        self.wire: list[bytes] = []
        self.received: list[str] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        await super().__call__(message)
        self.received.append(message.get("text", ""))

    def write_frame(self, frame: bytes) -> bool:
        if not self.open.is_set():
            return False
        self.wire.append(frame)
        while frame:  # one write may carry several complete frames (the hub's outbox)
            length, start = frame[1], 2
            if length == 126:
                length, start = int.from_bytes(frame[2:4]), 4
            self.received.append(frame[start : start + length].decode())
            frame = frame[start + length :]
        return True

    @property
    def texts(self) -> list[str]:
        return [orjson.loads(text)["data"]["text"] for text in self.received if '"op":"event"' in text]


async def test_pre_encoded_frames_are_encoded_once_and_fall_back_in_order_when_refused() -> None:
    hub, _ = await make_hub()
    try:
        sockets = [FrameSocket() for _ in range(2)]
        for socket in sockets:
            connection = hub.connect(socket, socket.write_frame)
            connection.principal = principal()
            await hub.subscribe(connection, 1, "feed.8", FEED, since=None, epoch=None)
        await wait_for(lambda: all(len(s.received) == 1 for s in sockets), "the acknowledgements")
        await hub.publish("feed.8", Note(text="0"))
        await wait_for(lambda: all(s.texts == ["0"] for s in sockets), "the first event on both")
        assert sockets[0].wire[-1] is sockets[1].wire[-1]

        held, other = sockets
        held.hold()
        for n in range(1, 6):
            await hub.publish("feed.8", Note(text=str(n)))
        await wait_for(lambda: len(other.texts) == 6, "every event at the other socket")
        assert held.texts == ["0"]
        held.open.set()
        await wait_for(lambda: len(held.texts) == 6, "the held socket's events")
        assert held.texts == other.texts == ["0", "1", "2", "3", "4", "5"]
    finally:
        await hub.stop()


async def test_frames_fanned_out_in_one_loop_turn_reach_a_socket_in_one_write_in_order() -> None:
    hub, _ = await make_hub()
    try:
        sockets = [FrameSocket() for _ in range(3)]
        for socket in sockets:
            connection = hub.connect(socket, socket.write_frame)
            connection.principal = principal()
            await hub.subscribe(connection, 1, "feed.9", FEED, since=None, epoch=None)
        await wait_for(lambda: all(len(s.received) == 1 for s in sockets), "the acknowledgements")
        writes = [len(socket.wire) for socket in sockets]
        for n in range(4):  # four events handed over by the broker within one turn of the loop
            hub.on_event("feed.9", n + 1, "e", f'{{"op":"event","data":{{"text":"{n}"}}}}', 0.0)
        assert all(s.texts == [] for s in sockets), "nothing is written before the loop turn ends"
        await wait_for(lambda: all(len(s.texts) == 4 for s in sockets), "the four events")
        for socket, before in zip(sockets, writes, strict=True):
            assert socket.texts == ["0", "1", "2", "3"]
            assert len(socket.wire) == before + 1

        # A refused write (a congested socket) hands the whole outbox to the writer, in order, and what
        # is pushed after it queues behind it.
        held = sockets[0]
        held.hold()
        for n in range(4, 7):
            hub.on_event("feed.9", n + 1, "e", f'{{"op":"event","data":{{"text":"{n}"}}}}', 0.0)
        await wait_for(lambda: len(sockets[1].texts) == 7, "the other sockets' events")
        hub.on_event("feed.9", 8, "e", '{"op":"event","data":{"text":"7"}}', 0.0)
        await asyncio.sleep(0.01)
        assert held.texts == ["0", "1", "2", "3"]
        held.open.set()
        await wait_for(lambda: len(held.texts) == 8, "the held socket's events")
        assert held.texts == [str(n) for n in range(8)]
    finally:
        await hub.stop()


async def test_a_close_that_cannot_be_delivered_abandons_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pentad.core.realtime.hub.CLOSE_TIMEOUT", 0.05)
    hub, _ = await make_hub()
    socket = Socket()
    socket.hold()

    async def reader() -> None:
        connection = await connect(hub, socket)
        connection.close(CloseCode.IDLE_TIMEOUT, "idle")
        await asyncio.sleep(10)

    task = asyncio.create_task(reader())
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
    await hub.stop()


async def test_presence_counts_each_principal_once_per_topic() -> None:
    hub, _ = await make_hub()
    try:
        person = principal()
        watcher = Socket()
        await hub.subscribe(await connect(hub, watcher), 1, "room.5", ROOM, since=None, epoch=None)
        phone, laptop = await connect(hub, Socket(), person), await connect(hub, Socket(), person)
        await hub.subscribe(phone, 1, "room.5", ROOM, since=None, epoch=None)
        await hub.subscribe(laptop, 1, "room.5", ROOM, since=None, epoch=None)
        assert len(await hub.presence("room.5")) == 2
        await hub.disconnect(phone)
        assert len(await hub.presence("room.5")) == 2
        await hub.disconnect(laptop)
        assert [member.id for member in await hub.presence("room.5")] != [str(person.id)]
        await wait_for(lambda: len(watcher.ops("leave")) == 1, "one leave")
        assert [f["member"]["id"] for f in watcher.ops("join")].count(str(person.id)) == 1
    finally:
        await hub.stop()


async def test_metrics_count_connections_subscriptions_deliveries_and_latency() -> None:
    hub, metrics = await make_hub()
    try:
        sockets = [Socket(), Socket()]
        connections = [await connect(hub, socket) for socket in sockets]
        for connection in connections:
            await hub.subscribe(connection, 1, "room.6", ROOM, since=None, epoch=None)
        await hub.publish("room.6", Note(text="x"))
        await wait_for(lambda: all(s.ops("event") for s in sockets), "both deliveries")
        assert metric(metrics, "pentad_realtime_connections") == 2
        assert metric(metrics, "pentad_realtime_subscriptions") == 2
        assert metric(metrics, "pentad_realtime_deliveries_total") == 2
        assert metric(metrics, "pentad_realtime_published_total") == 1
        assert metric(metrics, "pentad_realtime_publish_to_send_seconds_count") >= 1
        await hub.disconnect(connections[0])
        assert metric(metrics, "pentad_realtime_connections") == 1
        assert metric(metrics, "pentad_realtime_subscriptions") == 1
    finally:
        await hub.stop()


async def test_publishing_on_an_unregistered_topic_fails() -> None:
    hub, _ = await make_hub()
    try:
        with pytest.raises(UnknownTopic):
            await hub.publish("nothing.here", Note(text="x"))
    finally:
        await hub.stop()


def metric(metrics: Metrics, name: str) -> float:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no metric {name}")


async def test_a_recheck_of_every_subscriber_asks_each_one_and_ends_only_the_refused() -> None:
    """A resource stops being public: nobody can list who watched it, so every subscription to its topic
    is authorised again; the refused get `unsubscribed`, the rest keep receiving, other topics are left."""
    hub, _ = await make_hub()
    try:
        keeper, stranger = principal(), principal()
        asked: list[tuple[str, str]] = []

        async def may_still_read(connection: Connection, topic: str) -> bool:
            assert connection.principal is not None
            asked.append((str(connection.principal.id), topic))
            return connection.principal is keeper

        hub.may_still_read = may_still_read
        kept, gone, elsewhere = Socket(), Socket(), Socket()
        await hub.subscribe(await connect(hub, kept, keeper), 1, "feed.7", FEED, since=None, epoch=None)
        await hub.subscribe(await connect(hub, gone, stranger), 1, "feed.7", FEED, since=None, epoch=None)
        other = await connect(hub, elsewhere, stranger)
        await hub.subscribe(other, 1, "feed.8", FEED, since=None, epoch=None)
        await hub.recheck([EVERY_SUBSCRIBER], "feed.7")
        await wait_for(lambda: gone.ops("unsubscribed"), "the stranger's subscription to end")
        assert gone.ops("unsubscribed") == [{"op": "unsubscribed", "topic": "feed.7", "reason": "forbidden"}]
        assert sorted(asked) == sorted([(str(keeper.id), "feed.7"), (str(stranger.id), "feed.7")])
        await hub.publish("feed.7", Note(text="still"))
        await hub.publish("feed.8", Note(text="other"))
        await wait_for(lambda: kept.ops("event") and elsewhere.ops("event"), "both events")
        assert kept.ops("event")[0]["data"] == {"text": "still"}
        assert not gone.ops("event")
        # Without a topic the wildcard means nothing: no connection is revalidated whole.
        revalidated: list[Connection] = []

        async def revalidate(connection: Connection, fresh: bool) -> None:
            revalidated.append(connection)

        hub.revalidate = revalidate
        hub.on_recheck([EVERY_SUBSCRIBER], None)
        await asyncio.sleep(0.05)
        assert revalidated == []
    finally:
        await hub.stop()
