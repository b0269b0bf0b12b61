"""The panel's end of an agent's socket, and `call()`, the way the rest of the panel asks an agent.

An agent dials /api/panel/agent/socket with its node credential (principal kind `panel_node`) and sends
`hello`. The handler here then
1. holds the relay address `panel.node.{node_id}` with take_over (core/realtime/relay.py): the newest
   socket of a node wins, an older one still open (a reconnect that beat the old socket's close) is told
   LeaseLost and closed with 4410;
2. marks the node online with the facts it reported and reconciles its servers' states with the list in
   hello (a server the agent does not run is `offline`), publishing every change;
3. answers `welcome` (heartbeat and console settings) and then, until the socket ends: forwards relay
   requests to the agent as `call` frames and the agent's `reply` back to the asker; publishes console
   batches and stats without a transaction (publish_now) and state changes with the transaction that
   stores them; sends a heartbeat every `heartbeat_interval`, and closes a socket silent for
   `heartbeat_timeout` (the agent is gone, or stuck);
4. marks the node offline when its socket ends (unless a newer socket took over). Its servers' states are
   left as they were: game servers keep running while their agent is away (the shim holds them), and
   the next hello reconciles them.

An agent only speaks for its own node: console, stats and state frames for a server of another node are
refused with an `error` frame and never published.

`call(platform, node_id, method, ...)` works from any process (API request, job, topic call): it goes
through the relay to whichever process holds the node's socket; nobody holds it => 409 `node_offline`
at once, no answer within the timeout => 504 `agent_timeout`, the agent refused => 409 with the agent's
code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import structlog
from starlette.websockets import WebSocketDisconnect

from pentad.apps.panel import events, repository
from pentad.apps.panel.events import NODE_STATUS_CHANGED, SERVER_CRASHED, SERVER_STATE_CHANGED
from pentad.apps.panel.models import PanelNode, PanelServer
from pentad.apps.panel.settings import APP_NAME, PanelSettings
from pentad.apps.panel.topics import (
    ConsoleOutput,
    NodeStatusChanged,
    ServerStateChanged,
    ServerStats,
    console_topic,
    node_topic,
    state_topic,
)
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.errors import AppError, Conflict
from pentad.core.events import emit
from pentad.core.realtime.live import AppSocket
from pentad.core.realtime.publish import publish, publish_now
from pentad.core.realtime.relay import LeaseLost, NoHolder, RelayMessage, RelayTimeout
from pentad.panel_wire import protocol as wire

logger = structlog.get_logger("pentad.panel.agent_link")

INSTALL_STATES = frozenset({"installing", "install_failed"})
STATS_CACHE_TTL = 5.0


def node_address(node_id: uuid.UUID | str) -> str:
    return f"panel.node.{node_id}"


def stats_key(server_id: uuid.UUID | str) -> str:
    return f"panel:stats:{server_id}"


class NodeOffline(Conflict):
    code = "node_offline"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "The server's node is offline (its agent is not connected); try again later.", **kwargs
        )


class AgentTimeout(AppError):
    status, code = 504, "agent_timeout"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("The node's agent did not answer in time.", **kwargs)


class AgentRefused(Conflict):
    code = "agent_refused"

    def __init__(self, agent_code: str, message: str, **kwargs: Any) -> None:
        super().__init__(f"The node's agent refused: {message}", agent_code=agent_code, **kwargs)
        self.agent_code = agent_code


# --- asking an agent, from any process ---


async def call(
    platform: AppContext,
    node_id: uuid.UUID,
    method: wire.CallMethod,
    server_id: uuid.UUID | None = None,
    params: wire.Frame | None = None,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - the relay's own timeout, passed on
) -> dict[str, Any]:
    """Call `method` on the node's agent and return its result (NodeOffline, AgentTimeout, AgentRefused)."""
    settings = platform.app_settings(PanelSettings)
    seconds = timeout if timeout is not None else settings.agent_command_timeout
    request = {
        "method": method,
        "server_id": str(server_id) if server_id is not None else None,
        "params": params.model_dump(mode="json") if params is not None else {},
        "timeout": seconds,
    }
    try:
        # the holder waits `seconds` for the agent; the relay a little longer, so the agent's own
        # timeout answer (agent_timeout) is what the caller sees
        answer = await platform.relay.request(node_address(node_id), json.dumps(request), timeout=seconds + 2)
    except NoHolder:
        raise NodeOffline() from None
    except RelayTimeout:
        raise AgentTimeout() from None
    reply = wire.Reply.model_validate_json(answer)
    if not reply.ok:
        error = reply.error or wire.ErrorBody(code="agent_error", message="no reason given")
        if error.code == "node_offline":
            raise NodeOffline()
        if error.code == "agent_timeout":
            raise AgentTimeout()
        raise AgentRefused(error.code, error.message)
    return reply.result or {}


# --- the socket ---


async def serve_agent(socket: AppSocket) -> None:
    """The agent socket's handler (agent_endpoints.py): from hello to the socket's end."""
    platform = socket.live.platform
    settings = platform.app_settings(PanelSettings)
    node_id = socket.principal.id
    try:
        async with asyncio.timeout(settings.heartbeat_timeout):
            text = await socket.receive_text()
        hello = wire.decode_agent_frame(text)
    except TimeoutError:
        await socket.close(wire.CLOSE_PROTOCOL_MISMATCH, "no hello")
        return
    except wire.FrameError as error:
        await _refuse(socket, error.code, error.message, wire.CLOSE_PROTOCOL_MISMATCH)
        return
    if not isinstance(hello, wire.Hello):
        await _refuse(socket, "hello_expected", "the first frame is hello", wire.CLOSE_PROTOCOL_MISMATCH)
        return
    if hello.protocol != wire.PROTOCOL_VERSION:
        message = f"this panel speaks protocol {wire.PROTOCOL_VERSION}, not {hello.protocol}"
        await _refuse(socket, "protocol_mismatch", message, wire.CLOSE_PROTOCOL_MISMATCH)
        return
    if hello.node_id and hello.node_id != str(node_id):  # empty: "whichever node my credential is"
        await _refuse(socket, "wrong_node", "this credential belongs to another node", wire.CLOSE_WRONG_NODE)
        return
    connected = platform.metrics.for_app(APP_NAME).gauge(
        "agents_connected", "Agents (nodes) connected to this process right now."
    )
    connected.inc()
    try:
        await AgentSession(platform, socket, node_id, settings).run(hello)
    finally:
        connected.dec()


async def _refuse(socket: AppSocket, code: str, message: str, close_code: int) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await socket.send_text(wire.encode(wire.Error(code=code, message=message)))
        await socket.close(close_code, code)


class AgentSession:
    """One connected agent socket."""

    def __init__(
        self, platform: AppContext, socket: AppSocket, node_id: uuid.UUID, settings: PanelSettings
    ) -> None:
        self.platform = platform
        self.socket = socket
        self.node_id = node_id
        self.settings = settings
        self.link_id = uuid.uuid4().hex
        self.servers: set[uuid.UUID] = set()
        self.pending: dict[int, asyncio.Future[wire.Reply]] = {}
        self.ids = itertools.count(1)
        self.last_heard = time.monotonic()
        self.last_seen_written = 0.0
        self.replaced = False
        self.outbox: asyncio.Queue[str] = asyncio.Queue(4096)
        self.writes: asyncio.Queue[Coroutine[Any, Any, None]] = asyncio.Queue(4096)
        self.log = logger.bind(node_id=str(node_id), link=self.link_id[:8])

    async def run(self, hello: wire.Hello) -> None:
        try:
            async with self.platform.relay.hold(node_address(self.node_id), take_over=True) as inbox:
                await self._come_online(hello)
                welcome = wire.Welcome(
                    node_id=str(self.node_id),
                    heartbeat_interval=self.settings.heartbeat_interval,
                    heartbeat_timeout=self.settings.heartbeat_timeout,
                    console_batch_ms=self.settings.console_batch_ms,
                    console_lines_per_second=self.settings.console_lines_per_second,
                    stats_interval=self.settings.stats_interval,
                )
                await self.socket.send_text(wire.encode(welcome))
                self.log.info(
                    "agent_connected", agent_version=hello.agent_version, servers=len(hello.servers)
                )
                await self._serve(inbox)
        except LeaseLost:
            self.replaced = True
            self.log.info("agent_socket_replaced")
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.socket.close(wire.CLOSE_REPLACED, "a newer socket of this node took over")
        except WebSocketDisconnect:
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_result(wire.error_reply(0, "node_offline", "the agent disconnected"))
            await asyncio.shield(self._finish_writes())

    async def _finish_writes(self) -> None:
        """What the agent reported before leaving is stored, then the node marked offline."""
        while not self.writes.empty():
            work = self.writes.get_nowait()
            try:
                await work
            except Exception:
                self.log.exception("agent_state_not_stored")
        if not self.replaced:
            await self._go_offline()

    async def _serve(self, inbox: Any) -> None:
        tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._write()),
            asyncio.create_task(self._forward(inbox)),
            asyncio.create_task(self._watch()),
            asyncio.create_task(self._write_database()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    # -- agent -> panel

    async def _read(self) -> None:
        while True:
            text = await self.socket.receive_text()
            self.last_heard = time.monotonic()
            try:
                frame = wire.decode_agent_frame(text)
                await self._handle(frame)
            except wire.FrameError as error:
                self.log.warning("agent_frame_refused", code=error.code, detail=error.message[:200])
                self._send(wire.Error(code=error.code, message=error.message))

    async def _handle(self, frame: wire.AgentFrame) -> None:
        if isinstance(frame, wire.ConsoleBatch):
            server_id = await self._own_server(frame.server_id)
            if frame.lines or frame.dropped:
                lines = [line[: wire.MAX_LINE_CHARS] for line in frame.lines]
                output = ConsoleOutput(server_id=str(server_id), lines=lines, dropped=frame.dropped)
                await publish_now(self.platform, console_topic(server_id), output)
        elif isinstance(frame, wire.Stats):
            server_id = await self._own_server(frame.server_id)
            stats = ServerStats.model_validate(
                frame.model_dump(exclude={"t"}) | {"server_id": str(server_id)}
            )
            await self.platform.cache.set(
                stats_key(server_id), stats.model_dump(mode="json"), ttl=STATS_CACHE_TTL
            )
            await publish_now(self.platform, state_topic(server_id), stats)
        elif isinstance(frame, wire.StateChange):
            server_id = await self._own_server(frame.server_id)
            self._store(self._store_state(server_id, frame))
        elif isinstance(frame, wire.Reply):
            future = self.pending.pop(frame.id, None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif isinstance(frame, wire.Heartbeat):
            self._seen()
        elif isinstance(frame, wire.Error):
            self.log.warning("agent_error_frame", code=frame.code, detail=frame.message[:200])
        else:
            raise wire.FrameError("unexpected_frame", f"{frame.t} is not expected now")

    async def _own_server(self, raw: str) -> uuid.UUID:
        """The id of a server of this node (FrameError for any other: an agent speaks for its node only)."""
        try:
            server_id = uuid.UUID(raw)
        except ValueError:
            raise wire.FrameError("unknown_server", f"{raw[:40]!r} is not a server id") from None
        if server_id not in self.servers:
            async with self.platform.database.transaction(writes=False) as session:
                server = await repository.get_server(session, server_id)
            if server is None or server.node_id != self.node_id:
                raise wire.FrameError("unknown_server", f"no server {server_id} on this node")
            self.servers.add(server_id)
        return server_id

    async def _store_state(self, server_id: uuid.UUID, frame: wire.StateChange) -> None:
        async with self.platform.database.transaction() as session:
            server = await repository.get_server(session, server_id)
            if server is not None:
                await apply_state(
                    session, server, frame.state, frame.reason, frame.exit_code, frame.exit_signal
                )

    def _store(self, work: Coroutine[Any, Any, None]) -> None:
        """Database writes run one after another in their own task, never in the reader: a request that
        holds the write lock (SQLite) while it waits for this agent's reply must not keep the reply
        unread behind a state change waiting for that lock."""
        try:
            self.writes.put_nowait(work)
        except asyncio.QueueFull:
            work.close()
            self.log.warning("agent_writes_dropped")

    async def _write_database(self) -> None:
        while True:
            work = await self.writes.get()
            try:
                await work
            except Exception:
                self.log.exception("agent_state_not_stored")

    # -- panel -> agent

    def _send(self, frame: wire.Frame) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(wire.encode(frame))

    async def _write(self) -> None:
        while True:
            await self.socket.send_text(await self.outbox.get())

    async def _forward(self, inbox: Any) -> None:
        """Relay requests for this node become calls to the agent; its replies go back to the asker."""
        asks: set[asyncio.Task[None]] = set()
        async for message in inbox:
            task = asyncio.create_task(self._ask(message))  # ends with its reply or its timeout
            asks.add(task)
            task.add_done_callback(asks.discard)

    async def _ask(self, message: RelayMessage) -> None:
        call_id = next(self.ids)
        try:
            request = json.loads(message.data)
            call = wire.Call(
                id=call_id,
                method=request["method"],
                server_id=request.get("server_id"),
                params=request["params"],
            )
            seconds = float(request.get("timeout") or self.settings.agent_command_timeout)
        except (ValueError, KeyError, TypeError):
            reply = wire.error_reply(call_id, "bad_call", "the panel sent a malformed call")
        else:
            future: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
            self.pending[call_id] = future
            self._send(call)
            try:
                async with asyncio.timeout(seconds):
                    reply = await future
            except TimeoutError:
                reply = wire.error_reply(call_id, "agent_timeout", "the agent did not answer in time")
            finally:
                self.pending.pop(call_id, None)
        if message.reply is not None:
            with contextlib.suppress(Exception):
                await message.reply(wire.encode(reply))

    async def _watch(self) -> None:
        """Heartbeats to the agent; a socket silent for heartbeat_timeout is closed (the agent is gone)."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            silent = time.monotonic() - self.last_heard
            if silent > self.settings.heartbeat_timeout:
                self.log.info("agent_silent", seconds=round(silent, 1))
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await self.socket.close(1001, "heartbeat timeout")
                return
            self._send(wire.Heartbeat(at=time.time()))

    # -- node status

    def _seen(self) -> None:
        now = time.monotonic()
        if now - self.last_seen_written < self.settings.heartbeat_interval / 2:
            return
        self.last_seen_written = now
        self._store(self._store_seen())

    async def _store_seen(self) -> None:
        async with self.platform.database.transaction() as session:
            node = await repository.get_node(session, self.node_id)
            if node is not None and node.facts.get("link") == self.link_id:
                node.last_seen_at = utcnow()
                if node.status == "offline":  # marked offline by node_watch during a stall: back now
                    await set_node_status(session, node, "online", "heartbeat")

    async def _come_online(self, hello: wire.Hello) -> None:
        reported = {report.server_id: report for report in hello.servers}
        async with self.platform.database.transaction() as session:
            node = await repository.get_node(session, self.node_id)
            if node is None:
                raise WebSocketDisconnect(wire.CLOSE_FORBIDDEN, "node deleted")
            node.facts = {
                **hello.facts,
                "agent_version": hello.agent_version,
                "protocol": hello.protocol,
                "link": self.link_id,
                "connected_at": utcnow().isoformat(),
            }
            node.last_seen_at = utcnow()
            await set_node_status(
                session, node, "online", "agent connected", agent_version=hello.agent_version
            )
            for server in await repository.list_servers(session, node_id=self.node_id, limit=100_000):
                self.servers.add(server.id)
                report = reported.pop(str(server.id), None)
                if report is not None:
                    await apply_state(
                        session, server, report.state, "reconciled", report.exit_code, report.exit_signal
                    )
                elif server.state != "offline":
                    await apply_state(session, server, "offline", "not running on its node")
        for unknown in reported:
            self.log.warning("agent_reports_unknown_server", server_id=unknown[:40])
        self.last_seen_written = time.monotonic()

    async def _go_offline(self) -> None:
        try:
            async with self.platform.database.transaction() as session:
                node = await repository.get_node(session, self.node_id)
                if node is not None and node.facts.get("link") == self.link_id and node.status == "online":
                    await set_node_status(session, node, "offline", "agent disconnected")
            self.log.info("agent_disconnected")
        except Exception:
            self.log.exception("agent_offline_not_recorded")


async def set_node_status(
    session: Any, node: PanelNode, status: str, reason: str, *, agent_version: str | None = None
) -> None:
    """Change a node's status and publish it (after the commit) on its status topic."""
    previous = node.status
    if previous == status:
        return
    node.status = status
    await emit(
        session,
        NODE_STATUS_CHANGED.name,
        events.NodeStatusChanged(node_id=node.id, status=status, previous=previous, reason=reason),
    )
    publish(
        session,
        node_topic(node.id),
        NodeStatusChanged(
            node_id=str(node.id),
            status=status,
            previous=previous,
            reason=reason,
            agent_version=agent_version or node.facts.get("agent_version"),
        ),
    )


async def apply_state(
    session: Any,
    server: PanelServer,
    state: str,
    reason: str,
    exit_code: int | None = None,
    exit_signal: int | None = None,
) -> None:
    """Store a state the agent reported and publish the change. Install states change the server's life
    status (installing; install_failed when the install ends with reason install_failed, else installed);
    power states its `state`."""
    previous_state, previous_status = server.state, server.status
    if state in INSTALL_STATES:
        server.status = state
        server.state = "offline"
    elif reason == "install_failed":
        server.status = "install_failed"
        server.state = state
    else:
        if server.status == "installing" and reason != "reconciled":
            server.status = "installed"
            server.installed_at = server.installed_at or utcnow()
        server.state = state
    if (server.state, server.status) == (previous_state, previous_status):
        return
    server.state_reason = reason[:200] or None
    server.state_changed_at = utcnow()
    if server.state != previous_state:
        await emit(
            session,
            SERVER_STATE_CHANGED.name,
            events.ServerStateChanged(
                server_id=server.id,
                node_id=server.node_id,
                state=server.state,
                previous=previous_state,
                reason=reason,
            ),
        )
    if server.state == "crashed" and previous_state != "crashed":
        await emit(
            session,
            SERVER_CRASHED.name,
            events.ServerCrashed(
                server_id=server.id, node_id=server.node_id, exit_code=exit_code, exit_signal=exit_signal
            ),
        )
    publish(
        session,
        state_topic(server.id),
        ServerStateChanged(
            server_id=str(server.id),
            state=server.state,
            previous=previous_state,
            status=server.status,
            reason=reason or None,
            exit_code=exit_code,
            exit_signal=exit_signal,
        ),
    )


def stale_nodes(nodes: list[PanelNode], now: datetime, timeout: float) -> list[PanelNode]:
    """Nodes marked online whose agent has not been heard of for `timeout` seconds."""
    return [
        node
        for node in nodes
        if node.status == "online"
        and (node.last_seen_at is None or (now - node.last_seen_at).total_seconds() > timeout)
    ]
