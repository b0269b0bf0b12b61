"""pydantic models of jobs: what the admin API returns and what progress events carry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pentad.core.jobs.models import JobStatus


class JobRead(BaseModel):
    """A job as admins see it. Its secret payload, if any, is never shown."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(description="The job kind, `<app>.<verb>`.")
    status: JobStatus
    payload: dict[str, Any]
    dedupe_key: str | None = Field(description="Set while the job is queued or running.")
    priority: int = Field(description="Among due jobs, higher runs first.")
    queue: str | None = Field(
        None, description="The queue its kind is routed to; null when this process does not know the kind."
    )
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int | None = Field(
        None, description="Attempts before the job is dead; null when this process does not know the kind."
    )
    run_at: datetime = Field(description="When the job is due (or its next attempt is).")
    created_at: datetime
    started_at: datetime | None = Field(description="Start of the latest attempt.")
    finished_at: datetime | None
    locked_by: str | None = Field(description="The worker running it.")
    locked_until: datetime | None = Field(description="End of the running worker's lease.")
    progress: float | None = Field(description="0 to 1, as reported by the job.")
    progress_message: str | None
    last_error: str | None = Field(description="The failure of the latest failed attempt.")


class JobPage(BaseModel):
    items: list[JobRead]
    next_before: uuid.UUID | None = Field(description="Pass as `before` to get the next (older) page.")


class JobProgress(BaseModel):
    """Realtime event: a running job reported progress (topic `jobs.{job_id}`)."""

    job_id: uuid.UUID
    name: str
    attempt: int
    fraction: float = Field(ge=0.0, le=1.0)
    message: str | None = None
