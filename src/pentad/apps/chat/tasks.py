"""Background jobs of the chat app, named "chat.<verb>"."""

from __future__ import annotations

from pentad.apps.chat import digests, push, webhooks
from pentad.apps.chat.settings import ChatSettings
from pentad.core.jobs.registry import CronSpec, JobSpec

JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        webhooks.DELIVER,
        webhooks.deliver,
        max_attempts=lambda c: c.app_settings(ChatSettings).webhook_max_attempts,
    ),
    JobSpec(digests.SEND_DIGESTS, digests.send_digests, concurrency=1),
    JobSpec(push.PUSH_SEND_JOB, push.send_push, max_attempts=5, timeout=60),
)
CRON: tuple[CronSpec, ...] = (CronSpec(digests.SEND_DIGESTS, "*/15 * * * *"),)
