"""Brokers: where events get their sequence numbers, where history is kept, and how events reach every node.

The in-process broker (the default) serves one process. The Redis broker (broker_redis.py) serves several
workers and nodes. Both give the hub the same guarantees: per topic, one epoch and a sequence number that
grows by one per event; events reach the hub in sequence order; a bounded history answers "what came
after seq N of epoch E", or says it cannot (recovered = False).
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from pentad.core.realtime.protocol import Member, PresenceChange, event_frame
from pentad.core.realtime.topics import TopicSpec

PRESENCE_TTL = 90.0
"""Seconds a node's presence entries live in a shared broker unless refreshed (a crashed node's go away)."""


class BrokerUnavailable(Exception):
    """The broker cannot be reached right now; the operation did not happen."""


class BrokerListener(Protocol):
    """What a broker calls when something arrives for a topic this node subscribed to."""

    def on_event(self, topic: str, seq: int, epoch: str, frame: str, published: float) -> None:
        """An event frame, ready to send; `published` is its Unix publish time."""

    def on_presence(self, topic: str, frame: str) -> None:
        """A `join` or `leave` frame, ready to send."""

    def on_broker_up(self) -> None:
        """The broker (re)connected after being unavailable; events may have been missed meanwhile."""

    def on_recheck(self, principal_ids: list[str], topic: str | None) -> None:
        """Some node asked every node to authorise these principals' subscriptions again (Hub.recheck)."""


@dataclass(frozen=True)
class History:
    """A topic's position (epoch, last seq) and, when `recovered`, the frames after the asked seq.

    `frames` holds (seq, frame) pairs in order, seq = since + 1, since + 2, ... up to `seq`."""

    epoch: str
    seq: int
    recovered: bool
    frames: list[tuple[int, str]] = field(default_factory=list)


def new_epoch() -> str:
    return uuid.uuid4().hex[:16]


def presence_frame(op: str, topic: str, member: Member) -> str:
    return PresenceChange.model_validate({"op": op, "topic": topic, "member": member}).model_dump_json()


class Broker(ABC):
    """The hub's view of a broker; every method may raise BrokerUnavailable."""

    @property
    @abstractmethod
    def healthy(self) -> bool:
        """Whether the broker is reachable (always true in process)."""

    @abstractmethod
    async def start(self, listener: BrokerListener) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def publish(self, topic: str, data_json: str, spec: TopicSpec) -> tuple[int, str]:
        """Assign the next seq, keep the event in the topic's history, deliver it; returns (seq, epoch)."""

    @abstractmethod
    async def subscribe(self, topic: str) -> None:
        """Deliver this topic's events to this node from now on; returns once they flow."""

    @abstractmethod
    def unsubscribe(self, topic: str) -> None:
        """Stop delivering this topic to this node (ordered after earlier subscribe calls)."""

    @abstractmethod
    async def history(self, topic: str, since: int | None, epoch: str | None, spec: TopicSpec) -> History:
        """The position of the topic and, if every event after (epoch, since) is still kept, those events."""

    @abstractmethod
    async def recheck(self, principal_ids: list[str], topic: str | None) -> None:
        """Have every node's listener (this one's too) `on_recheck` these principals, of `topic` or all."""

    @abstractmethod
    async def presence_join(self, topic: str, member: Member) -> None:
        """This node holds a first connection of `member` on `topic`; announce a join if it is new overall."""

    @abstractmethod
    async def presence_leave(self, topic: str, member: Member) -> None:
        """This node no longer holds connections of `member`; announce a leave if it was the last."""

    @abstractmethod
    async def presence_refresh(self, topic: str, members: list[Member]) -> None:
        """Keep this node's presence entries alive (a node that stops refreshing disappears)."""

    @abstractmethod
    async def presence_list(self, topic: str) -> list[Member]: ...


@dataclass
class _TopicLog:
    epoch: str
    seq: int
    entries: deque[tuple[int, float, str]]
    touched: float


@dataclass
class _Presence:
    member: Member
    nodes: int


class MemoryBroker(Broker):
    """One process: events go straight to the hub; history lives in memory.

    A topic's log (epoch, seq, history) is forgotten after `history_ttl` seconds without a publish or a
    subscribe, like the Redis keys expire; a later subscriber then gets a new epoch."""

    SWEEP_INTERVAL = 60.0

    def __init__(self) -> None:
        self._listener: BrokerListener | None = None
        self._logs: dict[str, tuple[_TopicLog, float]] = {}
        self._presence: dict[str, dict[str, _Presence]] = {}
        self._last_sweep = time.monotonic()

    @property
    def healthy(self) -> bool:
        return True

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    def _log(self, topic: str, spec: TopicSpec, now: float) -> _TopicLog:
        found = self._logs.get(topic)
        if found is not None and now - found[0].touched <= found[1]:
            log = found[0]
        else:
            log = _TopicLog(new_epoch(), 0, deque(maxlen=spec.history_size), now)
        self._logs[topic] = (log, spec.history_ttl)
        log.touched = now
        if now - self._last_sweep > self.SWEEP_INTERVAL:
            self._sweep(now)
        return log

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        expired = [topic for topic, (log, ttl) in self._logs.items() if now - log.touched > ttl]
        for topic in expired:
            del self._logs[topic]

    async def publish(self, topic: str, data_json: str, spec: TopicSpec) -> tuple[int, str]:
        now = time.monotonic()
        log = self._log(topic, spec, now)
        log.seq += 1
        published = time.time()
        frame = event_frame(topic, log.seq, log.epoch, int(published * 1000), data_json)
        if spec.history_size:
            log.entries.append((log.seq, now, frame))
        if self._listener is not None:
            self._listener.on_event(topic, log.seq, log.epoch, frame, published)
        return log.seq, log.epoch

    async def subscribe(self, topic: str) -> None:
        return None

    def unsubscribe(self, topic: str) -> None:
        return None

    async def history(self, topic: str, since: int | None, epoch: str | None, spec: TopicSpec) -> History:
        now = time.monotonic()
        log = self._log(topic, spec, now)
        if since is None or epoch != log.epoch or since > log.seq:
            return History(log.epoch, log.seq, recovered=False)
        frames = [(seq, frame) for seq, stamp, frame in log.entries if seq > since]
        if since < log.seq:
            first = next((stamp for seq, stamp, _ in log.entries if seq == since + 1), None)
            if first is None or now - first > spec.history_ttl:
                return History(log.epoch, log.seq, recovered=False)
        return History(log.epoch, log.seq, recovered=True, frames=frames)

    async def recheck(self, principal_ids: list[str], topic: str | None) -> None:
        if self._listener is not None:
            self._listener.on_recheck(principal_ids, topic)

    async def presence_join(self, topic: str, member: Member) -> None:
        members = self._presence.setdefault(topic, {})
        present = members.get(member.id)
        if present is not None:
            present.nodes += 1
            return
        members[member.id] = _Presence(member, 1)
        if self._listener is not None:
            self._listener.on_presence(topic, presence_frame("join", topic, member))

    async def presence_leave(self, topic: str, member: Member) -> None:
        members = self._presence.get(topic, {})
        present = members.get(member.id)
        if present is None:
            return
        present.nodes -= 1
        if present.nodes > 0:
            return
        del members[member.id]
        if not members:
            self._presence.pop(topic, None)
        if self._listener is not None:
            self._listener.on_presence(topic, presence_frame("leave", topic, member))

    async def presence_refresh(self, topic: str, members: list[Member]) -> None:
        return None

    async def presence_list(self, topic: str) -> list[Member]:
        return [present.member for present in self._presence.get(topic, {}).values()]
