"""Domain events: emitted in the caller's transaction (nothing on rollback), delivered after the commit to
every subscriber with the declared payload model, each subscriber retried on its own and dead-lettered for
admins, declarations checked at start."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import structlog
from pydantic import BaseModel, ValidationError

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.config import Settings
from pentad.core.context import JobContext
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.events import DomainEvent, Event, EventSubscriber, UnknownEvent, emit
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.registry import RegistryError
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.core.jobs.conftest import StatementLog, get_job, jobs_named, set_job
from tests.factories import bearer, create_admin, create_user, issue_api_key, run_due_jobs


class ThingHappened(BaseModel):
    thing_id: uuid.UUID
    label: str


THING_HAPPENED = DomainEvent("emitter.thing_happened", ThingHappened)
QUIET = DomainEvent("emitter.quiet", ThingHappened)
EMITTER = AppSpec(name="emitter", title="Emitter", events=[THING_HAPPENED, QUIET])


@dataclass
class Subscriber:
    """Records what it receives; fails while `failures` is positive."""

    failures: int = 0
    received: list[tuple[int, Event[Any]]] = field(default_factory=list)

    async def __call__(self, context: JobContext, event: Event[Any]) -> None:
        self.received.append((context.attempt, event))
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("subscriber failing on purpose")


@dataclass
class Listeners:
    platform: Platform
    counter: Subscriber
    mirror: Subscriber


COUNTER = "listener.count_things"
MIRROR = "listener.mirror_things"


def _build(settings: Settings, database: Database, *, mirror_failures: int = 0) -> Listeners:
    counter, mirror = Subscriber(), Subscriber(failures=mirror_failures)
    listener = AppSpec(
        name="listener",
        title="Listener",
        subscribers=[
            EventSubscriber(THING_HAPPENED.name, counter, name=COUNTER),
            EventSubscriber(THING_HAPPENED.name, mirror, name=MIRROR, max_attempts=3, queue="observers"),
        ],
    )
    platform: Platform = create_app(settings, database=database, apps=[EMITTER, listener]).state.platform
    return Listeners(platform, counter, mirror)


@pytest.fixture
def listeners(settings: Settings, database: Database) -> Listeners:
    return _build(settings, database)


async def _emit(platform: Platform, payload: Any, name: str = THING_HAPPENED.name) -> uuid.UUID:
    async with platform.database.transaction() as session:
        return await emit(session, name, payload)


# ------------------------------------------------------------ delivery


async def test_a_committed_event_reaches_every_subscriber_once_with_its_model(listeners: Listeners) -> None:
    thing = ThingHappened(thing_id=uuid.uuid4(), label="first")
    before = utcnow()
    event_id = await _emit(listeners.platform, thing)
    await run_due_jobs(listeners.platform)

    for subscriber in (listeners.counter, listeners.mirror):
        ((attempt, event),) = subscriber.received
        assert attempt == 1
        assert (event.id, event.name, event.payload) == (event_id, THING_HAPPENED.name, thing)
        assert isinstance(event.payload, ThingHappened)
        assert isinstance(event.emitted_at, datetime)
        assert event.emitted_at >= before
    (counted,) = await jobs_named(listeners.platform, COUNTER)
    assert counted.status == JobStatus.SUCCEEDED


async def test_one_emit_is_one_insert_however_many_subscribers(listeners: Listeners) -> None:
    with StatementLog(listeners.platform) as log:
        await _emit(listeners.platform, {"thing_id": str(uuid.uuid4()), "label": "mapping"})
    assert log.inserts_into("jobs") == 1
    assert len(await jobs_named(listeners.platform, COUNTER)) == 1
    assert len(await jobs_named(listeners.platform, MIRROR)) == 1


async def test_a_rolled_back_transaction_emits_nothing(listeners: Listeners) -> None:
    async def emit_then_fail() -> None:
        async with listeners.platform.database.transaction() as session:
            await emit(session, THING_HAPPENED.name, ThingHappened(thing_id=uuid.uuid4(), label="undone"))
            raise RuntimeError("the change that caused the event failed")

    with pytest.raises(RuntimeError):
        await emit_then_fail()
    await run_due_jobs(listeners.platform)
    assert await jobs_named(listeners.platform, COUNTER) == []
    assert (listeners.counter.received, listeners.mirror.received) == ([], [])


async def test_an_event_nobody_subscribes_to_is_not_stored(listeners: Listeners) -> None:
    with StatementLog(listeners.platform) as log:
        await _emit(listeners.platform, ThingHappened(thing_id=uuid.uuid4(), label="q"), QUIET.name)
    assert log.inserts_into("jobs") == 0


async def test_a_failing_subscriber_is_retried_without_rerunning_the_others(
    settings: Settings, database: Database
) -> None:
    listeners = _build(settings, database, mirror_failures=2)
    event_id = await _emit(listeners.platform, ThingHappened(thing_id=uuid.uuid4(), label="retry"))
    await run_due_jobs(listeners.platform)
    (mirror_job,) = await jobs_named(listeners.platform, MIRROR)
    assert (mirror_job.status, mirror_job.attempts) == (JobStatus.QUEUED, 1)
    assert mirror_job.run_at > utcnow()  # backed off
    assert "subscriber failing on purpose" in (mirror_job.last_error or "")

    for _ in range(2):
        await set_job(listeners.platform, mirror_job.id, run_at=utcnow())
        await run_due_jobs(listeners.platform)
    assert [(attempt, event.id) for attempt, event in listeners.mirror.received] == [
        (1, event_id),
        (2, event_id),
        (3, event_id),
    ]
    assert (await get_job(listeners.platform, mirror_job.id)).status == JobStatus.SUCCEEDED
    assert [(attempt, event.id) for attempt, event in listeners.counter.received] == [(1, event_id)]


async def test_a_subscriber_that_keeps_failing_is_dead_and_admins_see_and_retry_it(
    settings: Settings, database: Database
) -> None:
    listeners = _build(settings, database, mirror_failures=3)
    platform = listeners.platform
    await _emit(platform, ThingHappened(thing_id=uuid.uuid4(), label="dead"))
    await run_due_jobs(platform)
    (mirror_job,) = await jobs_named(platform, MIRROR)
    for _ in range(2):
        await set_job(platform, mirror_job.id, run_at=utcnow())
        await run_due_jobs(platform)
    assert (await get_job(platform, mirror_job.id)).status == JobStatus.DEAD
    assert len(listeners.counter.received) == 1

    app = create_app(settings, database=database, apps=platform.apps)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        member = bearer(await issue_api_key(platform, await create_user(platform)))
        admin = bearer(await issue_api_key(platform, await create_admin(platform)))
        query = {"status": "dead", "name": MIRROR}
        assert (await client.get("/api/jobs", params=query, headers=member)).status_code == 403
        listed = await client.get("/api/jobs", params=query, headers=admin)
        assert listed.status_code == 200
        (item,) = listed.json()["items"]
        assert (item["id"], item["payload"]["event"], item["max_attempts"], item["queue"]) == (
            str(mirror_job.id),
            THING_HAPPENED.name,
            3,
            "observers",
        )
        assert (await client.post(f"/api/jobs/{mirror_job.id}/retry", headers=admin)).status_code == 200
    await run_due_jobs(platform)
    assert (await get_job(platform, mirror_job.id)).status == JobStatus.SUCCEEDED
    assert len(listeners.mirror.received) == 4
    assert len(listeners.counter.received) == 1


# ------------------------------------------------------------- emitting


async def test_emit_validates_the_payload_and_stores_nothing_when_it_is_wrong(listeners: Listeners) -> None:
    class Other(BaseModel):
        label: str

    with pytest.raises(ValidationError):
        await _emit(listeners.platform, {"thing_id": "not a uuid", "label": "x"})
    with pytest.raises(TypeError, match="carries ThingHappened, not Other"):
        await _emit(listeners.platform, Other(label="x"))
    with pytest.raises(UnknownEvent, match=r"emitter\.nothing"):
        await _emit(listeners.platform, {"label": "x"}, "emitter.nothing")
    assert await jobs_named(listeners.platform, COUNTER) == []


# --------------------------------------------------------- declarations


async def _noop(_context: JobContext, _event: Event[Any]) -> None:
    return None


@pytest.mark.parametrize(
    ("apps", "problem"),
    [
        (
            [
                EMITTER,
                AppSpec(
                    name="l", title="L", subscribers=[EventSubscriber("emitter.unknown", _noop, name="l.x")]
                ),
            ],
            "subscriber 'l.x' listens to 'emitter.unknown', which no enabled app declares",
        ),
        (
            [
                AppSpec(
                    name="l", title="L", subscribers=[EventSubscriber(THING_HAPPENED.name, _noop, name="l.x")]
                )
            ],
            "which no enabled app declares",
        ),
        ([AppSpec(name="other", title="O", events=[THING_HAPPENED])], "outside its name space"),
        ([EMITTER, AppSpec(name="emitter", title="E2", events=[THING_HAPPENED])], "declared twice"),
        (
            [
                EMITTER,
                AppSpec(
                    name="l",
                    title="L",
                    subscribers=[
                        EventSubscriber(THING_HAPPENED.name, _noop, name="l.x"),
                        EventSubscriber(QUIET.name, _noop, name="l.x"),
                    ],
                ),
            ],
            "registered twice",
        ),
    ],
)
def test_the_platform_refuses_to_start_with_declarations_that_cannot_work(
    apps: list[AppSpec], problem: str, tmp_path: Any
) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite://")
    with pytest.raises(RegistryError, match=re.escape(problem)):
        Platform.build(settings, apps)


def _analytics(*events: str) -> AppSpec:
    return AppSpec(
        name="analytics",
        title="Analytics",
        subscribers=[EventSubscriber(event, _noop, name=f"analytics.on_{event}") for event in events],
    )


async def test_a_subscriber_of_an_installed_but_disabled_apps_event_is_skipped_with_a_log_line(
    tmp_path: Any,
) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite://")
    analytics = _analytics("streams.viewer_joined", THING_HAPPENED.name)
    with structlog.testing.capture_logs() as logs:
        platform = Platform.build(
            settings, [EMITTER, analytics], installed=["emitter", "streams", "analytics"]
        )
    try:
        assert platform.jobs.registry.get("analytics.on_streams.viewer_joined") is None
        assert platform.jobs.registry.get(f"analytics.on_{THING_HAPPENED.name}") is not None
    finally:
        await platform.close()
    skipped = [entry for entry in logs if entry["event"] == "event_subscriber_skipped"]
    assert [(entry["subscriber"], entry["domain_event"]) for entry in skipped] == [
        ("analytics.on_streams.viewer_joined", "streams.viewer_joined")
    ]


@pytest.mark.parametrize(
    ("event", "installed", "problem"),
    [
        ("streams.viewer_joined", ["emitter", "analytics"], "no enabled app declares"),
        ("emitter.thing_hapened", ["emitter", "streams", "analytics"], "no enabled app declares"),
        ("viewer_joined", ["emitter", "streams", "analytics"], "no enabled app declares"),
    ],
    ids=["emitting app not installed", "typo in an enabled app's event", "no app in the name"],
)
def test_a_subscriber_of_an_event_no_installed_app_can_declare_still_stops_start(
    event: str, installed: list[str], problem: str, tmp_path: Any
) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite://")
    with pytest.raises(RegistryError, match=problem):
        Platform.build(settings, [EMITTER, _analytics(event)], installed=installed)
