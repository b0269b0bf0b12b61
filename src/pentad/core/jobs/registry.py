"""Jobs and cron schedules that apps register through their AppSpec, and the registry built from them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import croniter

if TYPE_CHECKING:
    from pentad.core.config import Settings
    from pentad.core.jobs.worker import JobContext

JobHandler = Callable[["JobContext", dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    """A job kind, named `<app>.<verb>`; the handler gets a context and the JSON payload.

    max_attempts / timeout (seconds) override the worker defaults for this kind; max_attempts may also be read
    from the settings (an app's own setting), as a function of them. concurrency caps how many jobs of this
    kind one worker process runs at once (the global cap is PENTAD_JOBS__CONCURRENCY).
    A job runs at least once: a handler whose worker dies mid-run is run again, so handlers are idempotent.
    """

    name: str
    handler: JobHandler
    max_attempts: int | Callable[[Settings], int] | None = None
    timeout: float | None = None
    concurrency: int | None = None

    def attempts_allowed(self, settings: Settings) -> int:
        """Attempts before a job of this kind is dead; by default PENTAD_JOBS__MAX_ATTEMPTS."""
        if callable(self.max_attempts):
            return self.max_attempts(settings)
        return self.max_attempts or settings.jobs.max_attempts


@dataclass(frozen=True)
class CronSpec:
    """Enqueue `job` on a cron schedule (`*/5 * * * *`, UTC); each tick runs once across all workers.

    A schedule starts at its first tick after a worker first sees it; ticks missed while no worker ran are
    not replayed, only the latest one is enqueued.
    """

    job: str
    schedule: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Names the schedule in the job_schedules table."""
        return f"{self.job} {self.schedule}"

    def latest_tick(self, now: datetime) -> datetime:
        """The most recent tick at or before `now`."""
        tick: datetime = croniter(self.schedule, now + timedelta(microseconds=1)).get_prev(datetime)
        return tick


class RegistryError(ValueError):
    """An app declared jobs or schedules that cannot work; raised when the platform is built."""


class JobRegistry:
    """Every job kind and cron schedule the running platform knows: the core's and the enabled apps'."""

    def __init__(self, jobs: Iterable[JobSpec], cron: Iterable[CronSpec] = ()) -> None:
        self._jobs: dict[str, JobSpec] = {}
        for spec in jobs:
            if spec.name in self._jobs:
                raise RegistryError(f"job {spec.name!r} is registered twice")
            self._jobs[spec.name] = spec
        self.cron: tuple[CronSpec, ...] = tuple(cron)
        keys: set[str] = set()
        for entry in self.cron:
            if entry.job not in self._jobs:
                raise RegistryError(f"cron schedule {entry.schedule!r} names an unknown job {entry.job!r}")
            if not croniter.is_valid(entry.schedule):
                raise RegistryError(f"job {entry.job!r} has an invalid cron schedule {entry.schedule!r}")
            if entry.key in keys:
                raise RegistryError(f"job {entry.job!r} has the schedule {entry.schedule!r} twice")
            keys.add(entry.key)

    @property
    def specs(self) -> list[JobSpec]:
        return [self._jobs[name] for name in sorted(self._jobs)]

    def get(self, name: str) -> JobSpec | None:
        return self._jobs.get(name)
