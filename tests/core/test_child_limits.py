"""Resource limits of services' child processes (ChildLimits, set between fork and exec) and how a child's
run ended (ChildExit): CPU time, memory, open files, processes."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from pentad.core.metrics import Metrics
from pentad.core.platform import Platform
from pentad.core.services import (
    ChildExit,
    ChildLimits,
    ProcessSupervisor,
    ServiceError,
    ServiceMetrics,
    Services,
    ServiceSpec,
)
from tests.conftest import make_settings
from tests.core.test_services import eventually

WAIT = 30.0
MIB = 1024 * 1024


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-I", "-c", code)


async def _idle(context: Any) -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def processes() -> AsyncIterator[ProcessSupervisor]:
    spec = ServiceSpec("test.limits", _idle, stop_timeout=2)
    supervisor = ProcessSupervisor(spec.name, spec, ServiceMetrics(Metrics()), structlog.get_logger())
    yield supervisor
    await supervisor.stop_all()


async def ended(supervisor: ProcessSupervisor, key: str, code: str, limits: ChildLimits) -> ChildExit:
    child = await supervisor.start(key, python(code), limits=limits)
    async with asyncio.timeout(WAIT):
        await child.wait()
    assert child.exit is not None
    return child.exit


async def test_the_limits_are_set_in_the_child(processes: ProcessSupervisor, tmp_path: Path) -> None:
    limits = ChildLimits(memory_bytes=512 * MIB, cpu_seconds=30, open_files=64, processes=4096)
    report = tmp_path / "limits.json"
    code = (
        "import json, resource, sys; open(sys.argv[1], 'w').write(json.dumps([resource.getrlimit(r) for r in "
        "(resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC)]))"
    )
    child = await processes.start("probe", (*python(code), str(report)), limits=limits)
    async with asyncio.timeout(WAIT):
        await child.wait()
    assert child.exit == ChildExit(returncode=0, signal=None, stopped=False, limit_exceeded=None)
    assert json.loads(report.read_text()) == [[512 * MIB] * 2, [30, 31], [64, 64], [4096, 4096]]
    # This process keeps its own limits.
    assert resource.getrlimit(resource.RLIMIT_CPU) != (30, 31)


async def test_a_child_that_uses_up_its_cpu_time_is_killed_and_reported(processes: ProcessSupervisor) -> None:
    spin = "while True: pass"
    ignore_then_spin = f"import signal; signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n{spin}"
    polite, stubborn = await asyncio.gather(
        ended(processes, "spinner", spin, ChildLimits(cpu_seconds=1)),
        ended(processes, "stubborn", ignore_then_spin, ChildLimits(cpu_seconds=1)),
    )
    assert polite == ChildExit(-signal.SIGXCPU, signal.SIGXCPU, stopped=False, limit_exceeded="cpu")
    # One that ignores SIGXCPU is SIGKILLed by the kernel at the hard limit, a second later.
    assert stubborn == ChildExit(-signal.SIGKILL, signal.SIGKILL, stopped=False, limit_exceeded="cpu")


async def test_a_memory_cap_makes_allocations_fail(processes: ProcessSupervisor) -> None:
    limits = ChildLimits(memory_bytes=128 * MIB)
    within = await ended(processes, "small", "bytearray(16 * 1024 * 1024)", limits)
    assert within.returncode == 0
    beyond = await ended(processes, "large", "bytearray(192 * 1024 * 1024)", limits)
    assert beyond == ChildExit(returncode=1, signal=None, stopped=False, limit_exceeded="memory")
    uncapped = await ended(processes, "uncapped", "bytearray(192 * 1024 * 1024)", ChildLimits())
    assert uncapped.returncode == 0


async def test_an_open_files_cap_refuses_more_descriptors(processes: ProcessSupervisor) -> None:
    limits = ChildLimits(open_files=32)
    code = "files = [open('/dev/null') for _ in range({})]"
    assert (await ended(processes, "few", code.format(16), limits)).returncode == 0
    many = await ended(processes, "many", code.format(64), limits)
    assert many == ChildExit(returncode=1, signal=None, stopped=False, limit_exceeded="open_files")


async def test_a_stopped_or_failing_child_is_not_blamed_on_a_limit(processes: ProcessSupervisor) -> None:
    limits = ChildLimits(cpu_seconds=60, memory_bytes=512 * MIB, open_files=64)
    failed = await ended(processes, "failing", "raise SystemExit(3)", limits)
    assert failed == ChildExit(returncode=3, signal=None, stopped=False, limit_exceeded=None)
    sleeper = await processes.start("sleeper", ("sleep", "60"), limits=limits)
    await processes.stop("sleeper")
    assert sleeper.exit == ChildExit(-signal.SIGTERM, signal.SIGTERM, stopped=True, limit_exceeded=None)


async def test_a_limit_the_child_could_not_set_is_refused_before_starting_it(
    processes: ProcessSupervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unprivileged process cannot give a child more than its own hard limit."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    with pytest.raises(ServiceError, match="hard limit"):
        await processes.start("greedy", ("sleep", "60"), limits=ChildLimits(open_files=10_000))
    assert processes.get("greedy") is None
    child = await processes.start("modest", python("pass"), limits=ChildLimits(open_files=4096))
    async with asyncio.timeout(WAIT):
        assert await child.wait() == 0


def test_limits_must_be_positive_integers() -> None:
    for bad in ({"cpu_seconds": 0}, {"memory_bytes": -1}, {"open_files": 1.5}, {"processes": True}):
        with pytest.raises(ValueError, match="positive integer"):
            ChildLimits(**bad)  # type: ignore[arg-type]


async def test_a_process_service_runs_its_program_under_the_limits(tmp_path: Path) -> None:
    report = tmp_path / "nofile"
    code = (
        "import resource, sys; open(sys.argv[1], 'w').write(str(resource.getrlimit(resource.RLIMIT_NOFILE)))"
    )
    spec = ServiceSpec.process(
        "test.limited", (*python(code), str(report)), limits=ChildLimits(open_files=48)
    )
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    platform = Platform.build(settings, [])
    services = Services([spec], platform=platform, metrics=Metrics())
    await services.start(("serve",))
    try:
        await eventually(
            lambda: report.exists() and bool(report.read_text()), "the program reports its limit"
        )
    finally:
        await services.stop()
        await platform.database.dispose()
    assert report.read_text() == "(48, 48)"
