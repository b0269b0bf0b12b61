"""The job queue on Prometheus: attempts by outcome, the backlog per queue, and `pentad worker`'s own
/metrics port (the same credential rule as `pentad serve`'s /metrics)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import timedelta
from subprocess import DEVNULL
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pentad.core.auth.permissions import METRICS_READ
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec, RetryLater
from pentad.core.jobs.worker import Worker
from pentad.core.platform import Platform
from pentad.core.web.metrics_port import MetricsPort
from tests.core.jobs.conftest import REPO, LivePlatform, Recorder, app_with, kind
from tests.factories import bearer, free_port, issue_service_token


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(platform: Platform, name: str, **labels: str) -> float | None:
    return _samples(platform.metrics.render().decode()).get((name, tuple(sorted(labels.items()))))


async def _enqueue(platform: Platform, name: str, **kw: Any) -> None:
    async with platform.database.transaction() as session:
        await enqueue(session, name, {}, **kw)


async def test_attempts_are_counted_by_job_kind_and_outcome(live_platform: LivePlatform) -> None:
    async def later(_context: Any, _payload: dict[str, Any]) -> None:
        raise RetryLater(3600, "come back later")

    ok, flaky, doomed, waits = kind("ok"), kind("flaky"), kind("doomed"), kind("waits")
    platform = live_platform(
        app_with(
            JobSpec(ok, Recorder()),
            JobSpec(flaky, Recorder(failures=1)),
            JobSpec(doomed, Recorder(failures=5), max_attempts=1),
            JobSpec(waits, later),
        ),
        backoff_base=0.01,
        backoff_max=0.01,
    )
    for name in (ok, ok, flaky, doomed, waits):
        await _enqueue(platform, name)
    await asyncio.wait_for(Worker(platform).run(until_idle=True), 60)

    finished = "pentad_jobs_finished_total"
    assert _value(platform, finished, job=ok, outcome="succeeded") == 2
    assert _value(platform, finished, job=flaky, outcome="retry") == 1
    assert _value(platform, finished, job=flaky, outcome="succeeded") == 1
    assert _value(platform, finished, job=doomed, outcome="dead") == 1
    assert _value(platform, finished, job=waits, outcome="later") == 1
    assert _value(platform, finished, job=doomed, outcome="succeeded") is None
    assert _value(platform, "pentad_jobs_duration_seconds_count", job=ok) == 2
    assert _value(platform, "pentad_jobs_running") == 0


async def test_the_backlog_per_queue_counts_due_jobs_and_drops_to_zero_when_drained(
    live_platform: LivePlatform,
) -> None:
    media, default = kind("transcode"), kind("mail")
    platform = live_platform(
        app_with(JobSpec(media, Recorder(), queue="media"), JobSpec(default, Recorder()))
    )
    for _ in range(3):
        await _enqueue(platform, media)
    await _enqueue(platform, default)
    await _enqueue(platform, default, delay=timedelta(hours=1))  # not due: not in the backlog

    # A worker of the default queue runs its job and reports both queues' backlog as it polls.
    await asyncio.wait_for(Worker(platform, queues=["default"]).run(until_idle=True), 60)
    fresh = Worker(platform, queues=["default"])
    await fresh._measure_backlog()
    assert _value(platform, "pentad_jobs_due", queue="default") == 0
    assert _value(platform, "pentad_jobs_due", queue="media") is None  # not this worker's queue

    every = Worker(platform)
    await every._measure_backlog()
    assert _value(platform, "pentad_jobs_due", queue="media") == 3
    oldest = _value(platform, "pentad_jobs_oldest_due_seconds", queue="media")
    assert oldest is not None
    assert 0 <= oldest < 600

    await asyncio.wait_for(Worker(platform).run(until_idle=True), 60)
    await every._measure_backlog()
    assert _value(platform, "pentad_jobs_due", queue="media") == 0
    assert _value(platform, "pentad_jobs_oldest_due_seconds", queue="media") == 0


async def test_the_metrics_port_wants_a_credential_with_the_metrics_permission(
    live_platform: LivePlatform,
) -> None:
    platform = live_platform(app_with(JobSpec(kind("ok"), Recorder())))
    port = MetricsPort(platform, "127.0.0.1", 0)
    await port.start()
    try:
        scraper = bearer(await issue_service_token(platform, scopes=[METRICS_READ.key]))
        other = bearer(await issue_service_token(platform, scopes=["core.jobs.manage"]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port.port}") as client:
            answer = await client.get("/metrics", headers=scraper)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain; version=")
            assert "pentad_jobs_running" in answer.text
            assert "pentad_db_pool_size" in answer.text

            missing = await client.get("/metrics")
            assert missing.status_code == 401
            assert "Bearer" in missing.headers["www-authenticate"]
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer pst_not_a_real_token"})
            assert wrong.status_code == 401
            assert "pentad_" not in wrong.text
            refused = await client.get("/metrics", headers=other)
            assert refused.status_code == 403
            assert "pentad_jobs" not in refused.text
            assert (await client.get("/", headers=scraper)).status_code == 404
            assert (await client.post("/metrics", headers=scraper)).status_code == 405
            head = await client.head("/metrics", headers=scraper)
            assert head.status_code == 200
            assert head.content == b""

        # Not HTTP at all: a 400 and the connection closed, the listener still serving.
        reader, writer = await asyncio.open_connection("127.0.0.1", port.port)
        writer.write(b"\x16\x03\x01 garbage\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port.port}") as client:
            assert (await client.get("/metrics", headers=scraper)).status_code == 200
    finally:
        await port.close()


@pytest.mark.one_engine
async def test_pentad_worker_serves_its_metrics_on_the_configured_port(
    live_platform: LivePlatform, worker_env: dict[str, str]
) -> None:
    platform = live_platform(app_with(JobSpec(kind("ok"), Recorder())))
    scraper = bearer(await issue_service_token(platform, scopes=[METRICS_READ.key]))
    port = free_port()
    env = {**worker_env, "PENTAD_JOBS__METRICS_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.core.jobs.worker_app", "worker", env=env, cwd=REPO, stdout=DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        answer = None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while time.monotonic() < deadline:
                try:
                    answer = await client.get("/metrics", headers=scraper)
                    break
                except httpx.ConnectError:
                    assert process.returncode is None, "the worker exited"
                    await asyncio.sleep(0.2)
            assert answer is not None
            assert answer.status_code == 200
            # The backlog is read as the worker's loop starts, which may come just after the port opens.
            while ("pentad_jobs_due", (("queue", "media"),)) not in _samples(answer.text):
                assert time.monotonic() < deadline, "no backlog figure"
                await asyncio.sleep(0.2)
                answer = await client.get("/metrics", headers=scraper)
            assert _samples(answer.text)[("pentad_jobs_due", (("queue", "media"),))] == 0
            assert (await client.get("/metrics")).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
