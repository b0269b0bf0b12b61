"""A runtime without game processes, for the link's tests: it keeps states in a dict, records the calls it
gets and emits the events a real Runtime would (state changes, console batches), so the link and the
panel can be tested on every database without bubblewrap or games. The real Runtime is tested in
tests/agent/ and driven end to end in tests/apps/panel/test_games.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pentad.agent.events import (
    ConsoleBatch,
    RuntimeEvent,
    ServerState,
    ServerStats,
    ServerStatus,
    StateChanged,
)
from pentad.agent.runtime import AgentError
from pentad.panel_wire.serverspec import ServerSpec


class FakeRuntime:
    def __init__(self) -> None:
        self.states: dict[str, ServerState] = {}
        self.specs: dict[str, ServerSpec] = {}
        self.calls: list[tuple[str, str]] = []
        self.commands: list[tuple[str, str]] = []
        self.history: dict[str, list[str]] = {}
        self.queue: asyncio.Queue[RuntimeEvent] = asyncio.Queue()
        self.install_exit = 0
        """The exit status installs end with (not 0: the state change says install_failed)."""
        self.gate: asyncio.Event | None = None
        """When set (and not yet open), start and stop wait for it: a power action stays in flight."""

    # -- what the link reads
    def facts(self) -> dict[str, Any]:
        return {
            "cores": 2,
            "memory_mb": 4096,
            "kernel": "test",
            "sandbox": "none",
            "limits_backend": "rlimits",
        }

    def status(self, server_id: str) -> ServerStatus:
        return ServerStatus(server_id, self.states.get(server_id, ServerState.OFFLINE), game_pid=None)

    def servers(self) -> list[ServerStatus]:
        return [self.status(server_id) for server_id in self.states]

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        while True:
            yield await self.queue.get()

    # -- helpers for tests
    def change(self, server_id: str, state: ServerState, reason: str, **extra: Any) -> None:
        previous = self.states.get(server_id, ServerState.OFFLINE)
        self.states[server_id] = state
        self.queue.put_nowait(StateChanged(server_id, state, previous, reason, **extra))

    def print(self, server_id: str, *lines: str, dropped: int = 0) -> None:
        self.history.setdefault(server_id, []).extend(lines)
        self.queue.put_nowait(ConsoleBatch(server_id, tuple(lines), dropped=dropped))

    def report_stats(self, server_id: str) -> None:
        self.queue.put_nowait(
            ServerStats(
                server_id, self.states.get(server_id, ServerState.OFFLINE), 12.5, 1 << 20, None, 4096, 3.0
            )
        )

    async def _wait(self) -> None:
        if self.gate is not None:
            await self.gate.wait()

    # -- calls
    async def install(self, spec: ServerSpec) -> int:
        self.calls.append(("install", spec.server_id))
        self.specs[spec.server_id] = spec
        self.change(spec.server_id, ServerState.INSTALLING, "install")
        self.print(spec.server_id, "installing…")
        reason = "install" if self.install_exit == 0 else "install_failed"
        self.change(spec.server_id, ServerState.OFFLINE, reason, exit_code=self.install_exit)
        return self.install_exit

    async def start(self, spec: ServerSpec | str) -> ServerStatus:
        server_id = spec if isinstance(spec, str) else spec.server_id
        self.calls.append(("start", server_id))
        if isinstance(spec, ServerSpec):
            self.specs[server_id] = spec
        if self.states.get(server_id) in (ServerState.RUNNING, ServerState.STARTING):
            raise AgentError("already_running", "the server runs already")
        await self._wait()
        self.change(server_id, ServerState.STARTING, "start")
        status = self.status(server_id)
        self.print(server_id, "server ready")
        self.change(server_id, ServerState.RUNNING, "done_line")
        return status

    async def stop(self, server_id: str, *, timeout: float | None = None) -> ServerStatus:  # noqa: ASYNC109
        self.calls.append(("stop", server_id))
        await self._wait()
        self.change(server_id, ServerState.STOPPING, "stop")
        self.change(server_id, ServerState.OFFLINE, "stop", exit_code=0)
        return self.status(server_id)

    async def restart(self, spec: ServerSpec | str) -> ServerStatus:
        server_id = spec if isinstance(spec, str) else spec.server_id
        await self.stop(server_id)
        return await self.start(spec)

    async def delete(self, server_id: str) -> None:
        self.calls.append(("delete", server_id))
        self.states.pop(server_id, None)

    async def kill(self, server_id: str) -> ServerStatus:
        self.calls.append(("kill", server_id))
        self.change(server_id, ServerState.OFFLINE, "kill", signal=9)
        return self.status(server_id)

    async def send_command(self, server_id: str, line: str) -> None:
        if self.states.get(server_id) not in (ServerState.RUNNING, ServerState.STARTING):
            raise AgentError("not_running", "the server is not running")
        self.commands.append((server_id, line))
        self.print(server_id, f"> {line}")

    async def console_history(self, server_id: str, lines: int = 100) -> list[str]:
        return self.history.get(server_id, [])[-lines:]
