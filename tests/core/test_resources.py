"""Per-process app resources (AppSpec.resources): opened once when a process starts (the app's lifespan, a CLI
command), reachable from requests, jobs and the CLI typed by their spec, closed in reverse order at shutdown;
a failed open closes what was opened and stops the start."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.cli_support import run_in_transaction
from pentad.core.config import Settings
from pentad.core.context import AppContext, JobContext, ResourceSpec
from pentad.core.db.engine import Database
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec
from pentad.core.platform import Platform
from pentad.core.resources import Resources
from tests.factories import run_due_jobs


@dataclass
class Registry:
    """A stand-in for an app's in-memory registry: it knows where it came from and whether it was closed."""

    base_url: str
    closed: bool = False
    seen: list[str] = field(default_factory=list)


@dataclass
class Log:
    events: list[str] = field(default_factory=list)


def specs(log: Log, *, failing: bool = False) -> tuple[ResourceSpec[Registry], ResourceSpec[int]]:
    async def open_registry(context: AppContext) -> Registry:
        log.events.append("open registry")
        return Registry(context.base_url)

    async def close_registry(registry: Registry) -> None:
        registry.closed = True
        log.events.append("close registry")

    async def open_counter(_context: AppContext) -> int:
        log.events.append("open counter")
        if failing:
            raise ConnectionRefusedError("the counter's server is down")
        return 42

    async def close_counter(_value: int) -> None:
        log.events.append("close counter")

    return (
        ResourceSpec("test.registry", open_registry, close_registry),
        ResourceSpec("test.counter", open_counter, close_counter),
    )


async def test_the_lifespan_opens_resources_before_anything_runs_and_closes_them_in_reverse(
    settings: Settings, database: Database
) -> None:
    log = Log()
    registry, counter = specs(log)
    spec = AppSpec("test", "Test", resources=[registry, counter])
    app = create_app(settings, database=database, apps=[spec])
    platform: Platform = app.state.platform
    with pytest.raises(LookupError, match="not open"):
        platform.resource(registry)
    async with app.router.lifespan_context(app):
        opened: Registry = platform.resource(registry)
        assert opened.base_url == settings.server.base_url
        assert platform.resource("test.counter") == 42
        assert log.events == ["open registry", "open counter"]
    assert log.events == ["open registry", "open counter", "close counter", "close registry"]
    assert opened.closed
    with pytest.raises(LookupError, match="not open"):
        platform.resource(registry)


async def test_a_job_gets_the_resource_through_its_context(settings: Settings, database: Database) -> None:
    log = Log()
    registry, _counter = specs(log)
    name = f"test.use_registry_{uuid.uuid4().hex[:8]}"

    async def handler(context: JobContext, payload: dict[str, Any]) -> None:
        context.resource(registry).seen.append(payload["page"])
        context.platform.resource(registry).seen.append("via platform")

    app: FastAPI = create_app(
        settings,
        database=database,
        apps=[AppSpec("test", "Test", jobs=[JobSpec(name, handler)], resources=[registry])],
    )
    platform: Platform = app.state.platform
    await platform.open_resources()
    try:
        async with platform.database.transaction() as session:
            await enqueue(session, name, {"page": "/pricing"})
        await run_due_jobs(platform)
        assert platform.resource(registry).seen == ["/pricing", "via platform"]
    finally:
        await platform.close()
    assert log.events == ["open registry", "close registry"]


def test_a_cli_command_has_the_resources_open_and_closes_them(settings: Settings) -> None:
    log = Log()
    registry, counter = specs(log)

    async def work(_session: Any, platform: Platform) -> tuple[str, int]:
        return platform.resource(registry).base_url, platform.resource(counter)

    spec = AppSpec("test", "Test", resources=[registry, counter])
    assert run_in_transaction(work, apps=[spec], settings=settings) == (settings.server.base_url, 42)
    assert log.events[-2:] == ["close counter", "close registry"]


async def test_a_resource_that_fails_to_open_closes_the_opened_ones_and_stops_the_start(
    settings: Settings, database: Database
) -> None:
    log = Log()
    registry, counter = specs(log, failing=True)
    spec = AppSpec("test", "Test", resources=[registry, counter])
    app = create_app(settings, database=database, apps=[spec])
    with pytest.raises(ConnectionRefusedError):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started without its resource")
    assert log.events == ["open registry", "open counter", "close registry"]
    await app.state.platform.close()


async def test_unknown_and_foreign_resources_are_refused() -> None:
    log = Log()
    registry, counter = specs(log)
    resources = Resources([registry])
    with pytest.raises(LookupError, match=r"no enabled app declares the resource 'test\.counter'"):
        resources.get(counter)
    impostor = ResourceSpec("test.registry", registry.open)
    with pytest.raises(LookupError, match="another spec"):
        resources.get(impostor)
    with pytest.raises(ValueError, match="declared twice"):
        Resources([registry, registry])
    with pytest.raises(ValueError, match=r"<app>\.<what>"):
        Resources([ResourceSpec("registry", registry.open)])
