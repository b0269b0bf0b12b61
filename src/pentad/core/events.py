"""Domain events between apps: how one app observes another without importing it.

The emitting app declares its events with a pydantic payload model; other apps subscribe by name:

    MESSAGE_SENT = DomainEvent("chat.message_sent", MessageSent)        # AppSpec(events=[MESSAGE_SENT])
    emit(session, "chat.message_sent", MessageSent(...))                 # in chat's service, never commits

    async def count(context: JobContext, event: Event[MessageSent]) -> None: ...
    AppSpec(subscribers=[EventSubscriber("chat.message_sent", count, name="analytics.count_message")])

Delivery. `emit` validates the payload and adds one job per subscriber to the caller's transaction (one
batched INSERT): the job table is the outbox. A rolled-back transaction delivers nothing; a committed one
is delivered after the commit, at least once, by the job workers. Each subscriber is its own job kind
(named by the subscriber), so each one's progress is tracked on its own: a failing subscriber is retried
with backoff and dead-lettered after its attempts (listed for admins in /api/jobs and `pentad jobs list`,
retried from there) while the others run exactly as often as they would have without it. Every delivery of
one event carries the same `Event.id`; subscribers are idempotent (at least once means now and then twice).

An event nobody subscribes to is not stored. A subscriber of an event whose app (the name's first part) is
installed but not enabled is skipped with a log line at start (an analytics subscriber to
`streams.viewer_joined` while streams is off). Start-up fails for a subscriber of an event no enabled app
declares otherwise (a typo, an app that is not installed, an enabled app without that event), an event
declared twice or outside its app's name space, and a payload that is not the declared model.
High-volume observations (one row per page view) belong in core/ingest.py, not in events.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.context import JobContext
from pentad.core.db.base import utcnow, uuid7
from pentad.core.db.engine import Database
from pentad.core.jobs.queue import NewJob, enqueue_many
from pentad.core.jobs.registry import DEFAULT_QUEUE, JobSpec, RegistryError

logger = structlog.get_logger("pentad.events")

P = TypeVar("P", bound=BaseModel)

EVENTS_KEY = "pentad.events"


@dataclass(frozen=True)
class DomainEvent(Generic[P]):
    """An event an app emits, named `<app>.<what_happened>`, with the pydantic model of its payload."""

    name: str
    payload: type[P]
    description: str = ""


@dataclass(frozen=True)
class Event(Generic[P]):
    """What a subscriber receives: the event's id (the same in every delivery of it), name, the time it was
    emitted and its payload, parsed into the declared model."""

    id: uuid.UUID
    name: str
    emitted_at: datetime
    payload: P


EventHandler = Callable[[JobContext, Event[Any]], Awaitable[None]]


@dataclass(frozen=True)
class EventSubscriber:
    """Run `handler` for every committed `event`. `name` (`<app>.<verb>`) is the job kind of its deliveries;
    max_attempts, timeout, concurrency and queue mean what they mean on a JobSpec."""

    event: str
    handler: EventHandler
    name: str
    max_attempts: int | None = None
    timeout: float | None = None
    concurrency: int | None = None
    queue: str = DEFAULT_QUEUE


class UnknownEvent(LookupError):
    """emit() was called with a name no enabled app declares."""


class EventRegistry:
    """Every declared event and its subscribers; checked when the platform is built.

    events: (app, event) for every event of the enabled apps; disabled_apps: the installed apps that are
    not enabled, whose events' subscribers are skipped rather than refused (see the module text)."""

    def __init__(
        self,
        events: Iterable[tuple[str, DomainEvent[Any]]],
        subscribers: Iterable[EventSubscriber],
        *,
        disabled_apps: Collection[str] = (),
    ):
        self._events: dict[str, DomainEvent[Any]] = {}
        for app, event in events:
            if not event.name.startswith(f"{app}."):
                raise RegistryError(f"app {app!r} declares the event {event.name!r} outside its name space")
            if event.name in self._events:
                raise RegistryError(f"event {event.name!r} is declared twice")
            if not (isinstance(event.payload, type) and issubclass(event.payload, BaseModel)):
                raise RegistryError(f"event {event.name!r}: its payload must be a pydantic model")
            self._events[event.name] = event
        self._subscribers: dict[str, list[EventSubscriber]] = {}
        for subscriber in subscribers:
            emitter = subscriber.event.partition(".")[0]
            if subscriber.event not in self._events and emitter in disabled_apps:
                logger.info(
                    "event_subscriber_skipped",
                    subscriber=subscriber.name,
                    domain_event=subscriber.event,
                    reason=f"the app {emitter!r} is installed but not enabled",
                )
                continue
            if subscriber.event not in self._events:
                raise RegistryError(
                    f"subscriber {subscriber.name!r} listens to {subscriber.event!r}, which no enabled app "
                    "declares"
                )
            self._subscribers.setdefault(subscriber.event, []).append(subscriber)

    def declared(self, name: str) -> DomainEvent[Any]:
        event = self._events.get(name)
        if event is None:
            raise UnknownEvent(f"no enabled app declares the event {name!r}")
        return event

    def subscribers(self, name: str) -> list[EventSubscriber]:
        return self._subscribers.get(name, [])

    def job_specs(self) -> list[JobSpec]:
        """One job kind per subscriber: its deliveries."""
        return [
            JobSpec(
                subscriber.name,
                _delivery_handler(subscriber, self._events[subscriber.event].payload),
                max_attempts=subscriber.max_attempts,
                timeout=subscriber.timeout,
                concurrency=subscriber.concurrency,
                queue=subscriber.queue,
            )
            for subscribers in self._subscribers.values()
            for subscriber in subscribers
        ]


def _delivery_handler(
    subscriber: EventSubscriber, model: type[BaseModel]
) -> Callable[[JobContext, dict[str, Any]], Awaitable[None]]:
    async def deliver(context: JobContext, envelope: dict[str, Any]) -> None:
        event = Event(
            id=uuid.UUID(envelope["event_id"]),
            name=envelope["event"],
            emitted_at=datetime.fromisoformat(envelope["emitted_at"]),
            payload=model.model_validate(envelope["payload"]),
        )
        await subscriber.handler(context, event)

    return deliver


def bind_events(database: Database, registry: EventRegistry) -> None:
    """Every session the database hands out from now on can `emit` into `registry`'s subscribers."""
    info = dict(database.sessionmaker.kw.get("info") or {})
    database.sessionmaker.configure(info={**info, EVENTS_KEY: registry})


async def emit(session: AsyncSession, name: str, payload: BaseModel | Mapping[str, Any]) -> uuid.UUID:
    """Deliver event `name` to its subscribers once `session` commits; returns the event's id.

    payload: an instance of the declared model, or a mapping validated into it (pydantic's
    ValidationError when it does not fit). UnknownEvent for an undeclared name.
    """
    registry = session.info.get(EVENTS_KEY)
    if not isinstance(registry, EventRegistry):
        raise RuntimeError("this session was not made by a platform's database, so it cannot emit events")
    declared = registry.declared(name)
    if isinstance(payload, BaseModel):
        if not isinstance(payload, declared.payload):
            raise TypeError(
                f"event {name!r} carries {declared.payload.__name__}, not {type(payload).__name__}"
            )
        model = payload
    else:
        model = declared.payload.model_validate(payload)
    event_id = uuid7()
    subscribers = registry.subscribers(name)
    if subscribers:
        envelope = {
            "event": name,
            "event_id": str(event_id),
            "emitted_at": utcnow().isoformat(),
            "payload": model.model_dump(mode="json"),
        }
        await enqueue_many(session, [NewJob(subscriber.name, envelope) for subscriber in subscribers])
    return event_id
