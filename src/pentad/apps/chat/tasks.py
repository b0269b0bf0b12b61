"""Background jobs of the chat app, named "chat.<verb>" (filled in by the integrations work)."""

from __future__ import annotations

from pentad.core.jobs.registry import CronSpec, JobSpec

JOBS: tuple[JobSpec, ...] = ()
CRON: tuple[CronSpec, ...] = ()
