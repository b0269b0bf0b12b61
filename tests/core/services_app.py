"""A test app with services, for tests/core/test_services_cli.py: a `serve` service that starts a child
process and writes its pid next to the data, a crash-looping one, one of its own (`pentad run-service`) and
one beside the job worker (`pentad worker`).

Run the `pentad` command with this app installed: `python -m tests.core.services_app serve …`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pentad.core.apps import AppSpec
from pentad.core.services import ServiceContext, ServiceSpec

SLEEPER = ("sleep", "3600")


def child_pid_file(data_dir: Path, service: str) -> Path:
    return data_dir / f"{service}.child.pid"


async def _spawn_and_wait(context: ServiceContext) -> None:
    child = await context.processes.start("sleeper", SLEEPER)
    # One line per start: a second line would mean a second instance on the node.
    with child_pid_file(context.platform.data_dir, context.name).open("a") as pids:
        pids.write(f"{child.pid}\n")
    await asyncio.Event().wait()


async def _crash(_context: ServiceContext) -> None:
    raise RuntimeError("broken on purpose")


APP = AppSpec(
    name="svctest",
    title="Services test",
    services=[
        ServiceSpec("svctest.spawner", _spawn_and_wait, critical=True),
        ServiceSpec("svctest.flaky", _crash, backoff_base=0.05, backoff_max=0.2),
        ServiceSpec("svctest.own", _spawn_and_wait, placement="own", stop_timeout=5),
        ServiceSpec("svctest.beside_jobs", _spawn_and_wait, placement="worker", stop_timeout=5),
    ],
)

# `pentad serve --workers N` imports this module again in each worker as __mp_main__.
if __name__ in {"__main__", "__mp_main__"}:
    from pentad import apps

    apps.INSTALLED["svctest"] = apps.InstalledApp("tests.core.services_app:APP")

if __name__ == "__main__":
    from pentad.cli import main

    main(sys.argv[1:], prog_name="pentad")
