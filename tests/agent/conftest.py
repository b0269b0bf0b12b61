"""Agent tests: a real Runtime on a temporary data folder, real shims, real bubblewrap. No database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pentad.agent.events import ConsoleBatch, RuntimeEvent, StateChanged
from pentad.agent.runtime import Runtime
from pentad.agent.settings import AgentSettings
from pentad.agent.shim import pid_alive, read_state
from tests.databases import REQUIRE_SERVICES

WAIT = 30.0  # seconds before a wait fails the test (a hang, never a speed check)


def bwrap_works() -> str | None:
    """None when bwrap runs here, else why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else f"bwrap cannot run here: {probe.stderr.decode().strip()}"


def require_bwrap() -> None:
    reason = bwrap_works()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (PENTAD_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(reason)


def nft_reason() -> str | None:
    """None when nft can change the ruleset here, else why not."""
    if shutil.which("nft") is None:
        return "nft is not installed (apt-get install nftables)"
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, check=False)
    return None if probe.returncode == 0 else f"nft is not permitted here: {probe.stderr.decode().strip()}"


def require_nft() -> None:
    reason = nft_reason()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (PENTAD_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(reason)


def require_binary(path: str, package: str) -> None:
    if not os.access(path, os.X_OK):
        if REQUIRE_SERVICES:
            pytest.fail(f"{path} is required (apt-get install {package})")
        pytest.skip(f"{path} missing (apt-get install {package})")


def agent_settings(data_dir: Path, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "stop_timeout": 5.0,
        "kill_timeout": 5.0,
        "crash_restart_delay": 0.0,
        "stats_interval": 0.2,
        "cgroup_root": data_dir / "no-cgroup",
        "nft_table": "pentad_agent_test",  # never the host's own agent table
        **overrides,
    }
    return AgentSettings(**values)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until it is true (fails after WAIT seconds): for what has no event to wait on."""
    async with asyncio.timeout(WAIT):
        while not await check():  # noqa: ASYNC110 (a process's end or a file's content: no event)
            await asyncio.sleep(0.05)


class Events:
    """Collects a Runtime's events; `wait_for` returns the first (new) one matching."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.seen: list[RuntimeEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.runtime.events():
            self.seen.append(event)
            self._changed.set()

    async def wait_for(self, match: Callable[[RuntimeEvent], bool], start: int = 0) -> RuntimeEvent:
        async def scan() -> RuntimeEvent:
            index = start
            while True:
                while index < len(self.seen):
                    if match(self.seen[index]):
                        return self.seen[index]
                    index += 1
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), WAIT)

    async def wait_state(self, server_id: str, state: str, start: int = 0) -> StateChanged:
        event = await self.wait_for(
            lambda e: isinstance(e, StateChanged) and e.server_id == server_id and e.state == state, start
        )
        assert isinstance(event, StateChanged)
        return event

    async def wait_line(self, server_id: str, text: str, start: int = 0) -> ConsoleBatch:
        event = await self.wait_for(
            lambda e: (
                isinstance(e, ConsoleBatch)
                and e.server_id == server_id
                and any(text in line for line in e.lines)
            ),
            start,
        )
        assert isinstance(event, ConsoleBatch)
        return event

    def lines(self, server_id: str) -> list[str]:
        return [
            line
            for e in self.seen
            if isinstance(e, ConsoleBatch) and e.server_id == server_id
            for line in e.lines
        ]

    def states(self, server_id: str) -> list[tuple[str, str]]:
        return [
            (e.state.value, e.reason)
            for e in self.seen
            if isinstance(e, StateChanged) and e.server_id == server_id
        ]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A folder for agent data outside pytest's (0700) temporary folders: game uids must pass through
    every folder above their server folder, as on a host (/var/lib/pentad-agent)."""
    root = Path(tempfile.mkdtemp(prefix="pentad-agent-test-", dir="/tmp"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        # A failed test may leave shims behind (they outlive everything by design): end them by pid.
        for state_file in root.glob("*/run/*/state.json"):
            state = read_state(state_file.parent) or {}
            for key in ("game_pid", "shim_pid"):
                pid = state.get(key)
                if state.get("running") and isinstance(pid, int) and pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def opened(data_root: Path) -> AsyncIterator[tuple[Runtime, Events]]:
    """A bwrap-sandboxed Runtime on a fresh data folder, under the umask `pentad` sets (077); every
    server it started is killed afterwards."""
    require_bwrap()
    umask = os.umask(0o077)
    runtime = Runtime(agent_settings(data_root / "agent"))
    await runtime.open()
    events = Events(runtime)
    try:
        yield runtime, events
    finally:
        os.umask(umask)
        for status in runtime.servers():
            await runtime.kill(status.server_id)
        await events.close()
        await runtime.close()
