"""Jobs and cron schedules that apps register through their AppSpec."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pentad.core.jobs.worker import JobContext

JobHandler = Callable[["JobContext", dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    """A job kind, named `<app>.<verb>`; the handler gets a context and the JSON payload.

    max_attempts / timeout / concurrency override the worker defaults for this kind.
    """

    name: str
    handler: JobHandler
    max_attempts: int | None = None
    timeout: float | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class CronSpec:
    """Enqueue `job` on a cron schedule (`*/5 * * * *`, UTC); each tick runs once across all workers."""

    job: str
    schedule: str
    payload: Mapping[str, Any] = field(default_factory=dict)
