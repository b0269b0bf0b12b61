"""Fixtures for jobs tests: recording handlers, and live platforms for the tests that need workers to run
at the same time (the rolled-back test transaction has a single connection, so it runs jobs one by one)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.core.apps import AppSpec
from pentad.core.context import JobContext
from pentad.core.jobs.models import Job, JobSchedule
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import TEST_CRYPTO_KEYS, TEST_SECRET_KEY

WAIT_SECONDS = 30.0
REPO = Path(__file__).resolve().parents[3]


def kind(verb: str) -> str:
    """A job kind no other test (or earlier run on the same database) uses."""
    return f"test.{verb}_{uuid.uuid4().hex[:8]}"


@dataclass
class Recorder:
    """A handler that records its calls; it fails while `failures` is positive, then succeeds."""

    failures: int = 0
    pause: float = 0.0
    calls: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0

    async def __call__(self, context: JobContext, payload: dict[str, Any]) -> None:
        self.calls.append((context.attempt, payload))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.pause)
        finally:
            self.running -= 1
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("failing on purpose")


def app_with(*jobs: JobSpec, cron: Sequence[CronSpec] = ()) -> AppSpec:
    return AppSpec(name="test", title="Test", jobs=jobs, cron=cron)


async def get_job(platform: Platform, job_id: uuid.UUID) -> Job:
    async with platform.database.transaction(writes=False) as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def set_job(platform: Platform, job_id: uuid.UUID, **values: Any) -> None:
    """Change a job row behind the workers' backs (time passing, a worker dying)."""
    async with platform.database.transaction() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(**values))


async def jobs_named(platform: Platform, name: str) -> list[Job]:
    async with platform.database.transaction(writes=False) as session:
        return list((await session.scalars(select(Job).where(Job.name == name).order_by(Job.id))).all())


async def eventually(check: Callable[[], Any], *, within: float = WAIT_SECONDS) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.05)


LivePlatform = Callable[..., Platform]


@pytest.fixture
async def live_platform(tmp_path: Path, database_url: str) -> AsyncIterator[LivePlatform]:
    """Builds platforms on their own engine: what workers commit is really committed (and deleted after)."""
    built: list[Platform] = []

    def build(app: AppSpec, **jobs_settings: Any) -> Platform:
        settings = make_settings(tmp_path, database_url, jobs={"poll_interval": 0.05, **jobs_settings})
        platform = Platform.build(settings, [app])
        built.append(platform)
        return platform

    yield build
    for platform in built:
        names = [spec.name for spec in platform.apps[0].jobs]
        keys = [entry.key for entry in platform.apps[0].cron]
        async with platform.database.transaction() as session:
            await session.execute(delete(Job).where(Job.name.in_(names)))
            await session.execute(delete(JobSchedule).where(JobSchedule.key.in_(keys)))
        await platform.close()


@pytest.fixture
def worker_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of a real `pentad worker` process serving the test app of worker_app.py."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env.update(
        PYTHONPATH=str(REPO),
        PENTAD_DATA_DIR=str(tmp_path),
        PENTAD_DATABASE__URL=database_url,
        PENTAD_APPS="jobtest",
        PENTAD_AUTH__SECRET_KEY=TEST_SECRET_KEY,
        PENTAD_CRYPTO__KEYS=TEST_CRYPTO_KEYS,
        PENTAD_JOBS__LEASE_SECONDS="5",
        PENTAD_JOBS__POLL_INTERVAL="0.2",
        PENTAD_LOG__LEVEL="WARNING",
    )
    return env


class StatementLog:
    """The SQL statements a platform's (or an engine's) connections execute while the log is open."""

    def __init__(self, platform: Platform) -> None:
        self.engine = platform.database.engine.sync_engine
        self.statements: list[str] = []

    @classmethod
    def of(cls, engine: AsyncEngine) -> StatementLog:
        log = cls.__new__(cls)
        log.engine = engine.sync_engine
        log.statements = []
        return log

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def inserts_into(self, table: str) -> int:
        return sum(
            1 for text in self.statements if text.lstrip().upper().startswith(f"INSERT INTO {table.upper()}")
        )
