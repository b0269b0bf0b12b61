"""Routed jobs and batches: a worker claims only from its queues, higher priorities first; enqueue_many adds
many jobs with one INSERT; schedules with seconds granularity coalesce missed ticks into one run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pentad.app import create_app
from pentad.apps import INSTALLED, InstalledApp
from pentad.cli import main
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.queue import NewJob, enqueue, enqueue_many
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.jobs.worker import Worker
from pentad.core.platform import Platform
from tests.core.jobs import worker_app
from tests.core.jobs.conftest import (
    REPO,
    LivePlatform,
    Recorder,
    StatementLog,
    app_with,
    get_job,
    jobs_named,
    kind,
)
from tests.factories import run_due_jobs


def _platform(settings: Settings, database: Database, *jobs: JobSpec) -> Platform:
    platform: Platform = create_app(settings, database=database, apps=[app_with(*jobs)]).state.platform
    return platform


async def _enqueue(platform: Platform, name: str, payload: dict[str, Any], **kw: Any) -> uuid.UUID:
    async with platform.database.transaction() as session:
        job_id = await enqueue(session, name, payload, **kw)
    assert job_id is not None
    return job_id


# ------------------------------------------------------------------ queues


async def test_a_worker_claims_only_from_its_queues(live_platform: LivePlatform) -> None:
    media, default = Recorder(), Recorder()
    media_name, default_name = kind("transcode"), kind("mail")
    platform = live_platform(
        app_with(JobSpec(media_name, media, queue="media"), JobSpec(default_name, default))
    )
    assert platform.jobs.registry.queues == ["default", "media"]
    media_job = await _enqueue(platform, media_name, {"n": 1})
    default_job = await _enqueue(platform, default_name, {"n": 2})

    await asyncio.wait_for(Worker(platform, queues=["media"]).run(until_idle=True), 60)
    assert (len(media.calls), len(default.calls)) == (1, 0)
    assert (await get_job(platform, default_job)).status == JobStatus.QUEUED

    # A worker started without queues serves every queue.
    await asyncio.wait_for(Worker(platform).run(until_idle=True), 60)
    assert (len(media.calls), len(default.calls)) == (1, 1)
    assert (await get_job(platform, media_job)).status == JobStatus.SUCCEEDED


async def test_the_queues_setting_routes_the_in_process_worker(live_platform: LivePlatform) -> None:
    media, default = Recorder(), Recorder()
    media_name, default_name = kind("transcode"), kind("mail")
    platform = live_platform(
        app_with(JobSpec(media_name, media, queue="media"), JobSpec(default_name, default)), queues="default"
    )
    await _enqueue(platform, media_name, {})
    await _enqueue(platform, default_name, {})
    worker = Worker(platform)
    assert worker.queues == {"default"}
    await asyncio.wait_for(worker.run(until_idle=True), 60)
    assert (len(media.calls), len(default.calls)) == (0, 1)
    assert Worker(platform, queues=["media"]).queues == {"media"}


def _pentad_worker(worker_env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.core.jobs.worker_app", "worker", "--burst", *arguments],
        env=worker_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_pentad_worker_queue_claims_only_that_queue(
    tmp_path: Path, live_platform: LivePlatform, worker_env: dict[str, str]
) -> None:
    platform = live_platform(worker_app.APP)
    log = tmp_path / "runs.log"
    media_job = await _enqueue(platform, worker_app.MEDIA_JOB, {"log": str(log), "seconds": 0})
    other_job = await _enqueue(platform, worker_app.SLEEP_JOB, {"log": str(log), "seconds": 0})

    done = await asyncio.to_thread(_pentad_worker, worker_env, "--queue", "media")
    assert done.returncode == 0, done.stderr
    assert (await get_job(platform, media_job)).status == JobStatus.SUCCEEDED
    assert (await get_job(platform, other_job)).status == JobStatus.QUEUED
    assert log.read_text().count("done") == 1


def test_pentad_worker_refuses_a_queue_no_job_is_routed_to(
    worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(INSTALLED, "jobtest", InstalledApp("tests.core.jobs.worker_app:APP"))
    result = CliRunner().invoke(main, ["worker", "--burst", "--queue", "nosuch"], env=worker_env)
    assert result.exit_code == 2
    assert "no job is routed to nosuch; known queues: default, media" in result.output


# -------------------------------------------------------------- priorities


async def test_higher_priorities_run_first_then_the_oldest(settings: Settings, database: Database) -> None:
    recorder, name = Recorder(), kind("ordered")
    platform = _platform(settings, database, JobSpec(name, recorder))
    for label, priority in [("a", 0), ("b", 5), ("c", 1), ("d", 9), ("e", 5), ("f", -3)]:
        await _enqueue(platform, name, {"label": label}, priority=priority)
    await run_due_jobs(platform)
    assert [payload["label"] for _, payload in recorder.calls] == ["d", "b", "e", "c", "a", "f"]


async def test_a_priority_never_overtakes_a_job_that_is_not_due(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("later")
    platform = _platform(settings, database, JobSpec(name, recorder))
    held = await _enqueue(
        platform, name, {"label": "later"}, priority=100, run_at=datetime(2999, 1, 1, tzinfo=UTC)
    )
    await _enqueue(platform, name, {"label": "now"})
    await run_due_jobs(platform)
    assert [payload["label"] for _, payload in recorder.calls] == ["now"]
    assert (await get_job(platform, held)).status == JobStatus.QUEUED


# ------------------------------------------------------------ enqueue_many


async def test_enqueue_many_adds_many_jobs_with_one_insert(settings: Settings, database: Database) -> None:
    recorder, name = Recorder(), kind("many")
    platform = _platform(settings, database, JobSpec(name, recorder))
    with StatementLog(platform) as log:
        async with platform.database.transaction() as session:
            ids = await enqueue_many(session, [NewJob(name, {"n": n}, priority=n % 3) for n in range(2500)])
    assert log.inserts_into("jobs") == 1
    assert len(set(ids)) == 2500
    stored = await jobs_named(platform, name)
    assert sorted(job.payload["n"] for job in stored) == list(range(2500))
    assert {job.status for job in stored} == {JobStatus.QUEUED}
    assert sorted(job.id for job in stored) == sorted(ids)
    assert {(job.payload["n"] % 3, job.priority) for job in stored} == {(0, 0), (1, 1), (2, 2)}


async def test_enqueue_many_rolled_back_leaves_no_job_and_runs_what_committed(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("batch")
    platform = _platform(settings, database, JobSpec(name, recorder))

    async def enqueue_then_fail() -> None:
        async with platform.database.transaction() as session:
            await enqueue_many(session, [NewJob(name, {"n": n}) for n in range(5)])
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await enqueue_then_fail()
    assert await jobs_named(platform, name) == []
    async with platform.database.transaction() as session:
        assert await enqueue_many(session, []) == []
        await enqueue_many(session, [NewJob(name, {"n": n}) for n in range(3)])
    await run_due_jobs(platform)
    assert sorted(payload["n"] for _, payload in recorder.calls) == [0, 1, 2]


# --------------------------------------------------------------- schedules


def test_interval_and_six_field_schedules_tick_on_seconds() -> None:
    every_15 = CronSpec("a.one", every=15)
    now = datetime(2026, 1, 1, 12, 0, 47, 500_000, tzinfo=UTC)
    assert every_15.latest_tick(now) == datetime(2026, 1, 1, 12, 0, 45, tzinfo=UTC)
    assert every_15.next_tick(now) == datetime(2026, 1, 1, 12, 1, 0, tzinfo=UTC)
    every_10 = CronSpec("a.one", "*/10 * * * * *")
    assert every_10.latest_tick(now) == datetime(2026, 1, 1, 12, 0, 40, tzinfo=UTC)
    assert every_10.next_tick(now) == datetime(2026, 1, 1, 12, 0, 50, tzinfo=UTC)
    assert every_15.key != CronSpec("a.one", every=20).key


async def test_a_missed_tick_runs_once_after_downtime(live_platform: LivePlatform) -> None:
    name = kind("seconds")
    platform = live_platform(app_with(JobSpec(name, Recorder()), cron=[CronSpec(name, every=10)]))
    worker = Worker(platform)
    start = datetime(2026, 3, 1, 12, 0, 3, tzinfo=UTC)
    # First seen at 12:00:03: the schedule starts at its next tick, 12:00:10.
    assert await worker.schedule_cron(start) == 0
    assert await worker.schedule_cron(datetime(2026, 3, 1, 12, 0, 11, tzinfo=UTC)) == 1
    assert await worker.schedule_cron(datetime(2026, 3, 1, 12, 0, 19, tzinfo=UTC)) == 0
    # Down from 12:00:19 to 12:05:04: thirty ticks were missed; one catch-up run, for the latest of them.
    restarted = Worker(platform)
    assert await restarted.schedule_cron(datetime(2026, 3, 1, 12, 5, 4, tzinfo=UTC)) == 1
    assert await restarted.schedule_cron(datetime(2026, 3, 1, 12, 5, 9, tzinfo=UTC)) == 0
    assert await restarted.schedule_cron(datetime(2026, 3, 1, 12, 5, 10, tzinfo=UTC)) == 1
    ticks = [job.run_at for job in await jobs_named(platform, name)]
    assert ticks == [
        datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 5, 10, tzinfo=UTC),
    ]


def test_an_idle_worker_wakes_for_the_next_tick(live_platform: LivePlatform) -> None:
    name = kind("soon")
    platform = live_platform(
        app_with(JobSpec(name, Recorder()), cron=[CronSpec(name, every=2)]), poll_interval=30
    )
    worker = Worker(platform)
    assert worker.next_poll_in(datetime(2026, 3, 1, 12, 0, 1, 250_000, tzinfo=UTC)) == 0.75
