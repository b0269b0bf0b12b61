"""A test app for real `pentad worker` processes.

`python -m tests.core.jobs.worker_app worker` runs the real `pentad` command line with this module installed
as the app `jobtest` (select it with PENTAD_APPS=jobtest): no hook in the product is needed to load it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pentad.apps import INSTALLED, InstalledApp
from pentad.core.apps import AppSpec
from pentad.core.context import JobContext
from pentad.core.jobs.registry import JobSpec

SLEEP_JOB = "jobtest.sleep"
MEDIA_JOB = "jobtest.transcode"
"""The same handler, routed to the queue `media`."""


def _record(log: Path, event: str, attempt: int) -> None:
    with log.open("a") as handle:
        handle.write(f"{event} {os.getpid()} {attempt}\n")


async def _sleep_and_record(context: JobContext, payload: dict[str, Any]) -> None:
    """Writes `start`, sleeps, writes `done`: a run killed in between leaves a start without a done."""
    log = Path(payload["log"])
    _record(log, "start", context.attempt)
    await asyncio.sleep(payload["seconds"])
    _record(log, "done", context.attempt)


APP = AppSpec(
    name="jobtest",
    title="Job test",
    jobs=[JobSpec(SLEEP_JOB, _sleep_and_record), JobSpec(MEDIA_JOB, _sleep_and_record, queue="media")],
)

if __name__ == "__main__":
    INSTALLED["jobtest"] = InstalledApp("tests.core.jobs.worker_app:APP")
    from pentad.cli import main

    main()
