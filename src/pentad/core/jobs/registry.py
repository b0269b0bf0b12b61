"""Jobs and cron schedules that apps register through their AppSpec, and the registry built from them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from pentad.core.context import AppContext, JobContext

JobHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]

DEFAULT_QUEUE = "default"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RetryLater(Exception):
    """Raised by a job (or event) handler that cannot do its work yet (a rate-limited upstream, an ESI
    cache window): the job is queued again to run in `seconds`, and the attempt is given back, so waiting
    neither counts toward `max_attempts` nor dead-letters the job. `reason` is stored as the job's
    last_error for admins. The payload is unchanged; a handler that waits forever is the app's bug."""

    def __init__(self, seconds: float, reason: str | None = None) -> None:
        if not seconds > 0:
            raise ValueError("RetryLater needs a positive number of seconds")
        super().__init__(reason or f"retry in {seconds} s")
        self.seconds = float(seconds)
        self.reason = reason


@dataclass(frozen=True)
class JobSpec:
    """A job kind, named `<app>.<verb>`; the handler gets a context and the JSON payload.

    max_attempts / timeout (seconds) override the worker defaults for this kind; max_attempts may also be read
    from an app's own settings, as a function of the context (`lambda c: c.app_settings(M).attempts`).
    concurrency caps how many jobs of this kind one worker process runs at once (the global cap is
    PENTAD_JOBS__CONCURRENCY).
    queue routes the kind to the workers that serve that queue (`pentad worker --queue media`); a worker
    started without queues serves all of them.
    A job runs at least once: a handler whose worker dies mid-run is run again, so handlers are idempotent.
    """

    name: str
    handler: JobHandler
    max_attempts: int | Callable[[AppContext], int] | None = None
    timeout: float | None = None
    concurrency: int | None = None
    queue: str = DEFAULT_QUEUE

    def attempts_allowed(self, platform: AppContext, default: int) -> int:
        """Attempts before a job of this kind is dead; `default` is PENTAD_JOBS__MAX_ATTEMPTS."""
        if callable(self.max_attempts):
            return self.max_attempts(platform)
        return self.max_attempts or default


@dataclass(frozen=True)
class CronSpec:
    """Enqueue `job` on a schedule, in UTC; each tick runs once across all workers.

    schedule: a 5-field cron expression (`*/5 * * * *`) or a 6-field one whose first field is the second
    (`*/10 * * * * *`); or every: an interval in seconds (at least 1), with ticks at multiples of it since
    the Unix epoch, so every worker agrees on them.

    A schedule starts at its first tick after a worker first sees it. Catch-up policy: ticks are never lost
    but coalesced; when no worker ran over several ticks (downtime, a long stall), the latest missed tick is
    enqueued once as soon as a worker runs again, not once per missed tick. The job's `run_at` is that tick.
    """

    job: str
    schedule: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    every: float | None = None

    @property
    def key(self) -> str:
        """Names the schedule in the job_schedules table."""
        if self.every is not None:
            return f"{self.job} every {self.every:g}s"
        return f"{self.job} {self.schedule}"

    def validate(self) -> str | None:
        """What is wrong with the schedule, or None."""
        if (self.every is None) == (not self.schedule):
            return "give a cron schedule or an interval in seconds (every), not both"
        if self.every is not None:
            return None if self.every >= 1 else "an interval must be at least one second"
        fields = len(self.schedule.split())
        if fields not in (5, 6) or not croniter.is_valid(self.schedule, second_at_beginning=fields == 6):
            return f"invalid cron schedule {self.schedule!r}"
        return None

    def _cron(self, start: datetime) -> croniter:
        return croniter(self.schedule, start, second_at_beginning=len(self.schedule.split()) == 6)

    def latest_tick(self, now: datetime) -> datetime:
        """The most recent tick at or before `now`."""
        if self.every is not None:
            every = timedelta(seconds=self.every)
            return EPOCH + every * ((now - EPOCH) // every)
        tick: datetime = self._cron(now + timedelta(microseconds=1)).get_prev(datetime)
        return tick

    def next_tick(self, now: datetime) -> datetime:
        """The first tick after `now`."""
        if self.every is not None:
            return self.latest_tick(now) + timedelta(seconds=self.every)
        tick: datetime = self._cron(now).get_next(datetime)
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
            problem = entry.validate()
            if problem is not None:
                raise RegistryError(f"job {entry.job!r}: {problem}")
            if entry.key in keys:
                raise RegistryError(f"job {entry.job!r} has the schedule {entry.key!r} twice")
            keys.add(entry.key)

    @property
    def specs(self) -> list[JobSpec]:
        return [self._jobs[name] for name in sorted(self._jobs)]

    def get(self, name: str) -> JobSpec | None:
        return self._jobs.get(name)

    @property
    def queues(self) -> list[str]:
        """Every queue some job kind is routed to."""
        return sorted({spec.queue for spec in self._jobs.values()})
