"""The agent's one WebSocket to the panel: dial out, authenticate, heartbeat, reconnect, dispatch calls.

    link = AgentLink(credential, runtime, agent_version="0.1.0")
    await link.run()        # until cancelled: reconnects with backoff whenever the link drops, and
                            # forwards runtime.events() (console batches, stats, state changes)

The agent always dials (it works behind NAT; nodes open no port). A session: connect with
`Authorization: Bearer pnd_…`, send `hello` (protocol version, facts, every server the runtime runs so
the panel reconciles its view), wait for `welcome` (its heartbeat settings), then until the link drops:
answer the panel's `call`s (each in its own task, so a long install does not hold a console command back),
send `heartbeat` every `heartbeat_interval`, and treat `heartbeat_timeout` of silence from the panel as a
dead link. Reconnects wait with equal-jitter exponential backoff (0.5 s doubling to `reconnect_max`,
half fixed, half random, so a restarted panel is not hit by every agent at once); a session that got its
welcome resets it. A panel that refuses the credential (4401/4403) or the protocol (4400) is retried too,
at the slowest pace: an operator may fix it without restarting the agent.

What the runtime emits while the link is down is dropped, not queued: console history is re-read from
the shim's ring (`console_history` call), and the next hello carries every server's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pentad.agent.enrol import NodeCredential, configured_credential
from pentad.agent.events import (
    ConsoleBatch,
    RuntimeEvent,
    ServerState,
    ServerStatus,
    StateChanged,
)
from pentad.agent.files import ServerFiles, file_call
from pentad.agent.runtime import AgentError
from pentad.agent.runtime import Runtime as RealRuntime
from pentad.agent.settings import AgentSettings
from pentad.panel_wire import protocol as wire
from pentad.panel_wire.serverspec import ServerSpec

logger = logging.getLogger("pentad.agent.link")

AGENT_VERSION = importlib.metadata.version("pentad")
OUTBOX_SIZE = 2048
"""Frames waiting to be written; beyond it console batches and stats are dropped (never calls' replies)."""
CLOSE_CODES_REFUSED = {wire.CLOSE_UNAUTHORISED, wire.CLOSE_FORBIDDEN, wire.CLOSE_PROTOCOL_MISMATCH}

AgentEvent = wire.ConsoleBatch | wire.Stats | wire.StateChange


class Runtime(Protocol):
    """What the link needs of the agent's runtime (pentad.agent.runtime.Runtime; tests pass their own)."""

    def facts(self) -> dict[str, Any]: ...

    def servers(self) -> list[ServerStatus]: ...

    def status(self, server_id: str) -> ServerStatus: ...

    def events(self) -> AsyncIterator[RuntimeEvent]: ...

    async def install(self, spec: ServerSpec) -> int: ...

    async def start(self, spec: ServerSpec | str) -> ServerStatus: ...

    async def stop(self, server_id: str, *, timeout: float | None = None) -> ServerStatus: ...  # noqa: ASYNC109

    async def restart(self, spec: ServerSpec | str) -> ServerStatus: ...

    async def kill(self, server_id: str) -> ServerStatus: ...

    async def send_command(self, server_id: str, line: str) -> None: ...

    async def console_history(self, server_id: str, lines: int = 100) -> list[str]: ...

    async def delete(self, server_id: str) -> None: ...


def report(status: ServerStatus) -> wire.ServerReport:
    return wire.ServerReport(
        server_id=status.server_id,
        state=status.state.value,
        pid=status.game_pid,
        started_at=status.started_at,
        exit_code=status.exit_code,
        exit_signal=status.signal,
        restarts=status.crash_count,
    )


def frame_of(event: RuntimeEvent) -> AgentEvent:
    """A runtime event as the frame the panel reads."""
    if isinstance(event, ConsoleBatch):
        return wire.ConsoleBatch(
            server_id=event.server_id,
            lines=list(event.lines)[: wire.MAX_BATCH_LINES],
            dropped=event.dropped,
            source="install" if event.source == "install" else "game",
        )
    if isinstance(event, StateChanged):
        return wire.StateChange(
            server_id=event.server_id,
            state=event.state.value,
            previous=event.previous.value,
            reason=event.reason,
            exit_code=event.exit_code,
            exit_signal=event.signal,
        )
    return wire.Stats(
        server_id=event.server_id,
        state=event.state.value,
        cpu_percent=event.cpu_percent,
        memory_bytes=event.memory_bytes,
        memory_limit_bytes=event.memory_limit_bytes,
        disk_bytes=event.disk_bytes,
        net_rx_bytes=event.net_rx_bytes,
        net_tx_bytes=event.net_tx_bytes,
        net_rx_packets=event.net_rx_packets,
        net_tx_packets=event.net_tx_packets,
        net_unavailable=event.net_reason,
        uptime_s=event.uptime_seconds,
        players=event.players,
        max_players=event.max_players,
    )


def url_of(panel_url: str) -> str:
    """ws(s)://… of the panel's agent socket for its http(s):// base URL."""
    base = panel_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + wire.SOCKET_PATH
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://") + wire.SOCKET_PATH
    raise ValueError("the panel URL starts with http:// or https://")


class Backoff:
    """Equal-jitter exponential backoff: attempt n waits d/2 + random(0, d/2), d = min(max, first * 2^n)."""

    def __init__(self, first: float = 0.5, maximum: float = 30.0) -> None:
        self.first = first
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.first * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def slowest(self) -> float:
        self.attempt = 32
        return self.next_delay()

    def reset(self) -> None:
        self.attempt = 0


class AgentLink:
    def __init__(
        self,
        credential: NodeCredential,
        runtime: Runtime,
        *,
        agent_version: str,
        reconnect_first: float = 0.5,
        reconnect_max: float = 30.0,
        open_timeout: float = 10.0,
        files: ServerFiles | None = None,
    ) -> None:
        self.credential = credential
        self.files = files
        """The file manager and backups (None: file_* and backup_* calls are answered `unsupported`)."""
        self.runtime = runtime
        self.agent_version = agent_version
        self.backoff = Backoff(reconnect_first, reconnect_max)
        self.open_timeout = open_timeout
        self.connected = asyncio.Event()
        self.sessions = 0
        """Sessions that got a welcome (tests and `pentad agent status` read it)."""
        self.welcome: wire.Welcome | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._dropped = 0
        self._installs: set[asyncio.Task[None]] = set()

    def emit(self, event: AgentEvent) -> None:
        """Send a console batch, stats or a state change if the link is up (dropped otherwise: see above)."""
        outbox = self._outbox
        if outbox is None or not self.connected.is_set():
            return
        try:
            outbox.put_nowait(wire.encode(event))
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped in (1, 100) or self._dropped % 10_000 == 0:
                logger.warning("agent_link_outbox_full dropped=%d", self._dropped)

    async def run(self) -> None:
        """Connect, and reconnect whenever the link drops, until cancelled; meanwhile forward the runtime's
        events (dropped while the link is down)."""
        pump = asyncio.create_task(self._pump())
        try:
            await self._connect_forever()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _pump(self) -> None:
        async for event in self.runtime.events():
            self.emit(frame_of(event))

    async def _connect_forever(self) -> None:
        while True:
            refused = False
            try:
                refused = await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, wire.FrameError) as error:
                logger.info("agent_link_down reason=%s", _describe(error))
            except Exception:
                logger.exception("agent_link_failed")
            finally:
                self.connected.clear()
                self._outbox = None
            delay = self.backoff.slowest() if refused else self.backoff.next_delay()
            logger.info("agent_link_reconnect in=%.2fs", delay)
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection, until it drops; True when the panel refused us (credential, protocol)."""
        headers = {"Authorization": f"Bearer {self.credential.credential}"}
        try:
            websocket = await connect(
                url_of(self.credential.panel_url),
                additional_headers=headers,
                open_timeout=self.open_timeout,
                max_size=wire.MAX_FRAME_BYTES,
                ping_interval=None,  # the protocol's own heartbeat, both ways
                close_timeout=2.0,
                user_agent_header=f"pentad-agent/{self.agent_version}",
            )
        except InvalidStatus as error:
            logger.warning("agent_link_refused status=%s", error.response.status_code)
            return True
        async with websocket:
            try:
                return await self._converse(websocket)
            except ConnectionClosed as closed:
                return _refused(closed)

    async def _converse(self, websocket: ClientConnection) -> bool:
        hello = wire.Hello(
            node_id=self.credential.node_id,
            agent_version=self.agent_version,
            facts=self.runtime.facts(),
            servers=[report(status) for status in self.runtime.servers()],
        )
        await websocket.send(wire.encode(hello))
        async with asyncio.timeout(self.open_timeout):
            first = wire.decode_panel_frame(await websocket.recv())
        if not isinstance(first, wire.Welcome):
            logger.warning("agent_link_no_welcome frame=%s", first.t)
            return isinstance(first, wire.Error)
        self.welcome = first
        self.backoff.reset()
        self.sessions += 1
        self._outbox = asyncio.Queue(OUTBOX_SIZE)
        self.connected.set()
        logger.info("agent_link_up node=%s session=%d", self.credential.node_id, self.sessions)
        await self._serve(websocket, first, self._outbox)
        return False

    async def _serve(
        self, websocket: ClientConnection, welcome: wire.Welcome, outbox: asyncio.Queue[str]
    ) -> None:
        calls: set[asyncio.Task[None]] = set()
        last_heard = time.monotonic()

        async def reader() -> None:
            nonlocal last_heard
            async for message in websocket:
                last_heard = time.monotonic()
                try:
                    frame = wire.decode_panel_frame(message)
                except wire.FrameError as error:
                    outbox.put_nowait(wire.encode(wire.Error(code=error.code, message=error.message)))
                    continue
                if isinstance(frame, wire.Call):
                    task = asyncio.create_task(self._answer(frame, outbox))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
                elif isinstance(frame, wire.Error):
                    logger.warning("agent_link_panel_error code=%s message=%s", frame.code, frame.message)
            logger.info("agent_link_closed code=%s reason=%s", websocket.close_code, websocket.close_reason)

        async def writer() -> None:
            while True:
                await websocket.send(await outbox.get())

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(welcome.heartbeat_interval)
                if time.monotonic() - last_heard > welcome.heartbeat_timeout:
                    logger.info("agent_link_panel_silent after=%.1fs", time.monotonic() - last_heard)
                    websocket.transport.abort()  # a silent panel would not answer a close either
                    return
                await _put(outbox, wire.encode(wire.Heartbeat(at=time.time())))

        tasks = [asyncio.create_task(job()) for job in (reader, writer, heartbeat)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in [*tasks, *calls]:
                task.cancel()
            for task in [*tasks, *calls]:
                with contextlib.suppress(BaseException):
                    await task
        await websocket.close()

    async def _answer(self, call: wire.Call, outbox: asyncio.Queue[str]) -> None:
        try:
            result = await self._dispatch(call)
            reply = wire.ok_reply(call.id, result)
        except wire.FrameError as error:
            reply = wire.error_reply(call.id, error.code, error.message)
        except AgentError as error:
            reply = wire.error_reply(call.id, error.code, error.message)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception("agent_call_failed method=%s server=%s", call.method, call.server_id)
            reply = wire.error_reply(call.id, "agent_error", f"{type(error).__name__}: {error}"[:500])
        await _put(outbox, wire.encode(reply))

    async def _dispatch(self, call: wire.Call) -> wire.Frame | dict[str, Any] | None:
        params = call.typed_params()
        runtime = self.runtime
        server_id = call.server_id or ""
        if not server_id:
            raise wire.FrameError("bad_params", "the call names no server")
        if isinstance(params, wire.InstallParams):
            return self._install(params.spec)
        if isinstance(params, wire.StartParams):
            return report(await runtime.start(params.spec))
        if isinstance(params, wire.StopParams):
            return report(await runtime.stop(server_id, timeout=params.timeout))
        if isinstance(params, wire.RestartParams):
            return report(await runtime.restart(params.spec))
        if isinstance(params, wire.KillParams):
            return report(await runtime.kill(server_id))
        if isinstance(params, wire.SendCommandParams):
            await runtime.send_command(server_id, params.command)
            return {}
        if isinstance(params, wire.ConsoleHistoryParams):
            lines = await runtime.console_history(server_id, params.lines)
            return wire.ConsoleHistory(server_id=server_id, lines=lines)
        if isinstance(params, wire.DeleteParams):
            await runtime.delete(server_id)
            return {}
        if isinstance(params, wire.StateParams):
            return report(runtime.status(server_id))
        if self.files is None:
            raise AgentError("unsupported", "this agent has no file manager")
        if isinstance(params, wire.BackupRestoreParams):
            state = runtime.status(server_id).state
            if state not in (ServerState.OFFLINE, ServerState.CRASHED):
                raise AgentError("busy", f"the server is {state.value}: stop it before restoring a backup")
        return await asyncio.to_thread(file_call, self.files, server_id, params)

    def _install(self, spec: ServerSpec) -> wire.ServerReport:
        """Installs run for minutes: answer once begun (the runtime reports installing -> offline, or the
        failure, as state changes), and keep the task until it ends."""
        state = self.runtime.status(spec.server_id).state
        if state not in (ServerState.OFFLINE, ServerState.CRASHED):
            raise AgentError("busy", f"the server is {state.value}: stop it before installing")
        task = asyncio.create_task(self._run_install(spec))
        self._installs.add(task)
        task.add_done_callback(self._installs.discard)
        return wire.ServerReport(server_id=spec.server_id, state="installing")

    async def _run_install(self, spec: ServerSpec) -> None:
        try:
            code = await self.runtime.install(spec)
            logger.info("agent_install_done server=%s exit=%s", spec.server_id, code)
        except AgentError as error:
            logger.warning("agent_install_refused server=%s code=%s", spec.server_id, error.code)
        except Exception:
            logger.exception("agent_install_failed server=%s", spec.server_id)


async def _put(outbox: asyncio.Queue[str], text: str) -> None:
    """Replies and heartbeats wait for room (console and stats are the ones dropped when it is full)."""
    await outbox.put(text)


def _refused(closed: ConnectionClosed) -> bool:
    code = closed.rcvd.code if closed.rcvd is not None else None
    logger.info("agent_link_closed %s", _describe(closed))
    if code in CLOSE_CODES_REFUSED:
        logger.warning(
            "agent_link_refused code=%s reason=%s", code, closed.rcvd.reason if closed.rcvd else ""
        )
        return True
    return False


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


async def run_agent(settings: AgentSettings) -> None:
    """`pentad agent run`: open the runtime (re-attaching to the shims that kept running), then hold the
    link to the panel until cancelled; closing detaches from the shims, the games keep running."""
    credential = configured_credential(settings)
    runtime = RealRuntime(settings)
    await runtime.open()
    link = AgentLink(
        credential,
        runtime,
        agent_version=AGENT_VERSION,
        reconnect_max=settings.reconnect_max,
        files=ServerFiles(settings),
    )
    try:
        await link.run()
    finally:
        await runtime.close()
