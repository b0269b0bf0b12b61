"""The core job that rotates the visitor-id salts, and its 00:00 UTC schedule (Platform.build adds both)."""

from __future__ import annotations

from typing import Any

from pentad.core.context import JobContext
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.visitors.ids import ROTATE_SALTS_JOB, rotate_salts, utc_today


async def rotate_visitor_salts(context: JobContext, _payload: dict[str, Any]) -> None:
    """Make today's salt, delete those before yesterday (idempotent: a re-run deletes nothing more)."""
    platform = context.platform
    async with platform.database.transaction() as session:
        await rotate_salts(session, platform.keyring, utc_today())


ROTATE_SALTS = JobSpec(ROTATE_SALTS_JOB, rotate_visitor_salts, max_attempts=10)
ROTATE_SALTS_CRON = CronSpec(ROTATE_SALTS_JOB, "0 0 * * *")
