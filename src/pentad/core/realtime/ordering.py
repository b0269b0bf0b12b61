"""Commit order for published events: one queue per topic, with places reserved before the commit.

Transactions that publish on the same topic are serialised by the data they change (SQLite has one writer
at a time; on PostgreSQL and MariaDB the row an app locks to number its events, e.g. a channel's `seq`).
So the order in which they reach the moment just before COMMIT, still holding those locks, is the order
in which they commit. Each transaction takes its places in its topics' queues then (`reserve`), fills them
once it committed (`fill`) or gives them up if it rolled back (`cancel`), and a queue publishes from its
head only what is filled: events leave in commit order even when the transactions' after-commit work runs
in another order (which it does under load: the commits finish on the database's threads and the tasks
resume in whatever order the event loop picks).

A place that is neither filled nor cancelled within HOLD_SECONDS (a transaction lost between its commit
and its hooks) is skipped so the topic does not stall; filled later, its event is published at once.
The order holds within a process; see docs/realtime.md for several workers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import structlog

from pentad.core.realtime.brokers import BrokerUnavailable
from pentad.core.realtime.topics import TopicSpec

logger = structlog.get_logger("pentad.realtime")

HOLD_SECONDS = 30.0
"""How long a reserved place may hold back its topic's later events."""

Publish = Callable[[str, TopicSpec, str], Awaitable[tuple[int, str]]]
Spawn = Callable[[Awaitable[Any]], None]


class _State(Enum):
    RESERVED = "reserved"
    FILLED = "filled"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class Ticket:
    """One event's place in its topic's queue; `done` resolves once it was published (or dropped)."""

    __slots__ = ("_timer", "data_json", "done", "sequencer", "spec", "state", "topic")

    def __init__(self, sequencer: PublishSequencer, topic: str, spec: TopicSpec, data_json: str) -> None:
        self.sequencer = sequencer
        self.topic = topic
        self.spec = spec
        self.data_json = data_json
        self.state = _State.RESERVED
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        self._timer = loop.call_later(HOLD_SECONDS, sequencer.skip, self)

    def fill(self) -> None:
        """The transaction committed: the event may go once every earlier place is settled."""
        self.sequencer.settle(self, _State.FILLED)

    def cancel(self) -> None:
        """The transaction rolled back: nothing is published for this place."""
        self.sequencer.settle(self, _State.CANCELLED)


class PublishSequencer:
    """Per-topic queues of reserved places; publishes each topic's filled head in order, one at a time."""

    def __init__(self, publish: Publish, spawn: Spawn) -> None:
        self._publish = publish
        self._spawn = spawn
        self._queues: dict[str, deque[Ticket]] = {}
        self._draining: set[str] = set()

    def reserve(self, topic: str, spec: TopicSpec, data_json: str) -> Ticket:
        ticket = Ticket(self, topic, spec, data_json)
        self._queues.setdefault(topic, deque()).append(ticket)
        return ticket

    def settle(self, ticket: Ticket, state: _State) -> None:
        if ticket.state is _State.SKIPPED:
            if state is _State.FILLED:
                logger.warning("realtime_publish_late", topic=ticket.topic)
                ticket.state = state
                self._spawn(self._send(ticket))
            else:
                ticket.state = state
                self._resolve(ticket)
            return
        if ticket.state is not _State.RESERVED:
            return
        ticket.state = state
        ticket._timer.cancel()
        self._kick(ticket.topic)

    def skip(self, ticket: Ticket) -> None:
        """The place was held too long: let the topic's later events pass it."""
        if ticket.state is not _State.RESERVED:
            return
        logger.warning("realtime_publish_place_skipped", topic=ticket.topic, seconds=HOLD_SECONDS)
        ticket.state = _State.SKIPPED
        self._kick(ticket.topic)

    def _kick(self, topic: str) -> None:
        queue = self._queues.get(topic)
        if topic in self._draining or not queue or queue[0].state is _State.RESERVED:
            return
        self._draining.add(topic)
        self._spawn(self._drain(topic, queue))

    async def _drain(self, topic: str, queue: deque[Ticket]) -> None:
        try:
            while queue and queue[0].state is not _State.RESERVED:
                ticket = queue.popleft()
                if ticket.state is _State.FILLED:
                    await self._send(ticket)
                elif ticket.state is _State.CANCELLED:
                    self._resolve(ticket)
        finally:
            self._draining.discard(topic)
            if not queue and self._queues.get(topic) is queue:
                del self._queues[topic]

    async def _send(self, ticket: Ticket) -> None:
        try:
            await self._publish(ticket.topic, ticket.spec, ticket.data_json)
        except BrokerUnavailable as exc:
            logger.warning("realtime_publish_failed", topic=ticket.topic, error=str(exc))
        except Exception:
            logger.exception("realtime_publish_failed", topic=ticket.topic)
        finally:
            self._resolve(ticket)

    @staticmethod
    def _resolve(ticket: Ticket) -> None:
        if not ticket.done.done():
            ticket.done.set_result(None)
