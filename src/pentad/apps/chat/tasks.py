"""Background jobs of the chat app, named "chat.<verb>"."""

from __future__ import annotations

from pentad.apps.chat import digests, push, webhooks
from pentad.core.jobs.registry import CronSpec, JobSpec

JOBS: tuple[JobSpec, ...] = (
    webhooks.SENDER.job_spec(),
    JobSpec(digests.SEND_DIGESTS, digests.send_digests, concurrency=1),
    JobSpec(push.PUSH_SEND_JOB, push.send_push, max_attempts=5, timeout=60),
)
CRON: tuple[CronSpec, ...] = (CronSpec(digests.SEND_DIGESTS, "*/15 * * * *"),)
