"""Rules of the jobs admin: list and inspect jobs, retry dead ones. Never commits."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.db.base import utcnow
from pentad.core.jobs import repository
from pentad.core.jobs.exceptions import JobNotFound, JobNotRetryable
from pentad.core.jobs.models import Job, JobStatus
from pentad.core.jobs.queue import wake_workers_on_commit
from pentad.core.jobs.schemas import JobRead
from pentad.core.platform import Platform


class JobsService:
    def __init__(self, session: AsyncSession, platform: Platform) -> None:
        self.session = session
        self.platform = platform

    async def list_jobs(
        self, *, status: JobStatus | None, name: str | None, before: uuid.UUID | None, limit: int
    ) -> list[Job]:
        return await repository.list_jobs(self.session, status=status, name=name, before=before, limit=limit)

    async def get_job(self, job_id: uuid.UUID) -> Job:
        job = await repository.get_job(self.session, job_id)
        if job is None:
            raise JobNotFound()
        return job

    async def retry_job(self, job_id: uuid.UUID, actor: Actor) -> Job:
        """Queue a dead job again, due now, with a fresh set of attempts."""
        job = await self.get_job(job_id)
        if job.status != JobStatus.DEAD:
            raise JobNotRetryable(job.status)
        job.status = JobStatus.QUEUED
        job.attempts = 0
        job.run_at = utcnow()
        job.finished_at = None
        job.progress = job.progress_message = None
        audit.record(self.session, actor, "job.retry", resource_type="job", resource_id=job.id, name=job.name)
        wake_workers_on_commit(self.session)
        return job

    def describe(self, job: Job) -> JobRead:
        """The job as admins see it, with the attempt limit and queue its kind has in this process."""
        spec = self.platform.jobs.registry.get(job.name)
        limit = (
            spec.attempts_allowed(self.platform, self.platform.settings.jobs.max_attempts) if spec else None
        )
        queue = spec.queue if spec else None
        return JobRead.model_validate(job).model_copy(update={"max_attempts": limit, "queue": queue})
