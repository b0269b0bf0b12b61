"""Real `pentad serve` processes for end-to-end tests: started on loopback, awaited, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.databases import REQUIRE_SERVICES
from tests.factories import free_port

VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 60.0


def log_tail(log_path: Path, lines: int = 20, width: int = 1200) -> str:
    """The last lines of the server log, each cut in the middle: a JSON traceback ends with its cause."""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(
        line if len(line) <= width else f"{line[:300]} … {line[-(width - 300) :]}" for line in tail
    )


async def wait_until_ready(
    url: str,
    process: asyncio.subprocess.Process,
    log_path: Path,
    *,
    name: str,
    within: float = STARTUP_TIMEOUT_SECONDS,
) -> str | None:
    """Poll `url` until it answers 2xx (None), or say why not: `process` exited, or did not come up within
    `within` seconds (with the tail of its log). The asynchronous twin of `running()`'s wait."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.returncode is not None:
                return f"{name} exited with {process.returncode}:\n{log_tail(log_path)}"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).is_success:
                    return None
            if time.monotonic() > deadline:
                return f"{name} did not come up:\n{log_tail(log_path)}"
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def running(
    command: list[str],
    ready_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_status: bool = True,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process until the block ends, whatever happens in it, once `ready_url` answers
    (with a 2xx unless `ready_status` is False: then any HTTP answer will do)."""
    name = Path(command[0]).name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{log_tail(log_path)}")
            try:
                response = httpx.get(ready_url, timeout=2)
                if ready_status:
                    response.raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not come up:\n{log_tail(log_path)}")
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def serving(env: dict[str, str], cwd: Path, port: int, log_path: Path) -> Iterator[str]:
    """`pentad serve` on a loopback port until the block ends, whatever happens in it. Its RTMP ingest
    (streams) gets a free port of its own unless `env` names one: two servers never fight over 1935."""
    if "PENTAD_STREAMS__RTMP_PORT" not in env:
        env = {**env, "PENTAD_STREAMS__RTMP_PORT": str(free_port())}
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    base_url = f"http://{HOST}:{port}"
    with running(command, f"{base_url}/healthz", log_path, env=env, cwd=cwd):
        yield base_url


# ------------------------------------------------------------------ ClickHouse (Debian's clickhouse-server)

CLICKHOUSE_BINARY = os.environ.get("PENTAD_TEST_CLICKHOUSE_SERVER", "/usr/sbin/clickhouse-server")
CLICKHOUSE_USER = "pentad"
CLICKHOUSE_PASSWORD = "pentad-test-password"
_CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><console>1</console></logger>
    <listen_host>{host}</listen_host>
    <tcp_port>{native_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>20</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
</yandex>
"""
_CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
    <users>
        <{user}>
            <password>{password}</password>
            <networks><ip>{host}</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{user}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"""


@dataclass(frozen=True)
class ClickHouseServer:
    host: str
    native_port: int
    http_port: int
    user: str
    password: str

    @property
    def url(self) -> str:
        """For PENTAD_ANALYTICS__CLICKHOUSE__URL."""
        return f"clickhouse://{self.host}:{self.native_port}"


@contextlib.contextmanager
def clickhouse_running(root: Path) -> Iterator[ClickHouseServer]:
    """A ClickHouse server of its own (config, data and log under `root`, free loopback ports, one user
    with a password) until the block ends; skips when the binary is missing (fails under
    PENTAD_TEST_REQUIRE_SERVICES=1: CI installs Debian's clickhouse-server)."""
    binary = shutil.which(CLICKHOUSE_BINARY) or shutil.which("clickhouse-server")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("clickhouse-server is required (PENTAD_TEST_REQUIRE_SERVICES=1) but not installed")
        pytest.skip("clickhouse-server is not installed (apt-get install clickhouse-server)")
    server = ClickHouseServer(HOST, free_port(), free_port(), CLICKHOUSE_USER, CLICKHOUSE_PASSWORD)
    root.mkdir(parents=True, exist_ok=True)
    values = {**server.__dict__, "root": root}
    (root / "config.xml").write_text(_CLICKHOUSE_CONFIG.format(**values))
    (root / "users.xml").write_text(_CLICKHOUSE_USERS.format(**values))
    command = [binary, f"--config-file={root / 'config.xml'}"]
    with running(command, f"http://{HOST}:{server.http_port}/ping", root / "server.log", cwd=root) as process:
        try:
            yield server
        finally:
            process.kill()  # its data is thrown away: no need to wait for a clean shutdown


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """One ClickHouse server for the whole run (import this fixture into a conftest.py)."""
    with clickhouse_running(tmp_path_factory.mktemp("clickhouse")) as server:
        yield server
