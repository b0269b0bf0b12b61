"""App services with real child processes: restart with backoff, crash loops, graceful stop down to the
process group, runtime children, bounded output capture, one holder per node, /readyz and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.auth.permissions import METRICS_READ
from pentad.core.context import AppContext
from pentad.core.db.engine import Database
from pentad.core.metrics import Metrics
from pentad.core.platform import Platform
from pentad.core.services import (
    MAX_LINE_CHARS,
    MAX_LINES_PER_SECOND,
    ServiceContext,
    ServiceError,
    Services,
    ServiceSpec,
    backoff_delay,
)
from tests.conftest import make_settings
from tests.factories import bearer, issue_service_token

DEADLINE_SECONDS = 30.0
PYTHON = sys.executable


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll until `check()` holds; fail only after a generous deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _services(tmp_path: Path, specs: Sequence[ServiceSpec], metrics: Metrics | None = None) -> Services:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    platform = Platform.build(settings, [])
    return Services(specs, platform=platform, metrics=metrics or Metrics())


@pytest.fixture
async def run_services(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Services]]]:
    started: list[Services] = []

    async def start(*specs: ServiceSpec, metrics: Metrics | None = None) -> Services:
        services = _services(tmp_path, specs, metrics)
        started.append(services)
        await services.start(("serve",))
        return services

    yield start
    for services in started:
        await services.stop()
        await services.platform.database.dispose()


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def _python(code: str) -> tuple[str, ...]:
    return (PYTHON, "-c", code)


# ------------------------------------------------------------------ restarts


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    assert backoff_delay(1, 1.0, 60.0, rand=lambda: 0.0) == 0.5
    assert backoff_delay(1, 1.0, 60.0, rand=lambda: 1.0) == 1.0
    assert backoff_delay(4, 1.0, 60.0, rand=lambda: 1.0) == 8.0
    assert backoff_delay(30, 1.0, 60.0, rand=lambda: 1.0) == 60.0
    assert backoff_delay(10_000, 1.0, 60.0, rand=lambda: 0.0) == 30.0


async def test_a_failing_service_is_restarted_after_growing_delays(run_services: Any) -> None:
    runs: list[float] = []

    async def crash(_context: ServiceContext) -> None:
        runs.append(time.monotonic())
        raise RuntimeError("boom")

    metrics = Metrics()
    spec = ServiceSpec("test.crash", crash, backoff_base=0.1, backoff_max=0.4)
    services = await run_services(spec, metrics=metrics)
    await eventually(lambda: len(runs) >= 5, "five runs")
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    # Equal jitter: at least half of 0.1, 0.2, 0.4, then the 0.4 cap.
    for gap, least in zip(gaps, (0.05, 0.1, 0.2, 0.2), strict=False):
        assert gap >= least
    health = services.health()["test.crash"]
    assert health.status == "crash_loop"
    assert health.restarts >= 4
    restarts = _sample(metrics, "pentad_service_restarts_total", service="test.crash")
    assert restarts is not None
    assert restarts >= 4


async def test_a_service_that_returns_is_started_again(run_services: Any) -> None:
    runs: list[int] = []

    async def quits(_context: ServiceContext) -> None:
        runs.append(1)

    await run_services(ServiceSpec("test.quits", quits, backoff_base=0.01, backoff_max=0.02))
    await eventually(lambda: len(runs) >= 3, "three runs")


async def test_a_crash_loop_ends_once_a_run_lasts(run_services: Any) -> None:
    attempts: list[int] = []

    async def flaky_then_fine(_context: ServiceContext) -> None:
        attempts.append(1)
        if len(attempts) <= 3:
            raise RuntimeError("not yet")
        await asyncio.Event().wait()

    spec = ServiceSpec("test.flaky", flaky_then_fine, backoff_base=0.01, backoff_max=0.02, stable_after=2.0)
    services = await run_services(spec)
    await eventually(lambda: len(attempts) == 4, "the fourth, lasting run")
    # Running again, but not yet for stable_after: still reported as a crash loop.
    assert services.health()["test.flaky"].status == "crash_loop"
    await eventually(lambda: services.health()["test.flaky"].status == "running", "healthy again")


# ---------------------------------------------------------------- stopping


async def test_stop_sends_sigterm_and_the_child_shuts_down_cleanly(tmp_path: Path, run_services: Any) -> None:
    marker = tmp_path / "terminated"
    child_code = (
        "import pathlib, signal, sys, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "signal.signal(signal.SIGTERM, lambda *_: (marker.write_text('bye'), sys.exit(0)))\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('')\n"
        "time.sleep(3600)\n"
    )
    pids: list[int] = []

    async def host(context: ServiceContext) -> None:
        child = await context.processes.start("child", _python(child_code))
        assert child.pid is not None
        pids.append(child.pid)
        await asyncio.Event().wait()

    services = await run_services(ServiceSpec("test.host", host))
    await eventually(lambda: (tmp_path / "ready").exists(), "the child is ready")
    await services.stop()
    assert marker.read_text() == "bye"
    assert not alive(pids[0])
    assert services.health() == {}


async def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path, run_services: Any) -> None:
    child_code = (
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('')\n"
        "time.sleep(3600)\n"
    )
    pids: list[int] = []

    async def host(context: ServiceContext) -> None:
        child = await context.processes.start("stubborn", _python(child_code))
        assert child.pid is not None
        pids.append(child.pid)
        await asyncio.Event().wait()

    services = await run_services(ServiceSpec("test.host", host, stop_timeout=0.5))
    await eventually(lambda: (tmp_path / "ready").exists(), "the child ignores SIGTERM")
    with structlog.testing.capture_logs() as logs:
        await services.stop()
    assert not alive(pids[0])
    assert any(entry["event"] == "service_child_killed" for entry in logs)


async def test_stop_reaches_what_the_child_started(tmp_path: Path, run_services: Any) -> None:
    grandchild = tmp_path / "grandchild.pid"
    script = f"sleep 3600 & echo $! > {grandchild}; wait"
    services = await run_services(ServiceSpec.process("test.shell", ("sh", "-c", script)))
    await eventually(lambda: grandchild.exists() and grandchild.read_text().strip() != "", "the grandchild")
    pid = int(grandchild.read_text())
    assert alive(pid)
    await services.stop()
    await eventually(lambda: not alive(pid), "the grandchild is gone")


SUPERVISOR_SCRIPT = """
import multiprocessing, sys, time
from pathlib import Path

def worker(pid_file):
    from pentad.core.services import die_with_supervisor
    die_with_supervisor()
    Path(pid_file).write_text(str(multiprocessing.current_process().pid))
    time.sleep(3600)

if __name__ == "__main__":
    multiprocessing.get_context("spawn").Process(target=worker, args=(sys.argv[1],)).start()
    time.sleep(3600)
"""


async def test_a_worker_of_pentad_serve_dies_with_its_supervisor(tmp_path: Path) -> None:
    """`pentad serve --workers N`: uvicorn starts the workers through multiprocessing, as this script does."""
    script, pid_file = tmp_path / "supervisor.py", tmp_path / "worker.pid"
    script.write_text(SUPERVISOR_SCRIPT)
    supervisor = await asyncio.create_subprocess_exec(PYTHON, str(script), str(pid_file))
    try:
        await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", "the worker runs")
        worker = int(pid_file.read_text())
        assert alive(worker)
        supervisor.kill()
        await supervisor.wait()
        try:
            await eventually(lambda: not alive(worker), "the worker died with its supervisor")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            supervisor.kill()


# ----------------------------------------------------------- child processes


async def test_a_process_service_is_restarted_when_its_program_exits(run_services: Any) -> None:
    metrics = Metrics()
    spec = ServiceSpec.process(
        "test.exits", _python("raise SystemExit(3)"), backoff_base=0.01, backoff_max=0.02
    )
    services = await run_services(spec, metrics=metrics)
    await eventually(lambda: services.health()["test.exits"].restarts >= 3, "three restarts")
    assert services.health()["test.exits"].status in {"restarting", "crash_loop", "running"}


async def test_children_are_started_and_stopped_at_runtime(run_services: Any) -> None:
    contexts: list[ServiceContext] = []

    async def host(context: ServiceContext) -> None:
        contexts.append(context)
        await asyncio.Event().wait()

    metrics = Metrics()
    await run_services(ServiceSpec("test.streams", host, stop_timeout=5), metrics=metrics)
    await eventually(lambda: bool(contexts), "the service runs")
    processes = contexts[0].processes

    first = await processes.start("stream-1", ("sleep", "3600"))
    second = await processes.start("stream-2", ("sleep", "3600"))
    with pytest.raises(ServiceError, match="already has a child 'stream-1'"):
        await processes.start("stream-1", ("sleep", "3600"))
    assert set(processes.children) == {"stream-1", "stream-2"}
    assert _sample(metrics, "pentad_service_children", service="test.streams") == 2
    first_pid = first.pid
    assert first_pid is not None

    assert await processes.stop("stream-1") == -15
    assert not alive(first_pid)
    assert set(processes.children) == {"stream-2"}
    assert second.pid is not None
    assert alive(second.pid)
    assert await processes.stop("no-such-stream") is None

    with pytest.raises(FileNotFoundError):
        await processes.start("broken", ("/nonexistent/ffmpeg",))
    assert set(processes.children) == {"stream-2"}


async def test_a_child_without_restart_ends_with_its_exit_status(run_services: Any) -> None:
    contexts: list[ServiceContext] = []

    async def host(context: ServiceContext) -> None:
        contexts.append(context)
        await asyncio.Event().wait()

    await run_services(ServiceSpec("test.host", host))
    await eventually(lambda: bool(contexts), "the service runs")
    child = await contexts[0].processes.start("once", _python("raise SystemExit(7)"))
    assert await child.wait() == 7
    assert contexts[0].processes.get("once") is None


async def test_a_child_with_restart_comes_back_until_stopped(run_services: Any) -> None:
    contexts: list[ServiceContext] = []

    async def host(context: ServiceContext) -> None:
        contexts.append(context)
        await asyncio.Event().wait()

    metrics = Metrics()
    spec = ServiceSpec("test.host", host, backoff_base=0.01, backoff_max=0.02)
    await run_services(spec, metrics=metrics)
    await eventually(lambda: bool(contexts), "the service runs")
    child = await contexts[0].processes.start("relay", _python("raise SystemExit(1)"), restart=True)
    await eventually(lambda: child.restarts >= 2, "two restarts of the child")
    restarts = _sample(metrics, "pentad_service_restarts_total", service="test.host")
    assert restarts is not None
    assert restarts >= 2
    await contexts[0].processes.stop("relay")
    assert contexts[0].processes.get("relay") is None


# -------------------------------------------------------------- output, env


async def test_child_output_is_logged_with_the_service_name_and_bounded(run_services: Any) -> None:
    code = (
        "import sys\n"
        "print('hello from the child', flush=True)\n"
        "print('x' * 100000, flush=True)\n"
        "print('after the long line', file=sys.stderr, flush=True)\n"
        "for n in range(5000): print(f'line {n}')\n"
    )
    with structlog.testing.capture_logs() as logs:
        services = await run_services(ServiceSpec.process("test.chatty", _python(code), backoff_base=30))
        await eventually(lambda: services.health()["test.chatty"].status == "restarting", "the child exited")
    output = [entry for entry in logs if entry["event"] == "service_output"]
    assert all(entry["service"] == "test.chatty" and entry["child"] == "main" for entry in output)
    stdout = [entry["line"] for entry in output if entry["stream"] == "stdout"]
    assert stdout[:2] == ["hello from the child", "x" * MAX_LINE_CHARS]
    assert [entry["line"] for entry in output if entry["stream"] == "stderr"] == ["after the long line"]
    # 5,003 lines in well under the seconds it would take to log them all.
    assert len(output) < 5003
    dropped = sum(entry["lines"] for entry in logs if entry["event"] == "service_output_dropped")
    assert len(output) + dropped == 5003
    assert dropped >= 5003 - MAX_LINES_PER_SECOND * 100


async def test_children_do_not_see_the_platform_settings(
    run_services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PENTAD_AUTH__SECRET_KEY", "do-not-leak")
    code = "import os; print(sorted(k for k in os.environ if k.startswith(('PENTAD_', 'STREAM_'))))"
    with structlog.testing.capture_logs() as logs:
        spec = ServiceSpec.process("test.env", _python(code), env={"STREAM_KEY": "abc"}, backoff_base=30)
        services = await run_services(spec)
        await eventually(lambda: services.health()["test.env"].status == "restarting", "the child exited")
    lines = [entry["line"] for entry in logs if entry["event"] == "service_output"]
    assert lines == ["['STREAM_KEY']"]


# ---------------------------------------------------------------- placement


async def test_one_process_per_node_runs_the_services_the_others_stand_by(tmp_path: Path) -> None:
    runs: list[int] = []

    async def singleton(_context: ServiceContext) -> None:
        runs.append(1)
        await asyncio.Event().wait()

    spec = ServiceSpec("test.singleton", singleton, critical=True)
    first, second = _services(tmp_path, [spec]), _services(tmp_path, [spec])
    try:
        await first.start(("serve",))
        await second.start(("serve",))
        await eventually(lambda: len(runs) == 1, "the holder runs it")
        # The standby reports the holder's state from the status file.
        assert second.health()["test.singleton"].status == "running"
        assert Services.ready(second.health())
        await first.stop()
        await eventually(lambda: len(runs) == 2, "the standby takes over")
        assert second.health()["test.singleton"].status == "running"
    finally:
        await first.stop()
        await second.stop()


def test_service_names_and_options_are_checked() -> None:
    async def run(_context: ServiceContext) -> None:
        return None

    with pytest.raises(ValueError, match=r"must be `<app>\.<service>`"):
        ServiceSpec("NoApp", run)
    with pytest.raises(ValueError, match="placement"):
        ServiceSpec("test.x", run, placement="everywhere")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be > 0"):
        ServiceSpec("test.x", run, backoff_base=0)


def test_two_services_with_one_name_are_refused(tmp_path: Path) -> None:
    async def run(_context: ServiceContext) -> None:
        return None

    with pytest.raises(ServiceError, match=r"two services are named 'test\.twice'"):
        _services(tmp_path, [ServiceSpec("test.twice", run), ServiceSpec("test.twice", run)])


async def test_only_services_of_their_own_run_alone(tmp_path: Path) -> None:
    async def run(_context: ServiceContext) -> None:
        await asyncio.Event().wait()

    services = _services(
        tmp_path, [ServiceSpec("test.web", run), ServiceSpec("test.alone", run, placement="own")]
    )
    with pytest.raises(ServiceError, match="runs inside `pentad serve`"):
        await services.start_own("test.web")
    with pytest.raises(
        ServiceError, match=r"no service named 'test.nope' \(services of their own: test.alone\)"
    ):
        await services.start_own("test.nope")
    await services.start_own("test.alone")
    assert services.health()["test.alone"].status == "running"
    await services.stop()


# ------------------------------------------------------------ /readyz, metrics


async def _never_up(_context: ServiceContext) -> None:
    raise RuntimeError("cannot bind")


async def _up(_context: ServiceContext) -> None:
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def _serving(
    tmp_path: Path, database_url: str, database: Database, *specs: ServiceSpec
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """An app with these services, started as `pentad serve`'s lifespan starts them."""
    app_spec = AppSpec(name="test", title="Test", services=specs)
    app = create_app(make_settings(tmp_path, database_url), database=database, apps=[app_spec])
    platform: Platform = app.state.platform
    await platform.services.start(("serve",))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, platform
    finally:
        await platform.services.stop()


async def test_readyz_reports_a_crash_loop_of_a_non_critical_service(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    specs = (
        ServiceSpec("test.up", _up),
        ServiceSpec("test.down", _never_up, backoff_base=0.01, backoff_max=0.02),
    )
    async with _serving(tmp_path, database_url, database, *specs) as (client, platform):
        services = platform.services
        await eventually(lambda: services.health()["test.down"].status == "crash_loop", "a crash loop")
        response = await client.get("/readyz")
        assert response.status_code == 200
        body = response.json()
        assert body["checks"] == {"database": "ok", "services": "ok"}
        assert body["services"]["test.up"] == {"status": "running", "critical": False, "restarts": 0}
        assert body["services"]["test.down"]["status"] == "crash_loop"
        assert body["services"]["test.down"]["restarts"] >= 2


async def test_readyz_fails_while_a_critical_service_is_down(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    specs = (ServiceSpec("test.vital", _never_up, critical=True, backoff_base=0.01, backoff_max=0.02),)
    async with _serving(tmp_path, database_url, database, *specs) as (client, platform):
        services = platform.services
        await eventually(lambda: services.health()["test.vital"].status == "crash_loop", "a crash loop")
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "not_ready"
        assert body["checks"] == {"database": "ok", "services": "failed"}
        assert body["services"]["test.vital"]["critical"] is True
        assert "cannot bind" not in response.text


class RelaySettings(BaseModel):
    relay: bool = False


def _relay_on(context: AppContext) -> bool:
    return context.app_settings(RelaySettings).relay


async def test_a_disabled_critical_service_never_starts_nor_fails_readyz(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    started: list[str] = []

    async def relay(context: ServiceContext) -> None:
        started.append(context.name)
        raise RuntimeError("a relay that should not run")

    specs = (
        ServiceSpec("test.relay", relay, critical=True, enabled=_relay_on),
        ServiceSpec("test.own_relay", relay, placement="own", enabled=_relay_on),
        ServiceSpec("test.up", _up, critical=True, enabled=lambda context: not _relay_on(context)),
    )
    app_spec = AppSpec(name="test", title="Test", services=specs, settings=RelaySettings)
    app = create_app(make_settings(tmp_path, database_url), database=database, apps=[app_spec])
    platform: Platform = app.state.platform
    await platform.services.start(("serve",))
    try:
        with pytest.raises(ServiceError, match="disabled"):
            await platform.services.start_own("test.own_relay")
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/readyz")
    finally:
        await platform.services.stop()
    assert response.status_code == 200
    assert response.json()["services"] == {
        "test.relay": {"status": "disabled", "critical": False, "restarts": 0},
        "test.up": {"status": "running", "critical": True, "restarts": 0},
    }
    assert started == []


async def test_readyz_is_ready_while_a_critical_service_runs(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    spec = ServiceSpec("test.vital", _up, critical=True)
    async with _serving(tmp_path, database_url, database, spec) as (client, _platform):
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["services"] == {
            "test.vital": {"status": "running", "critical": True, "restarts": 0}
        }


async def test_metrics_show_each_service_up_or_down(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    specs = (
        ServiceSpec("test.up", _up),
        ServiceSpec("test.down", _never_up, backoff_base=0.01, backoff_max=0.02),
    )
    async with _serving(tmp_path, database_url, database, *specs) as (client, platform):
        services = platform.services
        await eventually(lambda: services.health()["test.down"].restarts >= 2, "restarts")
        token = await issue_service_token(platform, scopes=[METRICS_READ.key])
        response = await client.get("/metrics", headers=bearer(token))
        assert response.status_code == 200
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }
        assert samples[("pentad_service_up", (("service", "test.up"),))] == 1
        assert samples[("pentad_service_restarts_total", (("service", "test.down"),))] >= 2
        assert ("pentad_service_restarts_total", (("service", "test.up"),)) not in samples or samples[
            ("pentad_service_restarts_total", (("service", "test.up"),))
        ] == 0


@pytest.mark.parametrize(
    ("in_process_worker", "expected"), [(True, {"test.web", "test.jobs"}), (False, {"test.web"})]
)
async def test_pentad_serve_runs_worker_services_only_with_its_job_worker(
    tmp_path: Path, database_url: str, database: Database, in_process_worker: bool, expected: set[str]
) -> None:
    started: set[str] = set()

    async def note(context: ServiceContext) -> None:
        started.add(context.name)
        await asyncio.Event().wait()

    specs = (
        ServiceSpec("test.web", note),
        ServiceSpec("test.jobs", note, placement="worker"),
        ServiceSpec("test.alone", note, placement="own"),
    )
    settings = make_settings(tmp_path, database_url, jobs={"in_process_worker": in_process_worker})
    app = create_app(settings, database=database, apps=[AppSpec(name="test", title="Test", services=specs)])
    async with app.router.lifespan_context(app):
        await eventually(lambda: started == expected, f"{expected} started")
        assert set(app.state.platform.services.health()) == expected
    assert app.state.platform.services.health() == {}
