"""All SQL of the job queue. Updates of a running job are fenced by its lease holder and attempt, so a
worker that lost its lease can no longer change the job."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Executable, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.db.base import utcnow
from pentad.core.jobs.models import IngestBatch, Job, JobSchedule, JobStatus

FINISHED = (JobStatus.SUCCEEDED, JobStatus.DEAD)


async def _affected(session: AsyncSession, statement: Executable) -> int:
    """Rows matched by an UPDATE or DELETE (MySQL dialects count matched, not changed, rows)."""
    result = await session.execute(statement.execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    return result.rowcount


async def insert_job(
    session: AsyncSession,
    *,
    job_id: uuid.UUID,
    name: str,
    payload: Mapping[str, Any],
    secret: str | None,
    run_at: datetime,
    dedupe_key: str | None,
    priority: int = 0,
) -> bool:
    """Insert a queued job; False when `dedupe_key` belongs to a job still queued or running."""
    statement = insert(Job).values(
        id=job_id,
        name=name,
        status=JobStatus.QUEUED,
        payload=dict(payload),
        secret=secret,
        dedupe_key=dedupe_key,
        run_at=run_at,
        priority=priority,
        attempts=0,
        created_at=utcnow(),
    )
    if dedupe_key is None:
        await session.execute(statement)
        return True
    # A savepoint keeps the caller's transaction usable when the unique key refuses the row (PostgreSQL
    # aborts the whole transaction otherwise); it works the same on SQLite and MariaDB.
    try:
        async with session.begin_nested():
            await session.execute(statement)
    except IntegrityError:
        return False
    return True


async def insert_jobs(session: AsyncSession, rows: Sequence[Mapping[str, Any]], *, now: datetime) -> None:
    """Insert queued jobs (id, name, payload, run_at, priority) with one INSERT statement executed for all
    rows at once (the driver's executemany: a prepared statement on SQLite, one pipelined round trip on
    asyncpg, multi-row VALUES on the MySQL drivers)."""
    values = [{**row, "status": JobStatus.QUEUED, "attempts": 0, "created_at": now} for row in rows]
    await session.execute(insert(Job), values)


def _claimable(names: Sequence[str], exclude: Sequence[uuid.UUID], now: datetime) -> Any:
    due = and_(Job.status == JobStatus.QUEUED, Job.run_at <= now)
    lost = and_(Job.status == JobStatus.RUNNING, Job.locked_until <= now)
    condition = and_(Job.name.in_(names), or_(due, lost))
    return and_(condition, Job.id.not_in(exclude)) if exclude else condition


async def any_claimable(
    session: AsyncSession, *, names: Sequence[str], exclude: Sequence[uuid.UUID], now: datetime
) -> bool:
    """Whether lock_claimable would find a job; a plain read that takes no lock."""
    query = select(Job.id).where(_claimable(names, exclude, now)).limit(1)
    return await session.scalar(query) is not None


async def due_backlog(session: AsyncSession, now: datetime) -> dict[str, tuple[int, datetime]]:
    """Job kind → (queued jobs due by `now`, the earliest `run_at` among them)."""
    query = (
        select(Job.name, func.count(), func.min(Job.run_at))
        .where(Job.status == JobStatus.QUEUED, Job.run_at <= now)
        .group_by(Job.name)
    )
    return {name: (count, first) for name, count, first in (await session.execute(query)).all()}


async def lock_claimable(
    session: AsyncSession, *, names: Sequence[str], exclude: Sequence[uuid.UUID], now: datetime, limit: int
) -> list[Job]:
    """Due queued jobs and running jobs whose lease expired, highest priority first, then oldest first,
    locked for this transaction.

    PostgreSQL and MariaDB skip rows another claimer holds (FOR UPDATE SKIP LOCKED); SQLite renders no
    lock clause, and the claim's BEGIN IMMEDIATE makes it the only writer instead.
    """
    query = (
        select(Job)
        .where(_claimable(names, exclude, now))
        .order_by(Job.priority.desc(), Job.run_at, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(query)).all())


def _held(job_id: uuid.UUID, worker_id: str, attempt: int) -> Any:
    return and_(
        Job.id == job_id,
        Job.status == JobStatus.RUNNING,
        Job.locked_by == worker_id,
        Job.attempts == attempt,
    )


async def update_held_job(
    session: AsyncSession, job_id: uuid.UUID, worker_id: str, attempt: int, **values: Any
) -> bool:
    """Change a job this worker still holds; False when its lease was lost to another worker."""
    return (
        await _affected(session, update(Job).where(_held(job_id, worker_id, attempt)).values(**values)) == 1
    )


async def renew_leases(
    session: AsyncSession, worker_id: str, job_ids: Sequence[uuid.UUID], until: datetime
) -> set[uuid.UUID]:
    """Extend the leases this worker holds; returns the ids it still holds."""
    mine = and_(Job.id.in_(job_ids), Job.status == JobStatus.RUNNING, Job.locked_by == worker_id)
    await _affected(session, update(Job).where(mine).values(locked_until=until))
    return set((await session.scalars(select(Job.id).where(mine))).all())


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


async def list_jobs(
    session: AsyncSession,
    *,
    status: JobStatus | None,
    name: str | None,
    before: uuid.UUID | None,
    limit: int,
) -> list[Job]:
    """Newest first; page with `before` = the id of the last job of the previous page."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if name:
        query = query.where(Job.name == name)
    if before is not None:
        query = query.where(Job.id < before)
    return list((await session.scalars(query)).all())


async def delete_finished(session: AsyncSession, finished_before: datetime) -> int:
    return await _affected(
        session, delete(Job).where(Job.status.in_(FINISHED), Job.finished_at < finished_before)
    )


async def advance_schedule(session: AsyncSession, key: str, tick: datetime) -> bool:
    """Compare-and-set the schedule's last tick; True for the one caller that moved it to `tick`."""
    statement = (
        update(JobSchedule).where(JobSchedule.key == key, JobSchedule.last_tick < tick).values(last_tick=tick)
    )
    return await _affected(session, statement) == 1


async def schedule_exists(session: AsyncSession, key: str) -> bool:
    return await session.scalar(select(JobSchedule.key).where(JobSchedule.key == key)) is not None


async def create_schedule(session: AsyncSession, key: str, tick: datetime) -> None:
    """Record a schedule first seen at `tick`; another worker doing the same at once is not an error."""
    try:
        async with session.begin_nested():
            await session.execute(insert(JobSchedule).values(key=key, last_tick=tick))
    except IntegrityError:
        return


async def ingest_batch_stored(session: AsyncSession, stream: str, batch_id: uuid.UUID) -> bool:
    query = select(IngestBatch.batch_id).where(IngestBatch.stream == stream, IngestBatch.batch_id == batch_id)
    return await session.scalar(query) is not None


async def record_ingest_batch(session: AsyncSession, stream: str, batch_id: uuid.UUID, rows: int) -> None:
    await session.execute(
        insert(IngestBatch).values(stream=stream, batch_id=batch_id, rows=rows, flushed_at=utcnow())
    )


async def delete_ingest_batches(session: AsyncSession, flushed_before: datetime) -> int:
    return await _affected(session, delete(IngestBatch).where(IngestBatch.flushed_at < flushed_before))


async def delete_queued(session: AsyncSession, *, dedupe_key: str | None, job_id: uuid.UUID | None) -> int:
    """Delete the queued (not running) jobs with this dedupe key and/or id; how many."""
    conditions = [Job.status == JobStatus.QUEUED]
    if dedupe_key is not None:
        conditions.append(Job.dedupe_key == dedupe_key)
    if job_id is not None:
        conditions.append(Job.id == job_id)
    return await _affected(session, delete(Job).where(*conditions))
