"""Thin routes of the jobs admin API: /api/jobs (list, inspect, retry dead jobs)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.permissions import JOBS_MANAGE
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.schemas import JobPage, JobRead
from pentad.core.jobs.service import JobsService
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/jobs",
    tags=["jobs"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)


def jobs_service(request: Request, session: AsyncSession = Depends(db_session)) -> JobsService:
    return JobsService(session, get_platform(request))


Service = Annotated[JobsService, Depends(jobs_service)]
JobsManager = Annotated[Principal, Depends(require(JOBS_MANAGE))]


@router.get("", response_model=JobPage, summary="List background jobs, newest first")
async def list_jobs(
    service: Service,
    principal: JobsManager,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state, e.g. `dead`.")] = None,
    name: Annotated[str | None, Query(max_length=100, description="Only jobs of this kind.")] = None,
    before: Annotated[uuid.UUID | None, Query(description="`next_before` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    jobs = await service.list_jobs(status=status, name=name, before=before, limit=limit)
    return JobPage(
        items=[service.describe(job) for job in jobs],
        next_before=jobs[-1].id if len(jobs) == limit else None,
    )


@router.get("/{job_id}", response_model=JobRead, summary="Get a job")
async def get_job(job_id: uuid.UUID, service: Service, principal: JobsManager) -> JobRead:
    return service.describe(await service.get_job(job_id))


@router.post(
    "/{job_id}/retry",
    response_model=JobRead,
    summary="Retry a dead job",
    description="Queues a dead-lettered job again, due now, with a fresh set of attempts. "
    "Answers 409 for a job that is not dead.",
)
async def retry_job(job_id: uuid.UUID, request: Request, service: Service, principal: JobsManager) -> JobRead:
    job = await service.retry_job(job_id, request_actor(request, principal))
    return service.describe(job)
