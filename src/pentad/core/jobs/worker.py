"""Workers: claim due jobs under a lease, run them with retries and backoff, enqueue cron ticks.

Why the database is the queue rather than Redis with a queue library: a job must be stored in the same
transaction as the change that caused it (the outbox property: a crash loses neither, a rollback keeps
neither), which only a queue inside the application's own database gives; and the embedded default must
need nothing besides its SQLite file. The same tables serve PostgreSQL and MariaDB when scaled out.

Claiming. A claim transaction picks due jobs and marks them running with a lease (`locked_by`,
`locked_until`). On PostgreSQL and MariaDB (10.6+) the pick is `SELECT … FOR UPDATE SKIP LOCKED`, so
concurrent workers take disjoint rows without waiting for one another; on SQLite the claim opens with
BEGIN IMMEDIATE, so it is the database's only writer while it picks. A worker picks only kinds routed to
its queues (`JobSpec.queue`; all of them when it has none), the highest `priority` first, then the oldest.

Leases. While a job runs, its worker renews the lease every third of PENTAD_JOBS__LEASE_SECONDS. A job
whose lease expired (its worker was killed, or lost the database) is claimed again as its next attempt.
Every later change of a running job is fenced by (`locked_by`, `attempts`), and a worker cancels a job
whose lease it lost or could not renew in time, so no job runs twice at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import socket
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from pentad.core.auth.permissions import JOBS_MANAGE
from pentad.core.config import JobsSettings, Settings
from pentad.core.context import AppContext, JobContext, ResourceSpec
from pentad.core.db.base import utcnow
from pentad.core.events import EventRegistry
from pentad.core.jobs import repository
from pentad.core.jobs.metrics import JobMetrics
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.queue import DOORBELL, enqueue, secret_context
from pentad.core.jobs.registry import CronSpec, JobRegistry, JobSpec, RetryLater
from pentad.core.jobs.schemas import JobProgress
from pentad.core.metrics import Metrics
from pentad.core.realtime.publish import publish
from pentad.core.realtime.topics import TopicAccess, TopicSpec

logger = structlog.get_logger("pentad.jobs")


def job_topic(job_id: uuid.UUID) -> str:
    return f"jobs.{job_id}"


async def _may_watch_job(access: TopicAccess) -> bool:
    return access.action == "subscribe"


JOB_PROGRESS_TOPIC = TopicSpec(
    "jobs.{job_id}", authorize=_may_watch_job, history_size=20, history_ttl=3600, requires=JOBS_MANAGE
)
"""Realtime topic of a job's progress events (JobProgress), for admins."""
"""Called inside the transaction that stores a job's progress, e.g. to publish it on the realtime hub."""

MAX_ERROR_CHARS = 4000
MAX_PROGRESS_MESSAGE = 200
PRUNE_JOB = "core.prune_jobs"
BURST_CLAIM_ATTEMPTS = 10
"""Consecutive failed claims after which `run(until_idle=True)` gives up (the burst is not done)."""


def retry_delay(
    attempt: int, base: float, maximum: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next attempt after failed attempt `attempt` (1-based): exponential backoff
    capped at `maximum`, with equal jitter (between half and all of it) so retries of many jobs spread."""
    capped = min(maximum, base * 2.0 ** min(attempt - 1, 64))
    return capped / 2 + rand() * capped / 2


def _describe(exc: BaseException) -> str:
    """The failure as admins see it: the traceback's end, which holds the error itself."""
    text = "".join(traceback.format_exception(exc)).strip()
    return text[-MAX_ERROR_CHARS:]


@dataclass
class Claim:
    """A job this worker claimed, and what it needs to run and fence it."""

    job_id: uuid.UUID
    name: str
    attempt: int
    payload: dict[str, Any]
    secret: str | None
    lease_until: datetime
    task: asyncio.Task[None] | None = None
    handler_done: bool = False
    cancelled_for: str | None = None


class JobHost(AppContext, Protocol):
    """What a worker runs on (the Platform): the context its handlers get, plus the job settings and the
    registry of job kinds."""

    @property
    def settings(self) -> Settings: ...

    @property
    def jobs(self) -> Jobs: ...


class RunningJob:
    """The `JobContext` (core/context.py) of one claimed job: its identity, the platform's app context, its
    secret values and its progress reports."""

    def __init__(self, worker: Worker, claim: Claim) -> None:
        self._worker = worker
        self._claim = claim

    @property
    def job_id(self) -> uuid.UUID:
        return self._claim.job_id

    @property
    def name(self) -> str:
        return self._claim.name

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self._claim.attempt

    @property
    def max_attempts(self) -> int:
        spec = self._worker.registry.get(self._claim.name)
        default = self._worker.settings.max_attempts
        return default if spec is None else spec.attempts_allowed(self.platform, default)

    @property
    def platform(self) -> AppContext:
        return self._worker.platform

    def resource(self, spec: ResourceSpec[Any] | str, /) -> Any:
        return self._worker.platform.resource(spec)

    def secret(self) -> dict[str, Any]:
        if self._claim.secret is None:
            raise LookupError(f"job {self.job_id} carries no secret payload")
        plaintext = self.platform.keyring.decrypt(self._claim.secret, context=secret_context(self.job_id))
        values: dict[str, Any] = json.loads(plaintext)
        return values

    async def progress(self, fraction: float, message: str | None = None) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("progress is a fraction from 0 to 1")
        claim = self._claim
        message = message[:MAX_PROGRESS_MESSAGE] if message else None
        async with self.platform.database.transaction() as session:
            stored = await repository.update_held_job(
                session,
                claim.job_id,
                self._worker.id,
                claim.attempt,
                progress=fraction,
                progress_message=message,
            )
            if stored:
                event = JobProgress(
                    job_id=claim.job_id,
                    name=claim.name,
                    attempt=claim.attempt,
                    fraction=fraction,
                    message=message,
                )
                publish(session, job_topic(claim.job_id), event)


class Worker:
    """Runs jobs of the kinds this process knows that are routed to its queues, at most `concurrency` at
    once, until stopped."""

    def __init__(
        self, platform: JobHost, *, concurrency: int | None = None, queues: Sequence[str] = ()
    ) -> None:
        self.platform = platform
        self.settings: JobsSettings = platform.settings.jobs
        self.registry: JobRegistry = platform.jobs.registry
        self.concurrency = concurrency or self.settings.concurrency
        self.queues: frozenset[str] = frozenset(queues or self.settings.queues)
        """The queues this worker claims from; empty: all of them."""
        self.id = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._running: dict[uuid.UUID, Claim] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._seen_ticks: dict[str, datetime] = {}
        self._known_schedules: set[str] = set()
        self.metrics: JobMetrics = platform.jobs.metrics

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def stop(self) -> None:
        """Ask `run()` to return: it stops claiming, lets running jobs finish within the grace period and
        puts the rest back in the queue."""
        self._stopping = True
        self._wake.set()

    async def run(self, *, until_idle: bool = False) -> None:
        """Serve jobs until `stop()`; with `until_idle`, return once no job is due or running."""
        DOORBELL.listen(self.platform.database.engine.sync_engine, self._wake)
        heartbeat = asyncio.create_task(self._keep_leases())
        logger.info(
            "worker_started",
            worker=self.id,
            concurrency=self.concurrency,
            queues=sorted(self.queues) or "all",
            until_idle=until_idle,
        )
        failed_claims = 0
        try:
            while not self._stopping:
                self._wake.clear()
                await self._guarded(self.schedule_cron(utcnow()), "job_cron_failed")
                # A job that ends while the claim looks frees room the claim did not see (a kind at its
                # concurrency): only a claim that began with nothing running can prove the burst is done.
                busy = bool(self._running)
                if self.metrics.refresh_due():
                    await self._guarded(self._measure_backlog(), "job_backlog_failed")
                started = await self._guarded(self._fill(), "job_claim_failed")
                # A failed claim (a lock wait timed out on a busy SQLite file) says nothing about idleness;
                # a database that keeps failing ends a burst with an error rather than a false "all done".
                failed_claims = failed_claims + 1 if started is None else 0
                if until_idle and failed_claims >= BURST_CLAIM_ATTEMPTS:
                    raise RuntimeError(f"could not claim jobs {failed_claims} times in a row; see the log")
                if until_idle and started == 0 and not busy and not self._running:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.next_poll_in(utcnow()))
        finally:
            DOORBELL.forget(self._wake)
            # Leases stay renewed while running jobs get their grace period.
            await self._shut_down()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    def next_poll_in(self, now: datetime) -> float:
        """Seconds until the next poll: the poll interval, or sooner when a schedule ticks before it."""
        wait = self.settings.poll_interval
        for entry in self.registry.cron:
            wait = min(wait, (entry.next_tick(now) - now).total_seconds())
        return max(wait, 0.0)

    async def _guarded(self, work: Awaitable[int], event: str) -> int | None:
        """A failed poll (database restarting, lock timeout) is logged (None); the next poll tries again."""
        try:
            done: int = await work
        except Exception:
            logger.warning(event, worker=self.id, exc_info=True)
            return None
        return done

    # ---------------------------------------------------------------- claiming

    async def _fill(self) -> int:
        started = 0
        while not self._stopping and len(self._running) < self.concurrency:
            claims = await self.claim(self.concurrency - len(self._running))
            if not claims:
                break
            for claim in claims:
                self._running[claim.job_id] = claim
                claim.task = asyncio.create_task(self._execute(claim), name=f"job {claim.name}")
            started += len(claims)
        return started

    async def _measure_backlog(self) -> int:
        """The due jobs of this worker's queues, for `pentad_jobs_due` / `pentad_jobs_oldest_due_seconds`."""
        now = utcnow()
        async with self.platform.database.transaction(writes=False) as session:
            backlog = await repository.due_backlog(session, now)
        queues = self.queues or frozenset(self.registry.queues)
        queue_of = {spec.name: spec.queue for spec in self.registry.specs}
        self.metrics.set_due(backlog, queue_of, frozenset(queues), now)
        return len(backlog)

    def _limit_of(self, spec: JobSpec) -> int:
        return spec.concurrency or self.concurrency

    async def claim(self, limit: int) -> list[Claim]:
        """Take up to `limit` due jobs this worker has room for; they are leased to it from now on."""
        active = Counter(claim.name for claim in self._running.values())
        room = {
            spec.name: self._limit_of(spec) - active[spec.name]
            for spec in self.registry.specs
            if not self.queues or spec.queue in self.queues
        }
        names = [name for name, free in room.items() if free > 0]
        if not names:
            return []
        exclude = list(self._running)
        now = utcnow()
        # Look before taking the write lock: on SQLite an idle poll then never blocks writers.
        async with self.platform.database.transaction(writes=False) as session:
            if not await repository.any_claimable(session, names=names, exclude=exclude, now=now):
                return []
        claims: list[Claim] = []
        async with self.platform.database.transaction() as session:
            jobs = await repository.lock_claimable(
                session, names=names, exclude=exclude, now=now, limit=limit
            )
            for job in jobs:
                spec = self.registry.get(job.name)
                assert spec is not None
                if job.status == JobStatus.RUNNING and job.attempts >= spec.attempts_allowed(
                    self.platform, self.settings.max_attempts
                ):
                    job.last_error = f"Its worker {job.locked_by} stopped during the last attempt."
                    job.status = JobStatus.DEAD
                    job.finished_at = now
                    job.dedupe_key = None
                    job.locked_by = job.locked_until = None
                    logger.warning("job_dead", job_id=str(job.id), job=job.name, reason="lease_expired")
                    continue
                if room[job.name] <= 0:
                    continue
                room[job.name] -= 1
                job.status = JobStatus.RUNNING
                job.attempts += 1
                job.locked_by = self.id
                job.locked_until = now + self.lease
                job.started_at = now
                job.progress = job.progress_message = None
                claims.append(
                    Claim(job.id, job.name, job.attempts, dict(job.payload), job.secret, now + self.lease)
                )
        return claims

    # ----------------------------------------------------------------- running

    async def _execute(self, claim: Claim) -> None:
        spec = self.registry.get(claim.name)
        assert spec is not None
        log = logger.bind(job_id=str(claim.job_id), job=claim.name, attempt=claim.attempt, worker=self.id)
        deadline = asyncio.timeout(spec.timeout)
        began = time.monotonic()
        self.metrics.running.inc()
        try:
            try:
                async with deadline:
                    await spec.handler(RunningJob(self, claim), claim.payload)
            except asyncio.CancelledError:
                if claim.cancelled_for is None:
                    raise
                await self._after_cancel(claim, log)
                outcome = "requeued" if claim.cancelled_for == "shutdown" else "abandoned"
                self.metrics.ended(claim.name, outcome, time.monotonic() - began)
            except RetryLater as later:
                claim.handler_done = True
                await self._finish(
                    claim,
                    log,
                    status=JobStatus.QUEUED,
                    attempts=claim.attempt - 1,
                    run_at=utcnow() + timedelta(seconds=later.seconds),
                    last_error=later.reason,
                )
                log.info("job_retry_later", retry_in=later.seconds)
                self.metrics.ended(claim.name, "later", time.monotonic() - began)
            except Exception as exc:
                claim.handler_done = True
                error = f"Timed out after {spec.timeout} seconds." if deadline.expired() else _describe(exc)
                outcome = await self._record_failure(claim, spec, exc, error, log)
                self.metrics.ended(claim.name, outcome, time.monotonic() - began)
            else:
                claim.handler_done = True
                await self._finish(claim, log, status=JobStatus.SUCCEEDED, secret=None)
                log.info("job_succeeded")
                self.metrics.ended(claim.name, "succeeded", time.monotonic() - began)
        except Exception:
            # Recording the outcome failed (database gone): the lease runs out and the job runs again.
            log.warning("job_outcome_not_stored", exc_info=True)
        finally:
            self.metrics.running.dec()
            self._running.pop(claim.job_id, None)
            self._wake.set()

    async def _finish(self, claim: Claim, log: Any, **values: Any) -> None:
        now = utcnow()
        if values.get("status") in repository.FINISHED:
            values.update(finished_at=now, dedupe_key=None)
        async with self.platform.database.transaction() as session:
            kept = await repository.update_held_job(
                session, claim.job_id, self.id, claim.attempt, locked_by=None, locked_until=None, **values
            )
        if not kept:
            log.warning("job_lease_lost", outcome=str(values.get("status")))

    async def _record_failure(self, claim: Claim, spec: JobSpec, exc: Exception, error: str, log: Any) -> str:
        """Dead-letter the job or queue its retry; returns the outcome (`dead` or `retry`)."""
        if claim.attempt >= spec.attempts_allowed(self.platform, self.settings.max_attempts):
            await self._finish(claim, log, status=JobStatus.DEAD, last_error=error)
            log.warning("job_dead", error=type(exc).__name__)
            return "dead"
        delay = retry_delay(claim.attempt, self.settings.backoff_base, self.settings.backoff_max)
        run_at = utcnow() + timedelta(seconds=delay)
        await self._finish(claim, log, status=JobStatus.QUEUED, run_at=run_at, last_error=error)
        log.warning("job_failed", error=type(exc).__name__, retry_in=round(delay, 3))
        return "retry"

    async def _after_cancel(self, claim: Claim, log: Any) -> None:
        if claim.cancelled_for == "shutdown":
            # Not the job's fault: give the attempt back and make it due again at once.
            await self._finish(
                claim, log, status=JobStatus.QUEUED, attempts=claim.attempt - 1, run_at=utcnow()
            )
            log.info("job_requeued_at_shutdown")
        else:
            log.warning("job_abandoned", reason=claim.cancelled_for)

    def _cancel(self, claim: Claim, reason: str) -> None:
        if claim.task is not None and not claim.handler_done and claim.cancelled_for is None:
            claim.cancelled_for = reason
            claim.task.cancel()

    # ------------------------------------------------------------------ leases

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            await self.renew_leases()

    async def renew_leases(self) -> None:
        """Extend the leases of running jobs; cancel those lost to another worker, or not renewed in time."""
        claims = list(self._running.values())
        if not claims:
            return
        now = utcnow()
        held: set[uuid.UUID] | None
        try:
            async with self.platform.database.transaction() as session:
                held = await repository.renew_leases(
                    session, self.id, [claim.job_id for claim in claims], now + self.lease
                )
        except Exception:
            logger.warning("job_lease_renewal_failed", worker=self.id, exc_info=True)
            held = None
        for claim in claims:
            if held is not None and claim.job_id in held:
                claim.lease_until = now + self.lease
            elif held is not None or claim.lease_until <= utcnow():
                self._cancel(claim, "lease_lost")

    async def _shut_down(self) -> None:
        tasks = [claim.task for claim in self._running.values() if claim.task is not None]
        if not tasks:
            return
        await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
        for claim in list(self._running.values()):
            self._cancel(claim, "shutdown")
        await asyncio.gather(*tasks, return_exceptions=True)

    # -------------------------------------------------------------------- cron

    async def schedule_cron(self, now: datetime) -> int:
        """Enqueue the latest tick of each cron schedule not enqueued yet; returns how many this worker
        enqueued. Any number of workers may call this at once: each tick is enqueued exactly once."""
        enqueued = 0
        for entry in self.registry.cron:
            tick = entry.latest_tick(now)
            if self._seen_ticks.get(entry.key) == tick:
                continue
            if await self._enqueue_tick(entry, tick):
                enqueued += 1
            self._seen_ticks[entry.key] = tick
        return enqueued

    async def _enqueue_tick(self, entry: CronSpec, tick: datetime) -> bool:
        # Creating the schedule's row and advancing it are separate transactions: on MariaDB an UPDATE
        # that finds no row locks the gap, and concurrent INSERTs into that gap deadlock.
        if entry.key not in self._known_schedules:
            async with self.platform.database.transaction() as session:
                if not await repository.schedule_exists(session, entry.key):
                    await repository.create_schedule(session, entry.key, tick)
            self._known_schedules.add(entry.key)
        async with self.platform.database.transaction() as session:
            if await repository.advance_schedule(session, entry.key, tick):
                await enqueue(session, entry.job, entry.payload, run_at=tick)
                return True
        return False


# ---------------------------------------------------------------- the platform's jobs


def prune_job(retention_days: int) -> JobSpec:
    """The job that deletes finished jobs and the ingest batch ids older than the retention."""

    async def prune(context: JobContext, _payload: dict[str, Any]) -> None:
        cutoff = utcnow() - timedelta(days=retention_days)
        async with context.platform.database.transaction() as session:
            deleted = await repository.delete_finished(session, cutoff)
            batches = await repository.delete_ingest_batches(session, cutoff)
        logger.info("jobs_pruned", deleted=deleted, ingest_batches=batches)

    return JobSpec(PRUNE_JOB, prune, concurrency=1)


PRUNE_SCHEDULE = CronSpec(PRUNE_JOB, "17 * * * *")


class Jobs:
    """The platform's jobs: the registry of kinds and schedules, the domain events whose deliveries are
    jobs, and the workers this process started (stopped by `close()`)."""

    def __init__(self, registry: JobRegistry, events: EventRegistry, metrics: JobMetrics) -> None:
        self.registry = registry
        self.events = events
        self.metrics = metrics
        self._workers: list[tuple[Worker, asyncio.Task[None]]] = []

    @classmethod
    def build(
        cls,
        settings: JobsSettings,
        jobs: Sequence[JobSpec],
        cron: Sequence[CronSpec],
        events: EventRegistry,
        metrics: Metrics,
    ) -> Jobs:
        """The core's jobs (pruning, on a schedule), `jobs` and `cron` (the core's other kinds and the
        apps'), and one job kind per event subscriber."""
        kinds = [prune_job(settings.retention_days), *jobs, *events.job_specs()]
        return cls(JobRegistry(kinds, [PRUNE_SCHEDULE, *cron]), events, JobMetrics(metrics))

    def start_worker(self, platform: JobHost) -> Worker:
        """Run a worker in the background of this process (`pentad serve`)."""
        worker = Worker(platform)
        self._workers.append((worker, asyncio.create_task(worker.run(), name="pentad job worker")))
        return worker

    async def close(self) -> None:
        for worker, _ in self._workers:
            worker.stop()
        await asyncio.gather(*(task for _, task in self._workers), return_exceptions=True)
        self._workers.clear()
