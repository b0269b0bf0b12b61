"""The jobs admin page, /admin/jobs: what runs, what waits, what died, and a retry button.

Rendered in the site layout by the page kit (core/web/pages/kit.py); its template,
`admin_jobs.html`, lives with the shell's templates so it can extend `base.html`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from pentad.core.auth.dependencies import request_actor
from pentad.core.auth.permissions import JOBS_MANAGE
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError
from pentad.core.jobs.endpoints import Service
from pentad.core.jobs.models import JobStatus
from pentad.core.jobs.service import JobsService
from pentad.core.web.pages.kit import PageAccess, failure_context, render_page, see_other

JOBS_PAGE_SIZE = 50
RETRIED_NOTICE = "The job was queued again."

router = APIRouter(include_in_schema=False)

JobsManager = Annotated[Principal, Depends(PageAccess(JOBS_MANAGE))]
Filter = Annotated[str, Query(max_length=100)]


def _jobs_url(status: str, name: str, **extra: str) -> str:
    return "/admin/jobs?" + urlencode(
        {k: v for k, v in {"status": status, "name": name, **extra}.items() if v}
    )


async def _jobs_page(
    request: Request,
    service: JobsService,
    principal: Principal,
    *,
    status: str,
    name: str,
    before: str,
    **context: Any,
) -> Response:
    state = JobStatus(status) if status in set(JobStatus) else None
    try:
        before_id = uuid.UUID(before) if before else None
    except ValueError:
        before_id = None
    jobs = await service.list_jobs(status=state, name=name or None, before=before_id, limit=JOBS_PAGE_SIZE)
    older = _jobs_url(status, name, before=str(jobs[-1].id)) if len(jobs) == JOBS_PAGE_SIZE else None
    if request.query_params.get("notice") == "job-retried":
        context.setdefault("notice", RETRIED_NOTICE)
    return render_page(
        request,
        "admin_jobs.html",
        principal,
        jobs=[service.describe(job) for job in jobs],
        statuses=list(JobStatus),
        status=state or "",
        name=name,
        newest=_jobs_url(status, name) if before_id else None,
        older=older,
        **context,
    )


@router.get("/admin/jobs")
async def jobs(
    request: Request,
    service: Service,
    principal: JobsManager,
    status: Filter = "",
    name: Filter = "",
    before: Filter = "",
) -> Response:
    return await _jobs_page(request, service, principal, status=status, name=name.strip(), before=before)


@router.post("/admin/jobs/{job_id}/retry")
async def retry_job(
    job_id: uuid.UUID,
    request: Request,
    service: Service,
    principal: JobsManager,
    status: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        await service.retry_job(job_id, request_actor(request, principal))
    except AppError as exc:
        return await _jobs_page(
            request, service, principal, status=status, name=name, before="", **failure_context(exc)
        )
    return see_other(_jobs_url(status, name, notice="job-retried"))
