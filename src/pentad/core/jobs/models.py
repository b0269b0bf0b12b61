"""Tables of the job queue: one row per job, one per cron schedule, one per flushed ingest batch."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin


class JobStatus(StrEnum):
    QUEUED = "queued"
    """Waiting for `run_at`, or for a free worker; also a failed attempt waiting for its retry."""
    RUNNING = "running"
    """Claimed by `locked_by` until `locked_until` (renewed while it runs)."""
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    """Every attempt failed; waits for an admin to retry it."""


class EncryptedLongText(EncryptedText):
    """core.crypto ciphertext of unbounded length (a rendered e-mail); rotated by `pentad keys rotate`."""

    impl = Text()
    cache_ok = True


class Job(IdMixin, TimestampMixin, Base):
    """A unit of background work. `dedupe_key` is unique while the job is queued or running and cleared
    when it finishes, which makes "at most one pending job per key" portable (no partial indexes)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "priority", "run_at"),
        Index("ix_jobs_lease", "status", "locked_until"),
    )

    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[str | None] = mapped_column(EncryptedLongText(), default=None)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    run_at: Mapped[datetime]
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Higher runs first among the due jobs a worker may claim."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    progress: Mapped[float | None] = mapped_column(Float, default=None)
    progress_message: Mapped[str | None] = mapped_column(String(200), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class JobSchedule(Base):
    """The last tick of a cron schedule that was enqueued; advanced by compare-and-set, so exactly one
    worker enqueues each tick."""

    __tablename__ = "job_schedules"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_tick: Mapped[datetime]


class IngestBatch(Base):
    """A batch of buffered ingest rows (core/ingest.py) stored in the same transaction as its rows: a spool
    segment replayed after a crash is skipped when its batch id is here, so no row is inserted twice."""

    __tablename__ = "ingest_batches"
    __table_args__ = (Index("ix_ingest_batches_flushed_at", "flushed_at"),)

    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    flushed_at: Mapped[datetime]
