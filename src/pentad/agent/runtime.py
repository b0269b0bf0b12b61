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

Folders: <data>/servers/<id>/ is the game's folder (its uid owns it); <data>/run/<id>/ (0700, the agent's)
holds spec.json, the shim's launch.json, state.json, shim.sock and console.log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pentad.agent import query, sandbox, shimclient
from pentad.agent.console import ConsoleBatcher
from pentad.agent.events import (
    ConsoleBatch,
    RuntimeEvent,
    ServerState,
    ServerStats,
    ServerStatus,
    StateChanged,
)
from pentad.agent.limits import Limits
from pentad.agent.netcount import NetCounters, Traffic
from pentad.agent.settings import AgentSettings
from pentad.agent.shim import pid_alive, read_state, write_json
from pentad.agent.shimclient import ShimClient, ShimError
from pentad.agent.stats import StatsCollector, host_facts
from pentad.panel_wire import configfiles, paths
from pentad.panel_wire.serverspec import SERVER_ID, ServerSpec

log = logging.getLogger("pentad.agent.runtime")

AGENT_VERSION = "0.1.0"
COMMAND_MAX_BYTES = 4096
EVENTS_MAX = 20_000
RUNNING_STATES = (ServerState.STARTING, ServerState.RUNNING, ServerState.STOPPING)


class AgentError(Exception):
    """A refused runtime call. `code`: unknown_server, not_running, already_running, busy, crashed,
    install_failed, sandbox_unavailable, bad_request, shim_failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Server:
    server_id: str
    spec: ServerSpec | None = None
    state: ServerState = ServerState.OFFLINE
    client: ShimClient | None = None
    reader: asyncio.Task[None] | None = None
    shim_pid: int | None = None
    game_pid: int | None = None
    started_at: float | None = None
    last_seq: int = 0
    exit_code: int | None = None
    exit_signal: int | None = None
    expected_exit: str | None = None  # "stop" | "kill" | "restart": an exit we asked for
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    crashes: deque[float] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: list[re.Pattern[str]] = field(default_factory=list)
    restart_task: asyncio.Task[None] | None = None


class Runtime:
    """All game servers of this agent. One instance per agent process; not thread-safe (one event loop)."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._servers: dict[str, _Server] = {}
        self._events: deque[RuntimeEvent] = deque()
        self._wakeup = asyncio.Event()
        self.events_dropped = 0  # console batches and stats dropped while nobody read events()
        self._tasks: list[asyncio.Task[None]] = []
        self._stats = StatsCollector()
        self.net = (
            NetCounters(settings.nft_path, settings.nft_table)
            if settings.net_counters == "nft"
            else NetCounters.off("network counters are off (PENTAD_AGENT__NET_COUNTERS=off)")
        )
        self.batcher = ConsoleBatcher(
            self._emit,
            batch_ms=settings.console_batch_ms,
            batch_lines=settings.console_batch_lines,
            lines_per_second=settings.console_lines_per_second,
            burst=settings.console_burst_lines,
        )
        self.sandbox_version: str | None = None
        self.limits: Limits | None = None
        self._opened = False

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the data folders, check the sandbox (AgentError sandbox_unavailable when bwrap cannot run
        and sandbox=none is not allowed), pick the limits backend, and re-attach to every live shim under
        <data>/run/ (console resumes after the last line seen; a shim whose game exited while the agent was
        away reports that exit, read from its state.json, as a StateChanged)."""
        settings = self.settings
        for folder in (settings.data_dir, settings.servers_dir, settings.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        settings.data_dir.chmod(0o711)  # games' uids pass through to their own folder only
        settings.run_dir.chmod(0o700)
        settings.servers_dir.chmod(0o711)
        if settings.sandbox == "bwrap":
            try:
                self.sandbox_version = await asyncio.to_thread(sandbox.check_bwrap, settings)
            except sandbox.SandboxUnavailable as exc:
                raise AgentError("sandbox_unavailable", str(exc)) from None
            blocked = sandbox.check_traversable(settings.data_dir.parent)
            if blocked is not None and sandbox.drops_privileges(settings):
                raise AgentError(
                    "sandbox_unavailable",
                    f"{blocked} is not traversable by other users (o+x): game uids cannot reach their folder",
                )
        elif not settings.allow_unsandboxed:
            raise AgentError("sandbox_unavailable", "sandbox=none needs allow_unsandboxed=true")
        else:
            log.warning("agent_unsandboxed: game servers run WITHOUT a sandbox (PENTAD_AGENT__SANDBOX=none)")
        self.limits = Limits(settings)
        log.info("agent_limits backend=%s reason=%s", self.limits.backend, self.limits.reason)
        if settings.net_counters == "nft":
            await self.net.open()
        for run_dir in sorted(settings.run_dir.iterdir()):
            if run_dir.is_dir() and SERVER_ID.match(run_dir.name):
                await self._recover(run_dir.name)
        self._tasks.append(asyncio.create_task(self.batcher.run()))
        self._tasks.append(asyncio.create_task(self._stats_loop()))
        self._opened = True

    async def close(self) -> None:
        """Detach from every shim and stop background tasks. Game servers keep running."""
        for task in self._tasks:
            task.cancel()
        for server in self._servers.values():
            if server.restart_task is not None:
                server.restart_task.cancel()
            reader, server.reader = server.reader, None
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            if server.client is not None:
                await server.client.close()
                server.client = None
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.batcher.flush()
        self._opened = False

    def facts(self) -> dict[str, Any]:
        """This host for the panel's `hello`: cores, memory_bytes, disk_bytes (data folder's file system),
        kernel, sandbox ("bwrap 0.8.0" or "none"), limits_backend ("cgroup2" | "rlimits"), agent_version."""
        return {
            **host_facts(self.settings.data_dir),
            "sandbox": self.sandbox_version or "none",
            "limits_backend": self.limits.backend if self.limits else None,
            "limits_reason": self.limits.reason if self.limits else None,
            "net_counters": "nftables" if self.net.available else None,
            "net_counters_reason": self.net.reason,
            "agent_version": AGENT_VERSION,
        }

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        """The stream of ConsoleBatch, StateChanged and ServerStats (1 per stats_interval per running
        server). One consumer (the link); events queue while nobody reads."""
        while True:
            while self._events:
                yield self._events.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()

    def _emit(self, event: RuntimeEvent) -> None:
        """Queue an event for events(). While nobody reads (no panel link) at most EVENTS_MAX wait: newer
        console batches and stats are dropped beyond that (the shims keep the console; history restores
        it), state changes never."""
        if len(self._events) >= EVENTS_MAX and not isinstance(event, StateChanged):
            self.events_dropped += 1
            if self.events_dropped % 10_000 == 1:
                log.warning(
                    "agent_events_dropped count=%d (nobody reads the runtime's events)", self.events_dropped
                )
            return
        self._events.append(event)
        self._wakeup.set()

    def status(self, server_id: str) -> ServerStatus:
        """The server's state now (OFFLINE for a server this agent does not know)."""
        server = self._servers.get(server_id)
        if server is None:
            return ServerStatus(server_id, ServerState.OFFLINE)
        return ServerStatus(
            server_id,
            server.state,
            pid=server.shim_pid,
            game_pid=server.game_pid,
            started_at=server.started_at,
            exit_code=server.exit_code,
            signal=server.exit_signal,
            crash_count=len(server.crashes),
            attached=server.client is not None and not server.client.closed,
            extra={"last_seq": server.last_seq},
        )

    def servers(self) -> list[ServerStatus]:
        """Every server this agent knows (has a spec or a shim for), for `hello` / reconcile."""
        return [self.status(server_id) for server_id in sorted(self._servers)]

    def server_dir(self, server_id: str) -> str:
        """The server's folder on the host (<data>/servers/<id>)."""
        return str(self._folder(server_id))

    # ------------------------------------------------------------------ configuration

    async def configure(self, spec: ServerSpec) -> None:
        """Store the server's spec (kept in <data>/run/<id>/spec.json, so crash restarts work after an agent
        restart) and create its folder. Does not start or restart anything."""
        server = self._server(spec.server_id, create=True)
        run_dir = self._run_dir(spec.server_id)
        run_dir.mkdir(mode=0o700, exist_ok=True)
        write_json(run_dir / "spec.json", spec.model_dump(mode="json"))
        folder = self._folder(spec.server_id)
        folder.mkdir(mode=0o750, exist_ok=True)
        folder.chmod(0o750)  # whatever the umask (`pentad` runs with 077)
        who = sandbox.identity(self.settings, spec.server_id)
        if who.uid is not None and who.gid is not None:
            os.chown(folder, who.uid, who.gid)
        server.spec = spec
        server.done = [re.compile(pattern) for pattern in spec.done]

    def apply_config_files(self, spec: ServerSpec) -> list[str]:
        """Rewrite the spec's config files inside the server folder (confined: no symlinks, hard links,
        special files or paths outside it). Returns one problem line per file that could not be rewritten;
        those are shown on the console and do not stop the start."""
        problems = []
        folder = self._folder(spec.server_id)
        who = sandbox.identity(self.settings, spec.server_id)
        owner = (who.uid, who.gid) if who.uid is not None and who.gid is not None else None
        for file in spec.config_files:
            try:
                try:
                    text = paths.read_bytes(folder, file.path, limit=8 * 1024 * 1024).decode("utf-8")
                except FileNotFoundError:
                    text = ""
                new = configfiles.render(file, text, spec.env).encode("utf-8")
                paths.write_bytes(folder, file.path, new, owner=owner)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                problems.append(f"config file {file.path}: {exc}")
        return problems

    # ------------------------------------------------------------------ install

    async def install(self, spec: ServerSpec) -> int:
        """Configure, then run the spec's install script (bash) in the sandbox with the server folder at
        /mnt/server; its output streams as ConsoleBatch(source="install"). Returns the exit code; the state
        goes INSTALLING -> OFFLINE. AgentError busy when the server runs."""
        await self.configure(spec)
        server = self._server(spec.server_id)
        if server.state in (*RUNNING_STATES, ServerState.INSTALLING):
            raise AgentError("busy", f"server {spec.server_id} is {server.state.value}")
        if not spec.install_script:
            return 0
        async with server.lock:
            self._set_state(server, ServerState.INSTALLING, "install")
            try:
                code = await self._run_install(spec)
            except BaseException:
                self._set_state(server, ServerState.OFFLINE, "install_failed")
                raise
            self.batcher.flush(spec.server_id)
            self.batcher.add_notice(spec.server_id, f"[pentad] install finished with exit status {code}")
            self._set_state(
                server, ServerState.OFFLINE, "install" if code == 0 else "install_failed", exit_code=code
            )
            return code

    async def _run_install(self, spec: ServerSpec) -> int:
        who = sandbox.identity(self.settings, spec.server_id)
        script = sandbox.files_dir(self.settings, spec.server_id, who) / "install.sh"
        script.write_text(spec.install_script or "", encoding="utf-8")
        script.chmod(0o644)
        command = [spec.install_entrypoint, sandbox.INSTALL_SCRIPT]
        env = sandbox.environment(spec.env, home=sandbox.INSTALL_MOUNT, server_id=spec.server_id)
        if self.settings.sandbox == "bwrap":
            argv = sandbox.bwrap_argv(
                self.settings,
                server_id=spec.server_id,
                server_dir=self._folder(spec.server_id),
                command=command,
                mount_at=sandbox.INSTALL_MOUNT,
                extra_ro=((script, sandbox.INSTALL_SCRIPT),),
                who=who,
            )
            cwd = None
        else:
            argv = [spec.install_entrypoint, str(script)]
            cwd = str(self._folder(spec.server_id))
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
            user=who.uid,
            group=who.gid,
            extra_groups=[] if who.gid is not None else None,
            start_new_session=True,
            limit=1024 * 1024,
        )
        assert process.stdout is not None
        seq = 0

        async def pump() -> None:
            nonlocal seq
            assert process.stdout is not None
            while line := await process.stdout.readline():
                seq += 1
                text = line.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
                self.batcher.feed(spec.server_id, [text], seq, source="install")

        try:
            await asyncio.wait_for(pump(), self.settings.install_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            self.batcher.add_notice(spec.server_id, "[pentad] install script timed out; killed")
        finally:
            with contextlib.suppress(OSError):
                script.unlink()
        return await process.wait()

    # ------------------------------------------------------------------ power

    async def start(self, spec: ServerSpec | str) -> ServerStatus:
        """Configure (when given a spec), rewrite the config files, and start the game in the sandbox under
        a new shim. State STARTING, then RUNNING at the first console line matching `spec.done` (at once
        without patterns). A server id alone starts with the stored spec. AgentError already_running."""
        server_id = spec if isinstance(spec, str) else spec.server_id
        if isinstance(spec, ServerSpec):
            await self.configure(spec)
        server = self._server(server_id)
        async with server.lock:
            if server.state in RUNNING_STATES or server.state == ServerState.INSTALLING:
                raise AgentError("already_running", f"server {server_id} is {server.state.value}")
            if server.restart_task is not None and server.restart_task is not asyncio.current_task():
                server.restart_task.cancel()
                server.restart_task = None
            if server.state == ServerState.CRASHED:
                server.crashes.clear()  # a start by hand resets the crash loop
            await self._launch(server, "start")
        return self.status(server_id)

    async def _launch(self, server: _Server, reason: str) -> None:
        spec = server.spec
        if spec is None:
            raise AgentError("unknown_server", f"server {server.server_id} has no spec; send one")
        if self.limits is None:
            raise AgentError("bad_request", "the runtime is not open")
        for problem in self.apply_config_files(spec):
            self.batcher.add_notice(spec.server_id, f"[pentad] {problem}")
        run_dir = self._run_dir(spec.server_id)
        who = sandbox.identity(self.settings, spec.server_id)
        plan = self.limits.plan(spec.server_id, spec.limits, own_uid=who.uid is not None)
        command = ["/bin/sh", "-c", spec.shell_command()]
        folder = self._folder(spec.server_id)
        if self.settings.sandbox == "bwrap":
            argv = sandbox.bwrap_argv(
                self.settings,
                server_id=spec.server_id,
                server_dir=folder,
                command=command,
                who=who,
            )
            env = sandbox.environment(spec.env, home=sandbox.CONTAINER_HOME, server_id=spec.server_id)
        else:
            argv = command
            env = sandbox.environment(spec.env, home=str(folder), server_id=spec.server_id)
        for stale in ("state.json", "console.log", "console.log.1"):
            with contextlib.suppress(FileNotFoundError):
                (run_dir / stale).unlink()
        launch = {
            "argv": argv,
            "env": env,
            "cwd": str(folder),
            "bwrap": self.settings.sandbox == "bwrap",
            "rlimits": plan.rlimits,
            "cgroup": plan.cgroup,
            "uid": who.uid,
            "gid": who.gid,
            "ring_lines": self.settings.console_ring_lines,
            "limits_backend": plan.backend,
            "limits_notes": list(plan.notes),
        }
        await self.net.sync(spec.server_id, spec.ports)
        try:
            server.shim_pid = await shimclient.launch(run_dir, launch)
            client = await ShimClient.connect(run_dir)
            await client.attach(since=0)
        except ShimError as exc:
            self.batcher.add_notice(spec.server_id, f"[pentad] start failed: {exc}")
            raise AgentError("shim_failed", f"could not start server {spec.server_id}: {exc}") from None
        for note in plan.notes:
            self.batcher.add_notice(spec.server_id, f"[pentad] limits ({plan.backend}): {note}")
        state = read_state(run_dir) or {}
        server.client = client
        server.game_pid = state.get("game_pid")
        server.started_at = state.get("started_at") or time.time()
        server.last_seq = 0
        server.exit_code = server.exit_signal = None
        server.expected_exit = None
        server.exited = asyncio.Event()
        self._set_state(server, ServerState.STARTING, reason)
        if not server.done:
            self._set_state(server, ServerState.RUNNING, "done_line")
        server.reader = asyncio.create_task(self._read(server, client))

    async def stop(self, server_id: str, *, timeout: float | None = None) -> ServerStatus:  # noqa: ASYNC109
        """Send the stop command (or signal) of the spec; after `timeout` (spec.stop_timeout, else
        settings.stop_timeout) SIGTERM, after kill_timeout more SIGKILL; each step is a console line.
        Returns once the game exited (state OFFLINE, reason "stop"). Stopping a stopped server is a no-op."""
        server = self._server(server_id)
        if server.restart_task is not None:
            server.restart_task.cancel()
            server.restart_task = None
        if server.state not in RUNNING_STATES or server.client is None:
            if server.state == ServerState.CRASHED:
                self._set_state(server, ServerState.OFFLINE, "stop")
            return self.status(server_id)
        spec = server.spec
        server.expected_exit = server.expected_exit or "stop"
        self._set_state(server, ServerState.STOPPING, "stop")
        wait = timeout or (spec.stop_timeout if spec and spec.stop_timeout else self.settings.stop_timeout)
        try:
            if spec is not None and spec.stop.kind == "command":
                self.batcher.add_notice(server_id, f"[pentad] stop: sending {spec.stop.value!r}")
                await self._send(server, spec.stop.value)
            else:
                name = spec.stop.value if spec is not None else "SIGTERM"
                self.batcher.add_notice(server_id, f"[pentad] stop: {name}")
                await server.client.signal(_signal_number(name), "game")
        except (AgentError, ShimError) as exc:
            # The game cannot take its stop command (econ not up yet, stdin closed): signal it at once.
            self.batcher.add_notice(server_id, f"[pentad] stop: {exc}; SIGTERM")
            await self._signal(server, signal.SIGTERM, "game")
        if await self._wait_exit(server, wait):
            return self.status(server_id)
        self.batcher.add_notice(server_id, f"[pentad] stop: still running after {wait:g} s; SIGTERM")
        await self._signal(server, signal.SIGTERM, "game")
        if await self._wait_exit(server, self.settings.kill_timeout):
            return self.status(server_id)
        self.batcher.add_notice(
            server_id, f"[pentad] stop: still running {self.settings.kill_timeout:g} s after SIGTERM; SIGKILL"
        )
        await self._signal(server, signal.SIGKILL, "all")
        await self._wait_exit(server, 30.0)
        return self.status(server_id)

    async def restart(self, spec: ServerSpec | str) -> ServerStatus:
        """stop, then start."""
        server_id = spec if isinstance(spec, str) else spec.server_id
        await self.stop(server_id)
        return await self.start(spec)

    async def kill(self, server_id: str) -> ServerStatus:
        """SIGKILL to the whole sandbox (its PID namespace). Allowed in every state; returns once exited."""
        server = self._server(server_id)
        if server.restart_task is not None:
            server.restart_task.cancel()
            server.restart_task = None
        if server.client is None or server.state not in RUNNING_STATES:
            if server.state == ServerState.CRASHED:
                self._set_state(server, ServerState.OFFLINE, "kill")
            return self.status(server_id)
        server.expected_exit = "kill"
        self.batcher.add_notice(server_id, "[pentad] kill: SIGKILL")
        await self._signal(server, signal.SIGKILL, "all")
        await self._wait_exit(server, 30.0)
        return self.status(server_id)

    async def send_command(self, server_id: str, line: str) -> None:
        """One console line to the game: its stdin, or its econ port (spec.console_input). AgentError
        not_running, bad_request (newline or NUL in the line, longer than 4096 bytes)."""
        if "\n" in line or "\r" in line or "\x00" in line or len(line.encode()) > COMMAND_MAX_BYTES:
            raise AgentError("bad_request", "a command is one line of at most 4096 bytes, without NUL")
        server = self._server(server_id)
        if server.state not in RUNNING_STATES or server.client is None:
            raise AgentError("not_running", f"server {server_id} is {server.state.value}")
        await self._send(server, line)

    async def _send(self, server: _Server, line: str) -> None:
        spec = server.spec
        if spec is not None and spec.console_input.kind == "econ":
            await _econ_send(spec.console_input.port, spec.console_input.password or "", line)
            return
        assert server.client is not None
        try:
            await server.client.send_line(line)
        except ShimError as exc:
            raise AgentError("not_running", f"server {server.server_id}: {exc}") from None

    async def console_history(self, server_id: str, lines: int = 100) -> list[str]:
        """The last `lines` console lines kept by the server's shim ([] when none runs)."""
        server = self._servers.get(server_id)
        if server is None or server.client is None or server.client.closed:
            return _log_tail(self._run_dir(server_id), lines) if SERVER_ID.match(server_id) else []
        try:
            return await server.client.history(lines)
        except ShimError:
            return _log_tail(self._run_dir(server_id), lines)

    async def stats(self, server_id: str) -> ServerStats:
        """One stats sample now, the disk usage rescanned (AgentError not_running when no game runs)."""
        server = self._server(server_id)
        if server.state not in RUNNING_STATES or server.game_pid is None:
            raise AgentError("not_running", f"server {server_id} is {server.state.value}")
        traffic = await self.net.read()
        return await asyncio.to_thread(self._sample, server, traffic, fresh_disk=True)

    def _sample(
        self, server: _Server, traffic: dict[str, Traffic], *, fresh_disk: bool = False
    ) -> ServerStats:
        game_pid = server.game_pid
        if game_pid is None:  # the game exited since the caller looked
            raise AgentError("not_running", f"server {server.server_id} is {server.state.value}")
        folder = self._folder(server.server_id)
        sample = self._stats.sample(
            server.server_id, game_pid, folder, server.started_at, fresh_disk=fresh_disk
        )
        memory_mb = server.spec.limits.memory_mb if server.spec else 0
        net_reason = self.net.unavailable(server.server_id, server.spec.ports if server.spec else [])
        net = traffic.get(server.server_id) if net_reason is None else None
        if net is None and net_reason is None:
            net_reason = "the server's nftables counters are missing"
        return ServerStats(
            server.server_id,
            server.state,
            cpu_percent=sample.cpu_percent,
            memory_bytes=sample.memory_bytes,
            memory_limit_bytes=memory_mb * 1024 * 1024 if memory_mb else None,
            disk_bytes=sample.disk_bytes,
            uptime_seconds=sample.uptime_seconds,
            net_rx_bytes=net.rx_bytes if net else None,
            net_tx_bytes=net.tx_bytes if net else None,
            net_rx_packets=net.rx_packets if net else None,
            net_tx_packets=net.tx_packets if net else None,
            net_reason=net_reason,
            limits_backend=self.limits.backend if self.limits else "rlimits",
        )

    async def delete(self, server_id: str) -> None:
        """Kill the server if it runs and remove its folder and run state (a server this agent never ran,
        such as one whose files a transfer left here, has only its folders removed)."""
        server = self._server(server_id, create=True)
        await self.kill(server_id)
        self.batcher.forget(server_id)
        self._stats.forget(server_id)
        await self.net.remove(server_id)
        if self.limits is not None:
            self.limits.release(server_id)
        sandbox.release_identity(self.settings, server_id)
        await asyncio.to_thread(
            shutil.rmtree, self.settings.data_dir / "sandbox" / server_id, ignore_errors=True
        )
        await asyncio.to_thread(shutil.rmtree, self._folder(server_id), ignore_errors=True)
        await asyncio.to_thread(shutil.rmtree, self._run_dir(server_id), ignore_errors=True)
        self._servers.pop(server.server_id, None)

    # ------------------------------------------------------------------ shims

    async def _read(self, server: _Server, client: ShimClient) -> None:
        """Follow one shim: console lines to the batcher (and the done patterns), its exit to the policy."""
        exit_frame: dict[str, Any] | None = None
        async for frame in client.frames():
            if frame.get("t") == "out":
                lines = [str(line) for line in frame.get("lines", [])]
                first = int(frame.get("first", server.last_seq + 1))
                skip = max(0, server.last_seq + 1 - first)  # lines seen before a re-attach
                lines = lines[skip:]
                if not lines:
                    continue
                server.last_seq = first + skip + len(lines) - 1
                self.batcher.feed(server.server_id, lines, server.last_seq)
                if server.state == ServerState.STARTING and any(
                    pattern.search(line) for line in lines for pattern in server.done
                ):
                    self._set_state(server, ServerState.RUNNING, "done_line")
            elif frame.get("t") == "exit":
                exit_frame = frame
        if server.client is client:
            server.client = None
        await client.close()
        if exit_frame is None:
            state = read_state(self._run_dir(server.server_id)) or {}
            if state.get("running") is False:
                exit_frame = {"exit_code": state.get("exit_code"), "signal": state.get("signal")}
            elif pid_alive(state.get("shim_pid")):
                # The connection dropped but the shim lives (it dropped a stalled reader): attach again.
                with contextlib.suppress(ShimError):
                    again = await ShimClient.connect(self._run_dir(server.server_id))
                    await again.attach(since=server.last_seq)
                    server.client = again
                    server.reader = asyncio.create_task(self._read(server, again))
                    return
        if exit_frame is None:
            await asyncio.sleep(0.2)
            state = read_state(self._run_dir(server.server_id)) or {}
            exit_frame = {"exit_code": state.get("exit_code"), "signal": state.get("signal"), "lost": True}
        await self._exited(
            server, exit_frame.get("exit_code"), exit_frame.get("signal"), lost=bool(exit_frame.get("lost"))
        )

    async def _exited(
        self, server: _Server, exit_code: int | None, signum: int | None, *, lost: bool = False
    ) -> None:
        """The game exited: stopped or killed as asked, or a crash, restarted by policy unless it loops."""
        self.batcher.flush(server.server_id)
        self._stats.forget(server.server_id)
        server.exit_code, server.exit_signal = exit_code, signum
        server.game_pid = None
        server.reader = None
        expected, server.expected_exit = server.expected_exit, None
        how = f"signal {signum}" if signum else f"exit status {exit_code}"
        _acknowledge_exit(self._run_dir(server.server_id))
        if expected is not None:
            self.batcher.add_notice(server.server_id, f"[pentad] server stopped ({how})")
            self._set_state(server, ServerState.OFFLINE, expected, exit_code=exit_code, signal=signum)
            server.exited.set()
            return
        reason = "shim_lost" if lost else "exited"
        self.batcher.add_notice(server.server_id, f"[pentad] server exited unexpectedly ({how})")
        spec = server.spec
        if spec is None or not spec.restart_on_crash:
            self._set_state(server, ServerState.OFFLINE, reason, exit_code=exit_code, signal=signum)
            server.exited.set()
            return
        now = time.monotonic()
        server.crashes.append(now)
        while server.crashes and now - server.crashes[0] > self.settings.crash_window:
            server.crashes.popleft()
        if len(server.crashes) > self.settings.crash_max_restarts:
            self.batcher.add_notice(
                server.server_id,
                f"[pentad] crash loop: {len(server.crashes)} crashes within "
                f"{self.settings.crash_window:g} s; not restarting",
            )
            self._set_state(server, ServerState.CRASHED, "crash_loop", exit_code=exit_code, signal=signum)
            server.exited.set()
            return
        self._set_state(server, ServerState.OFFLINE, reason, exit_code=exit_code, signal=signum)
        server.exited.set()
        server.restart_task = asyncio.create_task(self._restart_after_crash(server))

    async def _restart_after_crash(self, server: _Server) -> None:
        await asyncio.sleep(self.settings.crash_restart_delay)
        async with server.lock:
            if server.state != ServerState.OFFLINE or server.restart_task is not asyncio.current_task():
                return
            self.batcher.add_notice(
                server.server_id, f"[pentad] restarting after a crash ({len(server.crashes)} in the window)"
            )
            try:
                await self._launch(server, "crash_restart")
            except AgentError as exc:
                log.warning("crash_restart_failed server=%s error=%s", server.server_id, exc)
            finally:
                server.restart_task = None

    async def _recover(self, server_id: str) -> None:
        """At open: the server's stored spec, and its shim if one still runs (re-attach) or how it ended."""
        run_dir = self._run_dir(server_id)
        server = self._server(server_id, create=True)
        with contextlib.suppress(OSError, ValueError):
            spec = ServerSpec.model_validate_json((run_dir / "spec.json").read_text(encoding="utf-8"))
            server.spec = spec
            server.done = [re.compile(pattern) for pattern in spec.done]
        if server.spec is not None:
            await self.net.sync(server_id, server.spec.ports)  # counters kept: counting goes on
        state = read_state(run_dir)
        if state is None:
            return
        if state.get("running") and pid_alive(state.get("shim_pid")):
            try:
                client = await ShimClient.connect(run_dir)
                seq = await client.attach(since=None, tail=0)
                history = await client.history(self.settings.console_ring_lines)
            except ShimError as exc:
                log.warning("reattach_failed server=%s error=%s", server_id, exc)
                return
            server.client = client
            server.shim_pid = state.get("shim_pid")
            server.game_pid = state.get("game_pid")
            server.started_at = state.get("started_at")
            server.last_seq = seq
            done = not server.done or any(p.search(line) for line in history for p in server.done)
            self._set_state(server, ServerState.RUNNING if done else ServerState.STARTING, "reattached")
            self.batcher.add_notice(server_id, "[pentad] agent re-attached to the running server")
            server.reader = asyncio.create_task(self._read(server, client))
            return
        if state.get("acknowledged"):
            return
        # The game ended while no agent listened: report it, and apply the crash policy.
        server.state = ServerState.RUNNING
        await self._exited(
            server, state.get("exit_code"), state.get("signal"), lost=state.get("running") is True
        )

    # ------------------------------------------------------------------ helpers

    def _server(self, server_id: str, *, create: bool = False) -> _Server:
        if not SERVER_ID.match(server_id):
            raise AgentError("bad_request", f"{server_id!r} is not a server id")
        server = self._servers.get(server_id)
        if server is None:
            if not create:
                raise AgentError("unknown_server", f"this agent has no server {server_id}")
            server = self._servers[server_id] = _Server(server_id)
        return server

    def _folder(self, server_id: str) -> Path:
        return self.settings.servers_dir / server_id

    def _run_dir(self, server_id: str) -> Path:
        return self.settings.run_dir / server_id

    def _set_state(self, server: _Server, state: ServerState, reason: str, **exit_info: Any) -> None:
        previous = server.state
        server.state = state
        if state in (ServerState.OFFLINE, ServerState.CRASHED) or previous != state:
            self.batcher.flush(server.server_id)
            self._emit(
                StateChanged(
                    server.server_id,
                    state,
                    previous,
                    reason,
                    exit_code=exit_info.get("exit_code"),
                    signal=exit_info.get("signal"),
                    crash_count=len(server.crashes),
                )
            )

    async def _signal(self, server: _Server, signum: int, target: str) -> None:
        if server.client is None:
            return
        with contextlib.suppress(ShimError):
            await server.client.signal(signum, target)

    async def _wait_exit(self, server: _Server, seconds: float) -> bool:
        try:
            await asyncio.wait_for(server.exited.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _players(self, server: _Server) -> query.Players | None:
        """The game's own player count, when its spec names a status query it answers (else None)."""
        spec = server.spec
        if spec is None or spec.query is None or server.state != ServerState.RUNNING:
            return None
        return await query.players(spec.query)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval)
            running = [
                server
                for server in self._servers.values()
                if server.state in RUNNING_STATES and server.game_pid is not None
            ]
            # the games' status queries at once (each bounded by query.QUERY_TIMEOUT), not one after another
            answers = await asyncio.gather(*(self._players(server) for server in running))
            traffic = await self.net.read() if running else {}
            for server, answer in zip(running, answers, strict=True):
                try:
                    sample = await asyncio.to_thread(self._sample, server, traffic)
                except Exception as exc:  # a game that exits between two lines must not end the loop
                    log.debug("stats_skipped server=%s error=%r", server.server_id, exc)
                    continue
                if answer is not None:
                    sample = dataclasses.replace(
                        sample, players=answer.players, max_players=answer.max_players
                    )
                self._emit(sample)
                limit = sample.memory_limit_bytes
                if (
                    limit
                    and self.limits is not None
                    and self.limits.backend == "rlimits"
                    and sample.memory_bytes > limit
                    and server.expected_exit is None
                ):
                    self.batcher.add_notice(
                        server.server_id,
                        f"[pentad] memory {sample.memory_bytes // 1048576} MB over the limit "
                        f"{limit // 1048576} MB; killed",
                    )
                    server.expected_exit = "memory_exceeded"
                    await self._signal(server, signal.SIGKILL, "all")


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()])
    except KeyError:
        return int(signal.SIGTERM)


def _acknowledge_exit(run_dir: Path) -> None:
    state = read_state(run_dir)
    if state is not None and not state.get("acknowledged"):
        state["acknowledged"] = True
        with contextlib.suppress(OSError):
            write_json(run_dir / "state.json", state)


def _log_tail(run_dir: Path, lines: int) -> list[str]:
    try:
        with open(run_dir / "console.log", "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 256 * 1024))
            data = file.read()
    except OSError:
        return []
    return [line.decode("utf-8", "replace") for line in data.splitlines()[-lines:]] if lines > 0 else []


async def _econ_send(port: int | None, password: str, line: str) -> None:
    """One command over a teeworlds external console (econ) on 127.0.0.1: password line, then the command."""
    if port is None:
        raise AgentError("bad_request", "console input is econ but no econ port is set")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError) as exc:
        raise AgentError("not_running", f"econ port {port}: {exc}") from None
    try:
        await asyncio.wait_for(reader.readuntil(b"password:"), 5)
        writer.write(password.encode() + b"\n")
        await writer.drain()
        while True:  # frames end with "\n\0\0"; the prompt's end comes first
            answer = await asyncio.wait_for(reader.readuntil(b"\n"), 5)
            if b"successful" in answer:
                break
            if b"rong password" in answer or b"denied" in answer:
                raise AgentError("not_running", "econ refused the password")
        writer.write(line.encode() + b"\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # let the game read the line before the socket closes
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise AgentError("not_running", f"econ: {type(exc).__name__}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


__all__ = [
    "AgentError",
    "ConsoleBatch",
    "Runtime",
    "ServerState",
    "ServerStats",
    "ServerStatus",
    "StateChanged",
]
