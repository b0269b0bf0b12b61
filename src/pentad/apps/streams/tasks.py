"""Background jobs of the streams app (AppSpec.jobs / AppSpec.cron), named "streams.<verb>".

- `streams.export_range` (queue `media`, so `pentad worker --queue media` can run near the disks): an MP4
  export of a recorded range (actions/exports.py).
- `streams.enforce_retention` (cron, every minute): recordings past their camera's age or size limit, and
  expired exports, deleted (actions/retention.py).
"""

from __future__ import annotations

from pentad.apps.streams.actions.exports import EXPORT_JOB, export_range
from pentad.apps.streams.actions.retention import RETENTION_JOB, enforce_retention_job
from pentad.core.jobs.registry import CronSpec, JobSpec

MEDIA_QUEUE = "media"

JOBS: tuple[JobSpec, ...] = (
    JobSpec(EXPORT_JOB, export_range, max_attempts=3, timeout=1800, concurrency=1, queue=MEDIA_QUEUE),
    JobSpec(RETENTION_JOB, enforce_retention_job, max_attempts=3, timeout=600, concurrency=1),
)
CRON: tuple[CronSpec, ...] = (CronSpec(RETENTION_JOB, every=60),)
