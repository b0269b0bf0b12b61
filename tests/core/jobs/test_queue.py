"""enqueue(): the job joins the caller's transaction (kept or dropped with it), wakes workers on commit,
honours delays and dedupe keys, and keeps secret values encrypted; cancel_queued() drops a waiting job."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from pentad.app import create_app
from pentad.core.config import Settings
from pentad.core.context import JobContext
from pentad.core.crypto import CryptoError, KeyRing, generate_key
from pentad.core.db import keyrotation
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.queue import DOORBELL, SecretPayload, cancel_queued, enqueue, secret_context
from pentad.core.jobs.registry import JobSpec
from pentad.core.jobs.worker import Worker
from pentad.core.platform import Platform
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
from tests.factories import TEST_CRYPTO_KEYS, run_due_jobs


def _platform(settings: Settings, database: Database, *jobs: JobSpec) -> Platform:
    platform: Platform = create_app(settings, database=database, apps=[app_with(*jobs)]).state.platform
    return platform


def _doorbell(platform: Platform) -> asyncio.Event:
    woken = asyncio.Event()
    DOORBELL.listen(platform.database.engine.sync_engine, woken)
    return woken


async def test_an_enqueue_rolled_back_with_its_transaction_leaves_no_job(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("noop")
    platform = _platform(settings, database, JobSpec(name, recorder))
    woken = _doorbell(platform)

    async def enqueue_then_fail() -> None:
        async with platform.database.transaction() as session:
            assert await enqueue(session, name, {"n": 1}) is not None
            raise RuntimeError("the change that caused the job failed")

    try:
        with pytest.raises(RuntimeError):
            await enqueue_then_fail()
        assert await jobs_named(platform, name) == []
        assert not woken.is_set()
        await run_due_jobs(platform)
        assert recorder.calls == []
    finally:
        DOORBELL.forget(woken)


async def test_a_committed_enqueue_wakes_the_workers_and_runs_once(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("noop")
    platform = _platform(settings, database, JobSpec(name, recorder))
    woken = _doorbell(platform)
    try:
        async with platform.database.transaction() as session:
            job_id = await enqueue(session, name, {"n": 1})
            assert not woken.is_set()
        assert woken.is_set()
    finally:
        DOORBELL.forget(woken)
    assert job_id is not None
    await run_due_jobs(platform)
    await run_due_jobs(platform)
    assert recorder.calls == [(1, {"n": 1})]
    job = await get_job(platform, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert (job.attempts, job.locked_by, job.locked_until) == (1, None, None)
    assert job.finished_at is not None


async def test_a_delayed_job_waits_until_it_is_due(settings: Settings, database: Database) -> None:
    recorder, name = Recorder(), kind("later")
    platform = _platform(settings, database, JobSpec(name, recorder))
    async with platform.database.transaction() as session:
        later = await enqueue(session, name, {"when": "later"}, delay=timedelta(hours=1))
        await enqueue(session, name, {"when": "past"}, run_at=utcnow() - timedelta(minutes=1))
        with pytest.raises(ValueError, match="not both"):
            await enqueue(session, name, delay=timedelta(1), run_at=utcnow())
    await run_due_jobs(platform)
    assert recorder.calls == [(1, {"when": "past"})]
    assert later is not None
    waiting = await get_job(platform, later)
    assert waiting.status == JobStatus.QUEUED
    assert waiting.run_at > utcnow() + timedelta(minutes=59)


async def test_a_dedupe_key_allows_one_pending_job(settings: Settings, database: Database) -> None:
    recorder, name = Recorder(), kind("dedupe")
    platform = _platform(settings, database, JobSpec(name, recorder))
    async with platform.database.transaction() as session:
        first = await enqueue(session, name, {"n": 1}, dedupe_key="digest:42")
        assert await enqueue(session, name, {"n": 2}, dedupe_key="digest:42") is None
        assert await enqueue(session, name, {"n": 3}) is not None
    async with platform.database.transaction() as session:
        assert await enqueue(session, name, {"n": 4}, dedupe_key="digest:42") is None
    await run_due_jobs(platform)
    assert sorted(payload["n"] for _, payload in recorder.calls) == [1, 3]
    assert first is not None
    assert (await get_job(platform, first)).dedupe_key is None
    # Finished: the key is free again.
    async with platform.database.transaction() as session:
        assert await enqueue(session, name, {"n": 5}, dedupe_key="digest:42") is not None


async def test_concurrent_enqueues_with_one_dedupe_key_store_one_job(live_platform: LivePlatform) -> None:
    name = kind("dedupe")
    platform = live_platform(app_with(JobSpec(name, Recorder())))

    async def enqueue_once(n: int) -> Any:
        async with platform.database.transaction() as session:
            return await enqueue(session, name, {"n": n}, dedupe_key=f"{name}:only")

    results = await asyncio.gather(*(enqueue_once(n) for n in range(4)))
    assert len([r for r in results if r is not None]) == 1
    assert len(await jobs_named(platform, name)) == 1


async def test_secret_values_are_stored_encrypted_and_deleted_after_success(
    settings: Settings, database: Database
) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(context: JobContext, _payload: dict[str, Any]) -> None:
        seen.append(context.secret())

    name = kind("secret")
    platform = _platform(settings, database, JobSpec(name, handler))
    link = "https://pentad.test/reset-password?token=prt_very_secret"
    async with platform.database.transaction() as session:
        job_id = await enqueue(
            session, name, {"purpose": "reset"}, secret=SecretPayload(platform.keyring, {"link": link})
        )
    assert job_id is not None
    stored = await get_job(platform, job_id)
    assert stored.secret is not None
    assert "very_secret" not in stored.secret + json.dumps(stored.payload)
    plaintext = platform.keyring.decrypt(stored.secret, context=secret_context(job_id))
    assert json.loads(plaintext) == {"link": link}
    with pytest.raises(CryptoError):
        platform.keyring.decrypt(stored.secret, context=secret_context(stored.id.hex))

    await run_due_jobs(platform)
    assert seen == [{"link": link}]
    assert (await get_job(platform, job_id)).secret is None


async def test_key_rotation_reencrypts_the_secret_values_of_jobs(
    settings: Settings, database: Database
) -> None:
    name = kind("rotated")
    platform = _platform(settings, database, JobSpec(name, Recorder()))
    async with platform.database.transaction() as session:
        job_id = await enqueue(session, name, secret=SecretPayload(platform.keyring, {"token": "t0ken"}))
    assert job_id is not None
    fresh = generate_key()
    async with platform.database.transaction() as session:
        await keyrotation.reencrypt_all(session, KeyRing.parse(f"{fresh},{TEST_CRYPTO_KEYS}"))
    stored = await get_job(platform, job_id)
    assert stored.secret is not None
    assert KeyRing.parse(fresh).decrypt(stored.secret, context=secret_context(job_id)) == '{"token": "t0ken"}'


async def test_asking_for_a_secret_the_job_does_not_carry_fails_the_job(
    settings: Settings, database: Database
) -> None:
    async def handler(context: JobContext, _payload: dict[str, Any]) -> None:
        context.secret()

    name = kind("nosecret")
    platform = _platform(settings, database, JobSpec(name, handler, max_attempts=1))
    async with platform.database.transaction() as session:
        job_id = await enqueue(session, name)
    assert job_id is not None
    await run_due_jobs(platform)
    job = await get_job(platform, job_id)
    assert job.status == JobStatus.DEAD
    assert job.last_error is not None
    assert "LookupError: job" in job.last_error


async def test_a_waiting_worker_is_woken_by_the_commit(live_platform: LivePlatform) -> None:
    recorder, name = Recorder(), kind("wake")
    # A poll interval far longer than the wait below: only the doorbell can start the job in time.
    platform = live_platform(app_with(JobSpec(name, recorder)), poll_interval=600)
    worker = Worker(platform)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)
        async with platform.database.transaction() as session:
            await enqueue(session, name, {"n": 1})
        await eventually(lambda: recorder.calls, within=10)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert recorder.calls == [(1, {"n": 1})]


# ------------------------------------------------------------------ cancel


async def test_cancelling_by_dedupe_key_drops_the_pending_run_and_frees_the_key(
    settings: Settings, database: Database
) -> None:
    recorder, name = Recorder(), kind("scheduled")
    platform = _platform(settings, database, JobSpec(name, recorder))
    async with platform.database.transaction() as session:
        await enqueue(session, name, {"version": 1}, delay=timedelta(hours=1), dedupe_key=f"{name}:s1")
        await enqueue(session, name, {"other": True}, delay=timedelta(hours=1), dedupe_key=f"{name}:s2")
    async with platform.database.transaction() as session:
        assert await cancel_queued(session, dedupe_key=f"{name}:s1") == 1
        assert await enqueue(session, name, {"version": 2}, dedupe_key=f"{name}:s1") is not None
        assert await cancel_queued(session, dedupe_key=f"{name}:nothing") == 0
    await run_due_jobs(platform)
    assert recorder.calls == [(1, {"version": 2})]
    assert [job.payload for job in await jobs_named(platform, name)] == [{"other": True}, {"version": 2}]


async def test_cancelling_by_id_spares_running_jobs_and_is_undone_by_a_rollback(
    settings: Settings, database: Database
) -> None:
    name = kind("cancel_by_id")
    platform = _platform(settings, database, JobSpec(name, Recorder()))
    async with platform.database.transaction() as session:
        running = await enqueue(session, name, {"n": 1})
        queued = await enqueue(session, name, {"n": 2}, delay=timedelta(hours=1))
    assert running is not None
    assert queued is not None
    await set_job(platform, running, status=JobStatus.RUNNING, locked_until=utcnow() + timedelta(minutes=5))

    async def cancel_then_fail() -> None:
        async with platform.database.transaction() as session:
            assert await cancel_queued(session, job_id=queued) == 1
            raise RuntimeError("the edit failed")

    with pytest.raises(RuntimeError):
        await cancel_then_fail()
    async with platform.database.transaction() as session:
        assert await cancel_queued(session, job_id=running) == 0
        assert await cancel_queued(session, job_id=queued) == 1
        with pytest.raises(ValueError, match="dedupe_key or job_id"):
            await cancel_queued(session)
    assert [job.id for job in await jobs_named(platform, name)] == [running]
