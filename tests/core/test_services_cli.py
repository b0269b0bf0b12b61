"""App services in real `pentad serve` and `pentad run-service` processes (the test app in services_app.py):
/readyz over HTTP, and no child process left behind when the parent is stopped or SIGKILLed.

Each test starts the `pentad` command (seconds of imports on a busy machine), so there are few of them:
SIGKILL under `pentad serve` (uvloop) and `pentad run-service` (asyncio's loop), SIGTERM under
`pentad worker`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pentad import apps
from pentad.cli import main
from tests.core.services_app import child_pid_file
from tests.core.test_services import alive
from tests.factories import free_port
from tests.servers import HOST, log_tail, running

REPO = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 60.0


def _env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env.update(
        {
            "PENTAD_DATA_DIR": str(data_dir),
            "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
            "PENTAD_APPS": "svctest",
            "PENTAD_ADMIN__PASSWORD": "a-long-enough-password",
            "PENTAD_LOG__LEVEL": "INFO",
        }
    )
    return env


def _pentad(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.core.services_app", *args]


def _poll(check: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}\n{log_tail(log)}")
        time.sleep(0.1)


def _child_pids(data_dir: Path, service: str) -> list[int]:
    pid_file = child_pid_file(data_dir, service)
    return [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []


def _child_pid(data_dir: Path, service: str, log: Path) -> int:
    _poll(lambda: bool(_child_pids(data_dir, service)), f"{service} started its child", log)
    pid = _child_pids(data_dir, service)[0]
    assert alive(pid)
    return pid


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with a migrated database, made once: every `pentad` start costs seconds of imports."""
    folder = tmp_path_factory.mktemp("migrated")
    subprocess.run(
        _pentad("migrate"), env=_env(folder), cwd=REPO, check=True, capture_output=True, timeout=300
    )
    return folder


@pytest.fixture
def migrated(migrated_template: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(migrated_template, data_dir)
    return data_dir


def test_a_sigkilled_pentad_serve_leaves_no_child_behind(migrated: Path, tmp_path: Path) -> None:
    env, log = _env(migrated), tmp_path / "serve.log"
    port = free_port()
    command = _pentad("serve", "--host", HOST, "--port", str(port), "--workers", "1")
    base_url = f"http://{HOST}:{port}"
    with running(command, f"{base_url}/healthz", log, env=env, cwd=REPO) as server:
        child = _child_pid(migrated, "svctest.spawner", log)

        def crash_loop_reported() -> bool:
            services = httpx.get(f"{base_url}/readyz", timeout=5).json().get("services", {})
            return services.get("svctest.flaky", {}).get("status") == "crash_loop"

        _poll(crash_loop_reported, "/readyz reports the crash loop", log)
        ready = httpx.get(f"{base_url}/readyz", timeout=5)
        assert ready.status_code == 200
        body = ready.json()
        assert body["checks"]["services"] == "ok"
        assert body["services"]["svctest.spawner"] == {"status": "running", "critical": True, "restarts": 0}
        assert "svctest.own" not in body["services"]
        assert _child_pids(migrated, "svctest.spawner") == [child]

        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        try:
            _poll(lambda: not alive(child), "the child died with its parent", log)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)


def test_pentad_worker_runs_its_services_and_stops_their_children_on_sigterm(
    migrated: Path, tmp_path: Path
) -> None:
    env, log = _env(migrated), tmp_path / "worker.log"
    process = _start(_pentad("worker"), env, log)
    try:
        child = _child_pid(migrated, "svctest.beside_jobs", log)
        assert not child_pid_file(migrated, "svctest.spawner").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_SECONDS) == 0
        _poll(lambda: not alive(child), "the child was stopped", log)
        assert "service_child_exited" in log.read_text()
    finally:
        process.kill()
        process.wait()


def test_a_sigkilled_run_service_leaves_no_child_behind(tmp_path: Path) -> None:
    env, log = _env(tmp_path), tmp_path / "own.log"
    process = _start(_pentad("run-service", "svctest.own"), env, log)
    try:
        child = _child_pid(tmp_path, "svctest.own", log)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        try:
            _poll(lambda: not alive(child), "the child died with its parent", log)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def test_run_service_refuses_a_service_that_runs_inside_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(apps.INSTALLED, "svctest", apps.InstalledApp("tests.core.services_app:APP"))
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["run-service", "svctest.spawner"])
    assert result.exit_code == 1
    assert "service 'svctest.spawner' runs inside `pentad serve`, not on its own" in result.output
