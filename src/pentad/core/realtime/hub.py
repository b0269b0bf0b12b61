"""The hub: connections, their subscriptions, presence, and the fan-out of events to them.

Hot path (one event to N local subscribers): the broker hands over the event frame already encoded; the
hub wraps it once in a `Frame` (the ASGI message itself, shared by every subscriber, and the frame's
bytes, encoded at most once) and pushes it to each subscriber. A connection whose writer is idle writes
it without a task switch: where the server takes pre-encoded frames (core/realtime/wsserver.py, what
`pentad serve` runs) the frame's bytes join the connection's outbox, and once per event-loop turn the hub
writes each outbox to its transport in one call (every frame fanned out to a socket during that turn
goes out in one syscall, so a busy hub writes less often, not more); else the frame goes through the
ASGI send, which on an uncongested socket completes without waiting, so no task wakes up per delivery.
Otherwise (the socket is congested, or the server refused the write) the frame joins the connection's
bounded send queue, which its own writer task drains, so a slow client delays nobody else; one that falls
`send_queue_size` frames behind is closed (SLOW_CONSUMER). Nothing per delivery encodes JSON or a
frame, builds a model or creates a task. Frames reach a socket in the order they were pushed, whichever
of the three ways each one takes.

Resume: a subscription starts by buffering live events, then reads the topic's history after the
client's `since`; it sends the acknowledgement, the history, and the buffered events newer than both,
and only then joins the live set, so a client gets everything after `since` exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, Protocol

import structlog
from pydantic import BaseModel
from starlette.types import Send

from pentad.core.auth.principal import Principal
from pentad.core.config import RealtimeSettings
from pentad.core.metrics import Metrics
from pentad.core.realtime.broker_redis import RedisBroker
from pentad.core.realtime.brokers import PRESENCE_TTL, Broker, BrokerUnavailable, MemoryBroker
from pentad.core.realtime.ordering import PublishSequencer
from pentad.core.realtime.protocol import (
    PING_FRAME,
    CloseCode,
    Member,
    Reset,
    SubscribeResult,
    Unsubscribed,
    ack_frame,
    encode,
)
from pentad.core.realtime.topics import TopicMatch, TopicRegistry, TopicSpec
from pentad.core.realtime.wsserver import WriteFrame, encode_text_frame

logger = structlog.get_logger("pentad.realtime")


class LiveRequest(Protocol):
    """What the hub re-checks of an app's own socket or stream (core/realtime/live.py's LiveCredentials; the
    hub, below the auth service, does not import it)."""

    principal: Principal
    expires_at: float | None
    revalidate_at: float
    ended: asyncio.Event

    def expire(self) -> None: ...

    async def revalidate(self, *, fresh: bool) -> None: ...


CLOSE_TIMEOUT = 5.0
"""Seconds the close frame may wait for a congested socket before the connection is abandoned."""
STOP_GRACE_SECONDS = 5.0
"""At shutdown, how long the rechecks and catch-ups in flight may take to finish before they are cancelled."""
TOPIC_LINGER = 5.0
"""Seconds a topic without local subscribers stays subscribed at the broker (reconnects come back)."""
EVERY_SUBSCRIBER = "*"
"""In a recheck's principal ids (with a topic): every connection subscribed to it, whoever it is (a
resource that stopped being public: who read it through that alone cannot be listed)."""

LATENCY_SAMPLE = 16
"""The latency histogram takes one delivery in this many per connection (an observation costs ~1 µs)."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class UnknownTopic(ValueError):
    """No registered TopicSpec matches the topic."""


class Frame:
    """One frame to send: the ASGI message (shared by every recipient) and, for a live event, its Unix
    publish time (0 for anything else: acknowledgements, pings, replayed history). `wire` is the frame's
    bytes, encoded once for all recipients whose server writes pre-encoded frames (wsserver.py)."""

    __slots__ = ("_wire", "message", "published")

    def __init__(self, text: str, published: float = 0.0) -> None:
        self.message = {"type": "websocket.send", "text": text}
        self.published = published
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = self._wire = encode_text_frame(self.message["text"])
        return wire


class InFlight:
    """A send that could not complete at once (the socket is congested); the writer completes it first.

    `waiting_on` is what the send coroutine yielded: the future it waits for (or None to yield once)."""

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Generator[Any, None, None], waiting_on: object) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on

    async def finish(self) -> None:
        """Drive the coroutine to its end, as a task would, from inside the writer task."""
        coroutine, waiting_on = self.coroutine, self.waiting_on
        try:
            while True:
                if isinstance(waiting_on, asyncio.Future):
                    await asyncio.wait([waiting_on])
                else:
                    await asyncio.sleep(0)
                waiting_on = coroutine.send(None)
        except StopIteration:
            return
        finally:
            coroutine.close()


QueueItem = Frame | list[Frame] | InFlight
"""A list is a replay burst: it takes one place in the queue, as it is bounded by the history size."""


class Connection:
    """One client socket: its send queue, its writer task, its principal and subscriptions."""

    __slots__ = (
        "_closer",
        "_limit",
        "_outbox",
        "_pending",
        "_reader",
        "_send",
        "_until_sample",
        "_waiter",
        "_write_frame",
        "_writer",
        "abandoned",
        "closed",
        "expires_at",
        "hub",
        "id",
        "last_seen",
        "principal",
        "revalidate_at",
        "token",
        "topics",
    )

    def __init__(self, hub: Hub, send: Send, queue_size: int, write_frame: WriteFrame | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.hub = hub
        self.principal: Principal | None = None
        self.token = ""
        self.expires_at: float | None = None
        self.revalidate_at = math.inf
        self.last_seen = time.monotonic()
        self.topics: dict[str, LocalTopic] = {}
        self.closed = False
        self.abandoned = False
        self._send = send
        self._write_frame = write_frame
        self._pending: deque[QueueItem] = deque()
        self._outbox: list[Frame] = []
        """Frames for the pre-encoded write at the end of this loop turn (only while the writer is idle)."""
        self._limit = queue_size
        self._waiter: asyncio.Future[None] | None = None
        self._reader = asyncio.current_task()
        self._writer = asyncio.create_task(self._write(), name=f"pentad-ws-writer-{self.id}")
        self._closer: asyncio.Task[None] | None = None
        self._until_sample = 1

    @property
    def member(self) -> Member:
        assert self.principal is not None
        return Member(id=str(self.principal.id), kind=self.principal.kind)

    def push(self, item: Frame | list[Frame]) -> None:
        """Send or queue a frame; never blocks. A full queue closes the connection as a slow consumer.

        When the writer is idle (its queue empty) a frame is written without waking it, as a plain broadcast
        would: where the server offers pre-encoded writes (wsserver.py) it joins the outbox, which the hub
        writes once at the end of the loop turn (Hub._flush); else the server's send runs here and, on an
        uncongested socket, completes without waiting. If it has to wait, the writer takes over the send."""
        pending = self._pending
        outbox = self._outbox
        if len(pending) + len(outbox) >= self._limit:
            if not self.closed:
                self.hub.slow_consumer_closes.inc()
                self.close(CloseCode.SLOW_CONSUMER, "send queue full")
            return
        waiter = self._waiter
        if waiter is None:
            pending.append(item)
            return
        if isinstance(item, Frame):
            if self._write_frame is not None:
                if not outbox:
                    self.hub.flush_later(self)
                outbox.append(item)
                return
            if item.published:
                self._sample(item)
            coroutine = self._send(item.message).__await__()
            try:
                waiting_on = coroutine.send(None)
            except StopIteration:
                return
            except Exception:
                self._stop_sending()
                return
            pending.append(InFlight(coroutine, waiting_on))
        else:
            if outbox:
                # The frames before this burst go first; if the server refused them the writer has them.
                self.flush()
                if self._waiter is None:
                    if self._limit:
                        pending.append(item)
                    return
            pending.append(item)
        self._waiter = None
        waiter.set_result(None)

    def flush(self) -> None:
        """Write the outbox to the transport in one call; if the server refuses (a congested socket, a
        closing one), hand its frames to the writer task, which sends them the ordinary way, in order."""
        frames = self._outbox
        if not frames:
            return
        self._outbox = []
        waiter = self._waiter
        write_frame = self._write_frame
        if waiter is None or write_frame is None:
            # Only after _stop_sending; nothing more is sent.
            return
        wire = frames[0].wire if len(frames) == 1 else b"".join([frame.wire for frame in frames])
        if write_frame(wire):
            for frame in frames:
                if frame.published:
                    self._sample(frame)
            return
        self._pending.extend(frames)
        self._waiter = None
        waiter.set_result(None)

    def send_text(self, text: str) -> None:
        self.push(Frame(text))

    def _sample(self, frame: Frame) -> None:
        self._until_sample -= 1
        if not self._until_sample:
            self._until_sample = LATENCY_SAMPLE
            self.hub.publish_to_send.observe(time.time() - frame.published)

    def _stop_sending(self) -> None:
        """The server refused a send (the client is gone): drop what is queued; the reader sees the end."""
        self._limit = 0
        self._outbox = []
        for item in self._pending:
            if isinstance(item, InFlight):
                item.coroutine.close()
        self._pending.clear()

    async def _write(self) -> None:
        pending = self._pending
        send = self._send
        write_frame = self._write_frame
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not pending:
                    self._waiter = loop.create_future()
                    await self._waiter
                while pending:
                    item = pending.popleft()
                    if isinstance(item, Frame):
                        if item.published:
                            self._sample(item)
                        if write_frame is None or not write_frame(item.wire):
                            await send(item.message)
                    elif isinstance(item, InFlight):
                        await item.finish()
                    else:
                        for frame in item:
                            await send(frame.message)
        except Exception as exc:
            logger.debug("realtime_send_failed", connection=self.id, error=repr(exc))
            self._stop_sending()

    def close(self, code: CloseCode, reason: str) -> None:
        """Stop sending events and close the socket with `code` (the reader then sees the disconnect)."""
        if self.closed:
            return
        self.closed = True
        self._stop_sending()
        self._closer = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: CloseCode, reason: str) -> None:
        self._writer.cancel()
        await asyncio.wait([self._writer])
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._send({"type": "websocket.close", "code": int(code), "reason": reason})
        except TimeoutError:
            # The client reads nothing: give up on the closing handshake and end the connection.
            self.abandoned = True
            if self._reader is not None:
                self._reader.cancel()
        except Exception as exc:
            logger.debug("realtime_close_failed", connection=self.id, error=repr(exc))

    async def finish(self) -> None:
        """After the socket is gone: stop the writer (and a pending close)."""
        self.closed = True
        self._stop_sending()
        for task in (self._writer, self._closer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.wait([task])


class LocalTopic:
    """A topic with subscribers on this node: who gets its events, and where the stream stands."""

    def __init__(self, topic: str, spec: TopicSpec, ready: asyncio.Future[None]) -> None:
        self.topic = topic
        self.spec = spec
        self.ready = ready
        self.live: dict[Connection, None] = {}
        self.buffering: dict[Connection, list[tuple[int, Frame]]] = {}
        self.held: dict[Connection, list[Frame]] = {}
        """Live subscribers whose access is being checked again: their frames wait for the answer."""
        self.members: dict[str, int] = {}
        self.epoch: str | None = None
        self.seq = 0
        self.idle_since: float | None = None


class Hub:
    """Routes events from the broker to local connections; see the module docstring for the rules."""

    def __init__(
        self,
        settings: RealtimeSettings,
        broker: Broker,
        metrics: Metrics,
        topics: Iterable[TopicSpec] = (),
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.registry = TopicRegistry(topics)
        self.connections: set[Connection] = set()
        self.live_credentials: set[LiveRequest] = set()
        """Apps' own sockets and streams (core/realtime/live.py), re-checked like the connections."""
        self._topics: dict[str, LocalTopic] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._ping = Frame(PING_FRAME)
        self._unflushed: list[Connection] = []
        self.revalidate: Callable[[Connection, bool], Awaitable[None]] | None = None
        """Set by the endpoint: re-checks a connection's credentials and subscriptions (True: bypassing
        the principal cache, as its access just changed)."""
        self.may_still_read: Callable[[Connection, str], Awaitable[bool]] | None = None
        """Set by the endpoint: asks a topic's authorisation again for a subscribed connection."""
        self.sequencer = PublishSequencer(self.publish_json, self._spawn)
        self.connections_gauge = metrics.gauge(
            "pentad_realtime_connections", "Open realtime WebSocket connections."
        )
        self.subscriptions_gauge = metrics.gauge(
            "pentad_realtime_subscriptions", "Topic subscriptions of open realtime connections."
        )
        self.deliveries = metrics.counter(
            "pentad_realtime_deliveries_total", "Events handed to subscribers' sockets (one per subscriber)."
        )
        self.published = metrics.counter(
            "pentad_realtime_published_total", "Events published through this process."
        )
        self.slow_consumer_closes = metrics.counter(
            "pentad_realtime_slow_consumer_closes_total", "Connections closed because their queue filled."
        )
        self.publish_to_send = metrics.histogram(
            "pentad_realtime_publish_to_send_seconds",
            "From publishing an event to writing it to a socket (sampled, see LATENCY_SAMPLE).",
            buckets=LATENCY_BUCKETS,
        )

    @classmethod
    def build(cls, settings: RealtimeSettings, metrics: Metrics, topics: Iterable[TopicSpec]) -> Hub:
        broker: Broker = RedisBroker(settings.broker_url) if settings.broker_url else MemoryBroker()
        return cls(settings, broker, metrics, topics)

    def register(self, spec: TopicSpec) -> None:
        """Add a topic family (the core's own, e.g. `jobs.{job_id}`); apps use AppSpec.topics."""
        self.registry.register(spec)

    def match(self, topic: str) -> TopicMatch:
        found = self.registry.match(topic)
        if found is None:
            raise UnknownTopic(f"no topic family matches {topic!r}")
        return found

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.broker.start(self)
        self._maintenance = asyncio.create_task(self._maintain(), name="pentad-realtime-maintenance")

    async def stop(self) -> None:
        """Close every socket (1012: reconnect elsewhere or later) and stop the background work."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        for connection in list(self.connections):
            connection.close(CloseCode.SERVICE_RESTART, "server shutting down")
        # Rechecks and catch-ups in flight finish first (each is one short read): one cancelled in the
        # middle of a query could leave its database connection unusable. What is still running after the
        # grace period is cancelled.
        pending = list(self._background)
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def close(self) -> None:
        await self.broker.close()

    async def check_broker(self) -> None:
        """For /readyz: raises BrokerUnavailable while the broker is unreachable (the hub reconnects)."""
        if not self.broker.healthy:
            raise BrokerUnavailable("the realtime broker is unavailable")

    def flush_later(self, connection: Connection) -> None:
        """Write `connection`'s outbox at the end of this loop turn, with every other one filled meanwhile."""
        if not self._unflushed:
            asyncio.get_running_loop().call_soon(self._flush)
        self._unflushed.append(connection)

    def _flush(self) -> None:
        connections, self._unflushed = self._unflushed, []
        for connection in connections:
            connection.flush()

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ publishing

    async def publish(self, topic: str, payload: BaseModel) -> tuple[int, str]:
        """Publish now (no transaction involved); returns (seq, epoch). See publish.publish for services."""
        return await self.publish_json(topic, self.match(topic).spec, payload.model_dump_json())

    async def publish_json(self, topic: str, spec: TopicSpec, data_json: str) -> tuple[int, str]:
        position = await self.broker.publish(topic, data_json, spec)
        self.published.inc()
        return position

    async def recheck(self, principal_ids: list[str], topic: str | None) -> None:
        """On every node: authorise these principals' subscriptions to `topic` again (all of their
        connections' credentials and subscriptions if None). Services use publish.recheck (after commit)."""
        try:
            await self.broker.recheck(principal_ids, topic)
        except BrokerUnavailable as exc:
            # Revalidation (PENTAD_REALTIME__REVALIDATE_INTERVAL) still ends the subscriptions later.
            logger.warning("realtime_recheck_failed", topic=topic, error=str(exc))

    # ------------------------------------------------------------------ broker callbacks

    def on_event(self, topic: str, seq: int, epoch: str, frame: str, published: float) -> None:
        local = self._topics.get(topic)
        if local is None:
            return
        local.seq = seq
        local.epoch = epoch
        item = Frame(frame, published)
        live = local.live
        for connection in live:
            connection.push(item)
        if local.buffering:
            for buffered in local.buffering.values():
                buffered.append((seq, item))
        if local.held:
            for held in local.held.values():
                held.append(item)
        self.deliveries.inc(len(live))

    def on_presence(self, topic: str, frame: str) -> None:
        local = self._topics.get(topic)
        if local is None:
            return
        item = Frame(frame)
        for connection in local.live:
            connection.push(item)
        for held in local.held.values():
            held.append(item)

    def on_recheck(self, principal_ids: list[str], topic: str | None) -> None:
        """Another node (or this one) changed who may read: check this node's affected connections."""
        wanted = set(principal_ids)
        if topic is None:
            wanted.discard(EVERY_SUBSCRIBER)  # "everyone's whole connection" is never asked for
            for connection in list(self.connections):
                if self._belongs(connection, wanted) and self.revalidate is not None:
                    self._spawn(self.revalidate(connection, True))  # noqa: FBT003
            for live in list(self.live_credentials):
                if str(live.principal.id) in wanted:
                    self._spawn(live.revalidate(fresh=True))
            return
        local = self._topics.get(topic)
        if local is None:
            return
        affected: list[Connection] = []
        for connection in list(local.live):
            if self._belongs(connection, wanted):
                del local.live[connection]
                local.held[connection] = []
                affected.append(connection)
        affected.extend(c for c in list(local.buffering) if self._belongs(c, wanted))
        if EVERY_SUBSCRIBER in wanted:
            # One check after another: a topic's whole audience must not open as many transactions at once.
            self._spawn(self._recheck_all(affected, local))
        else:
            for connection in affected:
                self._spawn(self._recheck(connection, local))

    async def _recheck_all(self, connections: list[Connection], local: LocalTopic) -> None:
        for connection in connections:
            await self._recheck(connection, local)

    @staticmethod
    def _belongs(connection: Connection, principal_ids: set[str]) -> bool:
        if EVERY_SUBSCRIBER in principal_ids:
            return True
        return connection.principal is not None and str(connection.principal.id) in principal_ids

    async def _recheck(self, connection: Connection, local: LocalTopic) -> None:
        allowed = False
        if self.may_still_read is not None and not connection.closed:
            try:
                allowed = await self.may_still_read(connection, local.topic)
            except Exception:
                logger.exception("realtime_recheck_failed", topic=local.topic)
        if connection.topics.get(local.topic) is not local:
            return
        if not allowed:
            await self.unsubscribe(connection, local.topic)
            connection.send_text(encode(Unsubscribed(topic=local.topic, reason="forbidden")))
            return
        held = local.held.pop(connection, None)
        if held is None:
            return
        if held:
            connection.push(held)
        local.live[connection] = None

    def on_broker_up(self) -> None:
        self._spawn(self._catch_up())

    async def _catch_up(self) -> None:
        """After a broker outage: replay what live subscribers missed, or tell them to refetch (reset)."""
        for local in list(self._topics.values()):
            if not local.live or local.epoch is None:
                continue
            try:
                history = await self.broker.history(local.topic, local.seq, local.epoch, local.spec)
            except BrokerUnavailable:
                return
            if history.recovered:
                for seq, frame in history.frames:
                    if seq > local.seq:
                        self.on_event(local.topic, seq, history.epoch, frame, time.time())
                continue
            local.epoch, local.seq = history.epoch, history.seq
            reset = Frame(encode(Reset(topic=local.topic, epoch=history.epoch, seq=history.seq)))
            for connection in local.live:
                connection.push(reset)
            for held in local.held.values():
                held.append(reset)
        await self._refresh_presence()

    # ------------------------------------------------------------------ connections

    def connect(self, send: Send, write_frame: WriteFrame | None = None) -> Connection:
        """A new connection sending through `send`, or `write_frame` where the server offers it."""
        connection = Connection(self, send, self.settings.send_queue_size, write_frame)
        self.connections.add(connection)
        self.connections_gauge.inc()
        return connection

    async def disconnect(self, connection: Connection) -> None:
        for topic in list(connection.topics):
            await self.unsubscribe(connection, topic)
        await connection.finish()
        if connection in self.connections:
            self.connections.discard(connection)
            self.connections_gauge.dec()

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(
        self,
        connection: Connection,
        request_id: int,
        topic: str,
        spec: TopicSpec,
        since: int | None,
        epoch: str | None,
    ) -> None:
        """Subscribe, acknowledge, replay what the client missed, then go live (see module docstring).

        Raises BrokerUnavailable (nothing was acknowledged then)."""
        local = self._topics.get(topic)
        if local is None:
            ready = asyncio.ensure_future(self.broker.subscribe(topic))
            local = self._topics[topic] = LocalTopic(topic, spec, ready)
        local.idle_since = None
        local.buffering[connection] = []
        connection.topics[topic] = local
        self.subscriptions_gauge.inc()
        try:
            await asyncio.shield(local.ready)
            history = await self.broker.history(topic, since, epoch, spec)
        except BaseException:
            await self.unsubscribe(connection, topic)
            subscribed = local.ready
            if subscribed.done() and not subscribed.cancelled() and subscribed.exception() is not None:
                self._drop(local)
            raise
        buffered = local.buffering.pop(connection, [])
        if connection.topics.get(topic) is not local:
            return
        if local.epoch is None or local.seq < history.seq:
            local.epoch, local.seq = history.epoch, history.seq
        result = SubscribeResult(epoch=history.epoch, seq=history.seq, recovered=history.recovered)
        connection.send_text(ack_frame(request_id, result))
        last = history.seq
        if history.frames:
            connection.push([Frame(frame) for _, frame in history.frames])
        for seq, item in buffered:
            if seq > last:
                connection.push(item)
                last = seq
        local.live[connection] = None
        if spec.presence:
            await self._join(connection, local)

    async def unsubscribe(self, connection: Connection, topic: str) -> None:
        local = connection.topics.pop(topic, None)
        if local is None:
            return
        self.subscriptions_gauge.dec()
        was_live = connection in local.live or connection in local.held
        local.live.pop(connection, None)
        local.held.pop(connection, None)
        local.buffering.pop(connection, None)
        if was_live and local.spec.presence:
            await self._leave(connection, local)
        if not local.live and not local.buffering and not local.held:
            local.idle_since = time.monotonic()

    def _drop(self, local: LocalTopic) -> None:
        if (
            self._topics.get(local.topic) is local
            and not local.live
            and not local.buffering
            and not local.held
        ):
            del self._topics[local.topic]
            self.broker.unsubscribe(local.topic)

    # ------------------------------------------------------------------ presence

    async def _join(self, connection: Connection, local: LocalTopic) -> None:
        member = connection.member
        count = local.members.get(member.id, 0)
        local.members[member.id] = count + 1
        if count == 0:
            try:
                await self.broker.presence_join(local.topic, member)
            except BrokerUnavailable as exc:
                logger.warning("realtime_presence_failed", topic=local.topic, error=str(exc))

    async def _leave(self, connection: Connection, local: LocalTopic) -> None:
        member = connection.member
        count = local.members.get(member.id, 0) - 1
        if count > 0:
            local.members[member.id] = count
            return
        local.members.pop(member.id, None)
        try:
            await self.broker.presence_leave(local.topic, member)
        except BrokerUnavailable as exc:
            logger.warning("realtime_presence_failed", topic=local.topic, error=str(exc))

    async def presence(self, topic: str) -> list[Member]:
        return await self.broker.presence_list(topic)

    async def _refresh_presence(self) -> None:
        for local in list(self._topics.values()):
            if not local.members:
                continue
            present = [*local.live, *local.held]
            members = {c.member.id: c.member for c in present if c.principal is not None}
            try:
                await self.broker.presence_refresh(local.topic, list(members.values()))
            except BrokerUnavailable:
                return

    # ------------------------------------------------------------------ housekeeping

    def _tick_seconds(self) -> float:
        s = self.settings
        return max(0.05, min(1.0, s.heartbeat_interval, s.idle_timeout / 4, s.revalidate_interval))

    async def _maintain(self) -> None:
        """One task for all sockets: pings, idle and expiry checks, revalidation, lingering topics."""
        tick = self._tick_seconds()
        next_ping = time.monotonic() + self.settings.heartbeat_interval
        next_presence = time.monotonic() + PRESENCE_TTL / 3
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            wall = time.time()
            ping = now >= next_ping
            if ping:
                next_ping = now + self.settings.heartbeat_interval
            for connection in list(self.connections):
                self._check(connection, now, wall, ping=ping)
            for live in list(self.live_credentials):
                self._check_live(live, now, wall)
            for local in list(self._topics.values()):
                if local.idle_since is not None and now - local.idle_since > TOPIC_LINGER:
                    self._drop(local)
            if now >= next_presence:
                next_presence = now + PRESENCE_TTL / 3
                self._spawn(self._refresh_presence())

    def _check_live(self, live: LiveRequest, now: float, wall: float) -> None:
        if live.ended.is_set():
            return
        if live.expires_at is not None and wall >= live.expires_at:
            live.expire()
        elif now >= live.revalidate_at:
            live.revalidate_at = math.inf
            self._spawn(live.revalidate(fresh=False))

    def _check(self, connection: Connection, now: float, wall: float, *, ping: bool) -> None:
        if connection.closed:
            return
        if connection.expires_at is not None and wall >= connection.expires_at:
            connection.close(CloseCode.CREDENTIALS_EXPIRED, "credentials expired")
        elif now - connection.last_seen > self.settings.idle_timeout:
            connection.close(CloseCode.IDLE_TIMEOUT, "idle")
        else:
            if ping and connection.principal is not None:
                connection.push(self._ping)
            if now >= connection.revalidate_at and self.revalidate is not None:
                connection.revalidate_at = math.inf
                self._spawn(self.revalidate(connection, False))  # noqa: FBT003
