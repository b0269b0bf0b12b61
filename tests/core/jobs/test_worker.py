"""Workers: retries with backoff then the dead letter, timeouts, concurrency limits, safe claims, leases
(a killed worker's job runs again, exactly once to completion), shutdown, progress, cron, pruning."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pentad.app import create_app
from pentad.core.auth.permissions import JOBS_MANAGE
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.context import JobContext
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs import repository
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import CronSpec, JobSpec, RetryLater
from pentad.core.jobs.schemas import JobProgress
from pentad.core.jobs.worker import PRUNE_JOB, Claim, Worker, job_topic, retry_delay
from pentad.core.platform import Platform
from pentad.core.realtime.topics import TopicAccess, TopicAction
from tests.conftest import make_settings
from tests.core.jobs import worker_app
from tests.core.jobs.conftest import (
    LivePlatform,
    Recorder,
    app_with,
    eventually,
    get_job,
    jobs_named,
    kind,
    set_job,
)
from tests.factories import (
    create_admin,
    create_user,
    issue_api_key,
    run_due_jobs,
)

REPO = Path(__file__).resolve().parents[3]


def _platform(settings: Settings, database: Database, *jobs: JobSpec) -> Platform:
    platform: Platform = create_app(settings, database=database, apps=[app_with(*jobs)]).state.platform
    return platform


async def _enqueue(
    platform: Platform, name: str, payload: dict[str, Any] | None = None, **kw: Any
) -> uuid.UUID:
    async with platform.database.transaction() as session:
        job_id = await enqueue(session, name, payload, **kw)
    assert job_id is not None
    return job_id


# ------------------------------------------------------------------ retries


def test_retry_delays_double_up_to_the_cap_with_jitter() -> None:
    assert [retry_delay(n, 2.0, 60.0, rand=lambda: 1.0) for n in (1, 2, 3, 4, 6, 40)] == [2, 4, 8, 16, 60, 60]
    assert [retry_delay(n, 2.0, 60.0, rand=lambda: 0.0) for n in (1, 2, 3)] == [1, 2, 4]
    assert retry_delay(10_000, 2.0, 60.0) <= 60.0


async def test_a_failing_job_is_retried_with_backoff_then_dead_lettered(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, jobs={"backoff_base": 10.0, "backoff_max": 3600.0})
    recorder, name = Recorder(failures=99), kind("flaky")
    platform = _platform(settings, database, JobSpec(name, recorder, max_attempts=3))
    job_id = await _enqueue(platform, name, {"n": 1}, dedupe_key=f"{name}:key")

    for attempt, delay in ((1, 10.0), (2, 20.0)):
        before = utcnow()
        await run_due_jobs(platform)
        job = await get_job(platform, job_id)
        assert (job.status, job.attempts, job.locked_by) == (JobStatus.QUEUED, attempt, None)
        assert job.last_error is not None
        assert job.last_error.endswith("RuntimeError: failing on purpose")
        assert before + timedelta(seconds=delay / 2) <= job.run_at <= utcnow() + timedelta(seconds=delay)
        assert job.dedupe_key == f"{name}:key"
        await set_job(platform, job_id, run_at=utcnow())

    await run_due_jobs(platform)
    job = await get_job(platform, job_id)
    assert (job.status, job.attempts, job.dedupe_key) == (JobStatus.DEAD, 3, None)
    assert job.finished_at is not None
    assert [attempt for attempt, _ in recorder.calls] == [1, 2, 3]
    await set_job(platform, job_id, run_at=utcnow() - timedelta(days=1))
    await run_due_jobs(platform)
    assert len(recorder.calls) == 3


async def test_a_job_that_runs_too_long_times_out(settings: Settings, database: Database) -> None:
    name = kind("slow")
    platform = _platform(settings, database, JobSpec(name, Recorder(pause=30), timeout=0.1, max_attempts=1))
    job_id = await _enqueue(platform, name)
    await run_due_jobs(platform)
    job = await get_job(platform, job_id)
    assert (job.status, job.last_error) == (JobStatus.DEAD, "Timed out after 0.1 seconds.")


async def test_retry_later_requeues_without_spending_an_attempt(
    settings: Settings, database: Database
) -> None:
    waits: list[int] = []

    async def handler(context: JobContext, _payload: dict[str, Any]) -> None:
        waits.append(context.attempt)
        if len(waits) <= 2:
            raise RetryLater(600, "upstream rate limit")

    name = kind("later")
    platform = _platform(settings, database, JobSpec(name, handler, max_attempts=1))
    job_id = await _enqueue(platform, name)
    for _ in range(2):
        before = utcnow()
        await run_due_jobs(platform)
        job = await get_job(platform, job_id)
        assert (job.status, job.attempts, job.last_error) == (JobStatus.QUEUED, 0, "upstream rate limit")
        assert timedelta(seconds=590) < job.run_at - before < timedelta(seconds=610)
        await set_job(platform, job_id, run_at=utcnow() - timedelta(seconds=1))
    await run_due_jobs(platform)
    job = await get_job(platform, job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert waits == [1, 1, 1]
    with pytest.raises(ValueError, match="positive"):
        RetryLater(0)


# -------------------------------------------------------------- concurrency


async def test_a_worker_runs_at_most_its_concurrency_at_once(live_platform: LivePlatform) -> None:
    recorder, name = Recorder(pause=0.2), kind("busy")
    platform = live_platform(app_with(JobSpec(name, recorder)), concurrency=2)
    for n in range(6):
        await _enqueue(platform, name, {"n": n})
    await asyncio.wait_for(Worker(platform).run(until_idle=True), 60)
    assert sorted(payload["n"] for _, payload in recorder.calls) == list(range(6))
    assert recorder.most_at_once == 2


async def test_a_kind_runs_at_most_its_own_concurrency_at_once(live_platform: LivePlatform) -> None:
    capped, free = Recorder(pause=0.2), Recorder(pause=0.2)
    capped_name, free_name = kind("capped"), kind("free")
    platform = live_platform(
        app_with(JobSpec(capped_name, capped, concurrency=1), JobSpec(free_name, free)), concurrency=4
    )
    for n in range(4):
        await _enqueue(platform, capped_name, {"n": n})
        await _enqueue(platform, free_name, {"n": n})
    await asyncio.wait_for(Worker(platform).run(until_idle=True), 60)
    assert (len(capped.calls), len(free.calls)) == (4, 4)
    assert capped.most_at_once == 1
    assert free.most_at_once >= 2


async def test_concurrent_claims_never_take_the_same_job(live_platform: LivePlatform) -> None:
    """PostgreSQL and MariaDB: FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE."""
    name = kind("claimed")
    platform = live_platform(app_with(JobSpec(name, Recorder())))
    total = 24
    for n in range(total):
        await _enqueue(platform, name, {"n": n})
    claimed: list[Claim] = []

    async def claim_until_empty(worker: Worker) -> None:
        for _ in range(200):
            if len(claimed) >= total:
                return
            claimed.extend(await worker.claim(3))
            await asyncio.sleep(0)

    workers = [Worker(platform) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*(claim_until_empty(w) for w in workers)), 60)
    ids = [claim.job_id for claim in claimed]
    assert len(ids) == len(set(ids)) == total
    rows = await jobs_named(platform, name)
    assert all(row.status == JobStatus.RUNNING and row.attempts == 1 for row in rows)
    assert {row.locked_by for row in rows} <= {w.id for w in workers}


# -------------------------------------------------------------------- leases


async def test_a_job_whose_lease_expired_runs_again_as_its_next_attempt(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("lost")
    platform = _platform(settings, database, JobSpec(name, recorder, max_attempts=3))
    job_id = await _enqueue(platform, name, {"n": 1})
    gone = Worker(platform)
    (claim,) = await gone.claim(1)
    # Its worker died: nobody renews the lease.
    await set_job(platform, job_id, locked_until=utcnow() - timedelta(seconds=1))
    await run_due_jobs(platform)
    assert recorder.calls == [(2, {"n": 1})]
    job = await get_job(platform, job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    # The first worker coming back cannot record anything for the attempt it lost.
    async with platform.database.transaction() as session:
        assert not await repository.update_held_job(
            session, job_id, gone.id, claim.attempt, status=JobStatus.SUCCEEDED
        )


async def test_a_job_whose_lease_expired_on_its_last_attempt_is_dead(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("lost")
    platform = _platform(settings, database, JobSpec(name, recorder, max_attempts=1))
    job_id = await _enqueue(platform, name)
    gone = Worker(platform)
    await gone.claim(1)
    await set_job(platform, job_id, locked_until=utcnow() - timedelta(seconds=1))
    await run_due_jobs(platform)
    assert recorder.calls == []
    job = await get_job(platform, job_id)
    assert (job.status, job.locked_by) == (JobStatus.DEAD, None)
    assert job.last_error == f"Its worker {gone.id} stopped during the last attempt."


async def test_a_worker_that_lost_the_lease_abandons_the_job(live_platform: LivePlatform) -> None:
    recorder, name = Recorder(pause=60), kind("stolen")
    platform = live_platform(app_with(JobSpec(name, recorder)))
    job_id = await _enqueue(platform, name)
    worker = Worker(platform)
    running = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: recorder.running)
        await set_job(platform, job_id, locked_by="another-worker")
        await worker.renew_leases()
        await eventually(lambda: not recorder.running)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    job = await get_job(platform, job_id)
    assert (job.status, job.locked_by) == (JobStatus.RUNNING, "another-worker")


async def test_a_stopping_worker_puts_unfinished_jobs_back(live_platform: LivePlatform) -> None:
    recorder, name = Recorder(pause=60), kind("long")
    platform = live_platform(app_with(JobSpec(name, recorder)), shutdown_grace=0.1)
    job_id = await _enqueue(platform, name)
    worker = Worker(platform)
    running = asyncio.create_task(worker.run())
    await eventually(lambda: recorder.running)
    worker.stop()
    await asyncio.wait_for(running, 30)
    job = await get_job(platform, job_id)
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.QUEUED, 0, None)
    assert job.run_at <= utcnow()


@pytest.fixture
def start_workers(worker_env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.core.jobs.worker_app", "worker"],
            env=worker_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _lines(log: Path, event: str) -> list[list[str]]:
    text = log.read_text() if log.exists() else ""
    return [line.split() for line in text.splitlines() if line.startswith(event + " ")]


async def test_a_worker_process_killed_mid_job_leads_to_exactly_one_completed_run(
    tmp_path: Path, live_platform: LivePlatform, start_workers: list[subprocess.Popen[bytes]]
) -> None:
    platform = live_platform(worker_app.APP)
    log = tmp_path / "runs.log"
    job_id = await _enqueue(platform, worker_app.SLEEP_JOB, {"log": str(log), "seconds": 3})

    (started,) = await eventually(lambda: _lines(log, "start"), within=60)
    victim = next(p for p in start_workers if p.pid == int(started[1]))
    survivor = next(p for p in start_workers if p is not victim)
    victim.kill()
    victim.wait(timeout=10)

    async def finished() -> bool:
        return (await get_job(platform, job_id)).status == JobStatus.SUCCEEDED

    await eventually(finished, within=60)
    assert _lines(log, "start") == [["start", str(victim.pid), "1"], ["start", str(survivor.pid), "2"]]
    assert _lines(log, "done") == [["done", str(survivor.pid), "2"]]
    assert (await get_job(platform, job_id)).attempts == 2


# ------------------------------------------------------------------ progress


async def test_progress_is_stored_on_the_job_and_published(settings: Settings, database: Database) -> None:
    async def handler(context: JobContext, _payload: dict[str, Any]) -> None:
        await context.progress(0.5, "half way")
        with pytest.raises(ValueError, match="fraction"):
            await context.progress(1.5)

    name = kind("progress")
    platform = _platform(settings, database, JobSpec(name, handler))
    job_id = await _enqueue(platform, name)
    await run_due_jobs(platform)
    topic = job_topic(job_id)
    spec = platform.hub.match(topic).spec
    position = await platform.hub.broker.history(topic, None, None, spec)
    history = await platform.hub.broker.history(topic, 0, position.epoch, spec)
    published = [JobProgress.model_validate(json.loads(frame)["data"]) for _seq, frame in history.frames]
    assert published == [JobProgress(job_id=job_id, name=name, attempt=1, fraction=0.5, message="half way")]
    job = await get_job(platform, job_id)
    assert (job.status, job.progress, job.progress_message) == (JobStatus.SUCCEEDED, 0.5, "half way")


# ---------------------------------------------------------------------- cron


async def test_each_cron_tick_is_enqueued_once_by_any_number_of_workers(live_platform: LivePlatform) -> None:
    name = kind("tick")
    platform = live_platform(app_with(JobSpec(name, Recorder()), cron=[CronSpec(name, "*/5 * * * *")]))
    workers = [Worker(platform) for _ in range(3)]

    async def tick(now: datetime) -> int:
        return sum(await asyncio.gather(*(worker.schedule_cron(now) for worker in workers)))

    # First seen: the schedule starts at its next tick. (The core's hourly prune at :17 stays put.)
    assert await tick(datetime(2026, 3, 1, 12, 1, tzinfo=UTC)) == 0
    assert await tick(datetime(2026, 3, 1, 12, 6, tzinfo=UTC)) == 1
    assert await tick(datetime(2026, 3, 1, 12, 9, tzinfo=UTC)) == 0
    assert await tick(datetime(2026, 3, 1, 12, 12, tzinfo=UTC)) == 1
    ticks = [job.run_at for job in await jobs_named(platform, name)]
    assert ticks == [datetime(2026, 3, 1, 12, 5, tzinfo=UTC), datetime(2026, 3, 1, 12, 10, tzinfo=UTC)]


async def test_finished_jobs_are_pruned_after_the_retention(settings: Settings, database: Database) -> None:
    name = kind("old")
    platform = _platform(settings, database, JobSpec(name, Recorder()))
    old, recent, dead = [await _enqueue(platform, name) for _ in range(3)]
    await run_due_jobs(platform)
    await set_job(platform, old, finished_at=utcnow() - timedelta(days=8))
    await set_job(platform, dead, status=JobStatus.DEAD, finished_at=utcnow() - timedelta(days=8))
    await _enqueue(platform, PRUNE_JOB)
    await run_due_jobs(platform)
    assert [job.id for job in await jobs_named(platform, name)] == [recent]


async def test_only_job_managers_may_watch_progress(settings: Settings, database: Database) -> None:
    platform = _platform(settings, database)
    member = await create_user(platform)
    admin = await create_admin(platform)
    topic = job_topic(uuid.uuid4())
    match = platform.hub.match(topic)
    async with platform.database.transaction(writes=False) as session:
        principals = {}
        for user in (member, admin):
            service = AuthService(session, platform)
            principals[user.email] = await service.authenticate_bearer(await issue_api_key(platform, user))

        def access(email: str, action: TopicAction) -> TopicAccess:
            return TopicAccess(principals[email], topic, match.params, action, session, platform)

        # The hub checks `requires` before it asks authorize (tests/test_topic_table.py, over /ws).
        assert match.spec.requires == JOBS_MANAGE
        assert not principals[member.email].has(JOBS_MANAGE)
        assert await match.spec.authorize(access(admin.email, "subscribe"))
        assert not await match.spec.authorize(access(admin.email, "publish"))


async def test_a_failed_claim_does_not_end_a_burst_and_a_dead_database_fails_it(
    live_platform: LivePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    name = kind("burst")
    platform = live_platform(app_with(JobSpec(name, recorder)))
    await _enqueue(platform, name, {"n": 1})
    worker = Worker(platform)
    real_fill = worker._fill
    failures = iter([True])

    async def flaky_fill() -> int:
        if next(failures, False):
            raise TimeoutError("database is locked")
        return await real_fill()

    monkeypatch.setattr(worker, "_fill", flaky_fill)
    await asyncio.wait_for(worker.run(until_idle=True), 60)
    assert len(recorder.calls) == 1  # the due job ran although the first claim failed

    async def dead_fill() -> int:
        raise ConnectionRefusedError("the database is gone")

    stuck = Worker(platform)
    monkeypatch.setattr(stuck, "_fill", dead_fill)
    with pytest.raises(RuntimeError, match="could not claim jobs"):
        await asyncio.wait_for(stuck.run(until_idle=True), 60)
