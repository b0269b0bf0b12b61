"""Errors of the jobs admin API, each with a stable code."""

from __future__ import annotations

from pentad.core.errors import Conflict, NotFound


class JobNotFound(NotFound):
    code = "job_not_found"

    def __init__(self) -> None:
        super().__init__("No such job; finished jobs are deleted after PENTAD_JOBS__RETENTION_DAYS.")


class JobNotRetryable(Conflict):
    code = "job_not_retryable"

    def __init__(self, status: str) -> None:
        super().__init__(f"Only dead jobs can be retried; this one is {status}.")
