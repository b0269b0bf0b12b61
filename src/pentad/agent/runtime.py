"""The agent's runtime: every game server of this host, each run by its own shim (pentad.agent.shim) so
that it outlives the agent. The link (pentad.agent.link) drives it and forwards `events()` to the panel.

    runtime = Runtime(settings)
    await runtime.open()                    # attaches to the shims already running (after an agent restart)
    async for event in runtime.events():    # ConsoleBatch | StateChanged | ServerStats, in order per server
        ...
    await runtime.start(spec)               # spec: pentad.panel_wire.serverspec.ServerSpec
    await runtime.send_command("srv1", "say hi")
    await runtime.stop("srv1")              # the template's stop, then SIGTERM after stop_timeout, SIGKILL
    await runtime.close()                   # detaches; the games keep running

Every method raises AgentError (code + message) for a refused call; the link turns it into an error reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pentad.agent.events import RuntimeEvent, ServerStats, ServerStatus
from pentad.agent.settings import AgentSettings
from pentad.panel_wire.serverspec import ServerSpec


class AgentError(Exception):
    """A refused runtime call. `code`: unknown_server, not_running, already_running, busy, crashed,
    install_failed, sandbox_unavailable, bad_request, shim_failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Runtime:
    """All game servers of this agent. One instance per agent process; not thread-safe (one event loop)."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings

    async def open(self) -> None:
        """Create the data folders, check the sandbox (AgentError sandbox_unavailable when bwrap cannot run
        and sandbox=none is not allowed), pick the limits backend, and re-attach to every live shim under
        <data>/run/ (console resumes after the last line seen; a shim whose game exited while the agent was
        away reports that exit, read from its state.json, as a StateChanged)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Detach from every shim and stop background tasks. Game servers keep running."""
        raise NotImplementedError

    def facts(self) -> dict[str, Any]:
        """This host for the panel's `hello`: cores, memory_bytes, disk_bytes (data folder's file system),
        kernel, sandbox ("bwrap 0.8.0" or "none"), limits_backend ("cgroup2" | "rlimits"), agent_version."""
        raise NotImplementedError

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """The stream of ConsoleBatch, StateChanged and ServerStats (1 per stats_interval per running
        server). One consumer (the link); events queue while nobody reads."""
        raise NotImplementedError

    def status(self, server_id: str) -> ServerStatus:
        """The server's state now (OFFLINE for a server this agent does not know)."""
        raise NotImplementedError

    def servers(self) -> list[ServerStatus]:
        """Every server this agent knows (has a spec or a shim for), for `hello` / reconcile."""
        raise NotImplementedError

    async def configure(self, spec: ServerSpec) -> None:
        """Store the server's spec (kept in <data>/run/<id>/spec.json, so crash restarts work after an agent
        restart) and create its folder. Does not start or restart anything."""
        raise NotImplementedError

    async def install(self, spec: ServerSpec) -> int:
        """Configure, then run the spec's install script (bash) in the sandbox with the server folder at
        /mnt/server; its output streams as ConsoleBatch(source="install"). Returns the exit code; the state
        goes INSTALLING -> OFFLINE. AgentError busy when the server runs."""
        raise NotImplementedError

    async def start(self, spec: ServerSpec | str) -> ServerStatus:
        """Configure (when given a spec), rewrite the config files, and start the game in the sandbox under
        a new shim. State STARTING, then RUNNING at the first console line matching `spec.done` (at once
        without patterns). A server id alone starts with the stored spec. AgentError already_running."""
        raise NotImplementedError

    async def stop(self, server_id: str, *, timeout: float | None = None) -> ServerStatus:
        """Send the stop command (or signal) of the spec; after `timeout` (spec.stop_timeout, else
        settings.stop_timeout) SIGTERM, after kill_timeout more SIGKILL; each step is a console line.
        Returns once the game exited (state OFFLINE, reason "stop"). Stopping a stopped server is a no-op."""
        raise NotImplementedError

    async def restart(self, spec: ServerSpec | str) -> ServerStatus:
        """stop, then start."""
        raise NotImplementedError

    async def kill(self, server_id: str) -> ServerStatus:
        """SIGKILL to the whole sandbox (its PID namespace). Allowed in every state; returns once exited."""
        raise NotImplementedError

    async def send_command(self, server_id: str, line: str) -> None:
        """One console line to the game: its stdin, or its econ port (spec.console_input). AgentError
        not_running, bad_request (newline or NUL in the line, longer than 4096 bytes)."""
        raise NotImplementedError

    async def console_history(self, server_id: str, lines: int = 100) -> list[str]:
        """The last `lines` console lines kept by the server's shim ([] when none runs)."""
        raise NotImplementedError

    async def stats(self, server_id: str) -> ServerStats:
        """One stats sample now (AgentError not_running when no game runs)."""
        raise NotImplementedError

    async def delete(self, server_id: str) -> None:
        """Kill the server if it runs and remove its folder and run state."""
        raise NotImplementedError

    def server_dir(self, server_id: str) -> str:
        """The server's folder on the host (<data>/servers/<id>)."""
        raise NotImplementedError
