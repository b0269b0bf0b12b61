"""Enqueue a job from a service: the row joins the caller's transaction; workers wake when it commits.

Only workers of this process are woken (the doorbell); workers in other processes find the job by polling
every PENTAD_JOBS__POLL_INTERVAL seconds. Waking is only about latency: the committed row is the truth.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.crypto import KeyRing, column_context
from pentad.core.db.base import utcnow, uuid7
from pentad.core.db.hooks import on_commit
from pentad.core.jobs import repository


def secret_context(job_id: uuid.UUID) -> str:
    """Binds a job's encrypted payload to its row, as every EncryptedText column is bound."""
    return column_context("jobs", "secret", job_id)


@dataclass(frozen=True)
class SecretPayload:
    """Values a job needs that must not be readable in the database (a password-reset link).

    Stored encrypted with the key ring, bound to the job's id; handlers read them with
    `JobContext.secret()`. They are deleted when the job succeeds.
    """

    keyring: KeyRing
    values: Mapping[str, Any]


class Doorbell:
    """Wakes the workers of this process that serve the database a job was committed to."""

    def __init__(self) -> None:
        self._listeners: list[tuple[Engine, asyncio.Event]] = []

    def listen(self, engine: Engine, event: asyncio.Event) -> None:
        self._listeners.append((engine, event))

    def forget(self, event: asyncio.Event) -> None:
        self._listeners = [(e, ev) for e, ev in self._listeners if ev is not event]

    def ring(self, engine: Engine) -> None:
        for listening_engine, event in self._listeners:
            if listening_engine is engine:
                event.set()


DOORBELL = Doorbell()
"""Process-wide, like the event loop it serves: enqueue() only has the caller's session to go by."""


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    delay: timedelta | None = None,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
    secret: SecretPayload | None = None,
    priority: int = 0,
) -> uuid.UUID | None:
    """Add job `name` to the caller's transaction; it runs after the transaction commits.

    delay / run_at: not before then (give at most one). dedupe_key: do nothing (return None) while a job
    with this key is queued or running. priority: among due jobs of the queues a worker serves, higher
    runs first. Returns the new job's id.
    """
    if delay is not None and run_at is not None:
        raise ValueError("give delay or run_at, not both")
    now = utcnow()
    due = run_at if run_at is not None else now + (delay or timedelta())
    job_id = uuid7()
    sealed = None
    if secret is not None:
        sealed = secret.keyring.encrypt(json.dumps(dict(secret.values)), context=secret_context(job_id))
    inserted = await repository.insert_job(
        session,
        job_id=job_id,
        name=name,
        payload=payload or {},
        secret=sealed,
        run_at=due,
        dedupe_key=dedupe_key,
        priority=priority,
    )
    if not inserted:
        return None
    wake_workers_on_commit(session)
    return job_id


async def cancel_queued(
    session: AsyncSession, *, dedupe_key: str | None = None, job_id: uuid.UUID | None = None
) -> int:
    """Drop, in the caller's transaction, the job that waits to run with this `dedupe_key` and/or `job_id`
    (give at least one); returns how many were dropped (0 or 1). Only queued jobs go (a retry waiting for
    its turn is queued too); a running job finishes, so a handler must still tolerate a stale run. With the
    dedupe key dropped, `enqueue(..., dedupe_key=...)` may queue the replacement in the same transaction."""
    if dedupe_key is None and job_id is None:
        raise ValueError("give dedupe_key or job_id")
    return await repository.delete_queued(session, dedupe_key=dedupe_key, job_id=job_id)


@dataclass(frozen=True)
class NewJob:
    """One job of an `enqueue_many` batch."""

    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    run_at: datetime | None = None
    """Not before then; unset: due at once."""
    priority: int = 0


async def enqueue_many(session: AsyncSession, jobs: Iterable[NewJob]) -> list[uuid.UUID]:
    """Add many jobs to the caller's transaction with one batched INSERT; returns their ids in order.
    No dedupe keys or secret payloads here: use `enqueue` for those."""
    now = utcnow()
    batch = list(jobs)
    ids = [uuid7() for _ in batch]
    rows = [
        {
            "id": job_id,
            "name": job.name,
            "payload": dict(job.payload),
            "run_at": job.run_at or now,
            "priority": job.priority,
        }
        for job_id, job in zip(ids, batch, strict=True)
    ]
    if rows:
        await repository.insert_jobs(session, rows, now=now)
        wake_workers_on_commit(session)
    return ids


def wake_workers_on_commit(session: AsyncSession) -> None:
    """Once the session commits, wake this process's workers: a job became due."""
    engine = session.get_bind().engine

    async def wake_workers() -> None:
        DOORBELL.ring(engine)

    on_commit(session, wake_workers)
