"""The ads app's background work (queue `ads`): budgets, traffic profiles, image variants."""

from __future__ import annotations

from typing import Final

from pentad.apps.ads.budgets import BUDGETS, budgets_job
from pentad.apps.ads.images import RENDER_VARIANTS, render_variants_job
from pentad.apps.ads.profiles import PACING_SNAPSHOT, pacing_snapshot_job
from pentad.core.jobs.registry import CronSpec, JobSpec

QUEUE: Final = "ads"

JOBS: tuple[JobSpec, ...] = (
    JobSpec(BUDGETS, budgets_job, concurrency=1, queue=QUEUE, timeout=300),
    JobSpec(PACING_SNAPSHOT, pacing_snapshot_job, concurrency=1, queue=QUEUE, timeout=300),
    JobSpec(RENDER_VARIANTS, render_variants_job, concurrency=2, queue=QUEUE, timeout=600, max_attempts=3),
)
CRON: tuple[CronSpec, ...] = (
    CronSpec(BUDGETS, every=60),
    CronSpec(PACING_SNAPSHOT, every=60),
)
