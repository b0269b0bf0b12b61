"""The plugin host (service `panel.plugin_host`): every enabled, approved plugin as its own process.

Each plugin is a child of the service (core supervision: own process group, killed with the panel,
ChildLimits rlimits on memory and CPU, restarted with backoff when it exits) running
`python -m pentad_panel_plugin.runner`, which connects to a Unix socket the host listens on for that
plugin (mode 0700 folder). JSON-RPC 2.0, one object per line, both ways (pentad_panel_plugin.rpc).

- Every plugin→panel call is checked against the capabilities the admin granted (capabilities.METHODS):
  a denied call gets the CAPABILITY_DENIED error, an audit event and a log line; nothing happens.
- A call to the plugin (ping, event, schedule, route) that gets no answer within `plugin_call_timeout`
  kills the plugin (SIGKILL to its group); the supervisor restarts it with backoff; status `crashed`.
- A plugin that exits (a crash, the memory or CPU rlimit) is `crashed` with the reason (`memory limit`)
  and restarted with backoff.
- A plugin that writes more than `plugin_garbage_limit` malformed frames a minute, or one frame larger
  than `plugin_max_frame_bytes`, is stopped as `failed` until an admin enables it again.
Every status change is written to the plugin's row, logged, emitted as `panel.plugin_status_changed` and
published on the admins' topic `panel.plugins`.

The host holds the relay address `panel.plugin.<id>` while the plugin runs: domain events (the
`panel.plugin_dispatch` subscriber) and HTTP route calls (plugins_endpoints) reach it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pentad.apps.panel import repository
from pentad.apps.panel.actions.console import do_send_command
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.power import do_power
from pentad.apps.panel.events import PLUGIN_STATUS_CHANGED, PluginStatusChanged
from pentad.apps.panel.models import PanelPlugin
from pentad.apps.panel.plugins import sandbox
from pentad.apps.panel.plugins.capabilities import METHODS, widened
from pentad.apps.panel.plugins.store import (
    get_plugin,
    list_plugins,
    plugin_directory,
    plugin_settings,
)
from pentad.apps.panel.settings import PanelSettings
from pentad.apps.panel.topics import PLUGINS_TOPIC, PluginStatus
from pentad.core import audit
from pentad.core.context import AppContext
from pentad.core.errors import AppError
from pentad.core.events import emit
from pentad.core.realtime.publish import publish
from pentad.core.realtime.relay import RelayError
from pentad.core.services import ChildExit, ChildLimits, ChildProcess, ServiceContext, ServiceSpec
from pentad_panel_plugin import rpc

if TYPE_CHECKING:
    from pentad.core.platform import Platform

SERVICE = "panel.plugin_host"
WAKE_ADDRESS = "panel.plugins.host"
SYNC_INTERVAL = 2.0
MIB = 1024 * 1024


def relay_address(plugin_id: str) -> str:
    return f"panel.plugin.{plugin_id}"


def runnable(plugin: PanelPlugin) -> bool:
    """Enabled, and every capability it asks for approved."""
    return plugin.enabled and not widened(plugin.granted, plugin.requested)


class PluginTimeout(Exception):
    pass


@dataclass
class Running:
    """One plugin the host runs: its socket, child process and (while connected) its connection."""

    plugin_id: str
    version: str
    granted: frozenset[str]
    settings: str | None
    socket_path: str
    server: asyncio.Server | None = None
    child: ChildProcess | None = None
    writer: asyncio.StreamWriter | None = None
    hooks: dict[str, Any] = field(default_factory=dict)
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    next_id: int = 0
    garbage: deque[float] = field(default_factory=deque)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    connections: int = 0
    stopping: bool = False
    kill_reason: str | None = None
    reported_exit: ChildExit | None = None


class PluginHost:
    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.platform: AppContext = context.platform
        self.settings = self.platform.app_settings(PanelSettings)
        self.log = context.log
        self.running: dict[str, Running] = {}
        self.runtime = Path(tempfile.mkdtemp(prefix="pentad-plugins-"))
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._listen_for_wake())
                while True:
                    await self.sync()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(SYNC_INTERVAL):
                            await self.wake.wait()
                    self.wake.clear()
        finally:
            for plugin_id in list(self.running):
                await self.stop(plugin_id)
            shutil.rmtree(self.runtime, ignore_errors=True)

    async def _listen_for_wake(self) -> None:
        # Another process's host holds it (several workers on a node): this one syncs on its timer only.
        with contextlib.suppress(RelayError):
            async with self.platform.relay.hold(WAKE_ADDRESS, wait=1.0) as inbox:
                async for message in inbox:
                    self.wake.set()
                    if message.reply is not None:
                        await message.reply("ok")
        await asyncio.Event().wait()

    async def sync(self) -> None:
        """Start what should run and is not; restart what runs another version, grant or settings; stop what
        should not run."""
        async with self.platform.database.transaction(writes=False) as session:
            wanted = {p.plugin_id: p for p in await list_plugins(session) if runnable(p)}
        for plugin_id, running in list(self.running.items()):
            plugin = wanted.get(plugin_id)
            changed = plugin is not None and (
                plugin.version != running.version
                or set(plugin.granted) != running.granted
                or plugin.settings_enc != running.settings
            )
            if plugin is None or changed:
                await self.stop(plugin_id)
        for plugin_id, plugin in wanted.items():
            if plugin_id not in self.running and plugin.status != "failed":
                await self.start(plugin)

    async def start(self, plugin: PanelPlugin) -> None:
        plugin_id = plugin.plugin_id
        folder = plugin_directory(self.settings, self.platform, plugin_id)
        running = Running(
            plugin_id,
            plugin.version,
            frozenset(plugin.granted),
            plugin.settings_enc,
            str(self.runtime / f"{plugin_id}.sock"),
        )
        self.running[plugin_id] = running
        with contextlib.suppress(FileNotFoundError):
            os.unlink(running.socket_path)
        running.server = await asyncio.start_unix_server(
            lambda r, w: self._connected(running, r, w),
            running.socket_path,
            limit=self.settings.plugin_max_frame_bytes,
        )
        await self._set_status(plugin_id, "starting", None)
        limits = ChildLimits(
            memory_bytes=self.settings.plugin_memory_mb * MIB, cpu_seconds=self.settings.plugin_cpu_seconds
        )
        command = [sys.executable, "-m", "pentad_panel_plugin.runner", "--socket", running.socket_path]
        command += ["--entry", str(plugin.manifest["entry"])]
        try:
            bwrap = sandbox.choose(self.settings.plugin_sandbox)
            if bwrap is not None:
                command = sandbox.wrap(
                    bwrap,
                    command,
                    data_dir=self.platform.data_dir,
                    plugin_dir=folder,
                    socket_dir=self.runtime,
                )
            self.log.info("panel_plugin_starting", plugin=plugin_id, sandbox="bwrap" if bwrap else "none")
            running.child = await self.context.processes.start(
                f"plugin:{plugin_id}", command, cwd=folder, restart=True, limits=limits
            )
        except (OSError, AppError, ValueError, sandbox.SandboxUnavailable) as exc:
            await self._fail(running, f"could not be started: {exc}")
            return
        running.tasks.add(asyncio.create_task(self._hold_address(running)))
        running.tasks.add(asyncio.create_task(self._watch_exits(running)))

    async def stop(self, plugin_id: str, status: str = "stopped", reason: str | None = None) -> None:
        running = self.running.pop(plugin_id, None)
        if running is None:
            return
        running.stopping = True
        if running.server is not None:
            running.server.close()
        self._close(running)
        if running.child is not None:
            await running.child.stop()
        for task in list(running.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(running.socket_path)
        await self._set_status(plugin_id, status, reason)

    # ------------------------------------------------------------ the connection

    async def _connected(
        self, running: Running, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if running.writer is not None or running.stopping:  # one connection per plugin process
            writer.close()
            return
        running.writer = writer
        running.connections += 1
        reader_task = asyncio.create_task(self._read(running, reader))
        running.tasks.add(reader_task)
        try:
            await self._initialize(running)
            await reader_task
        except (PluginTimeout, ConnectionError):
            pass  # killed for the timeout, or it died: the exit watcher reports it
        except rpc.RpcError as exc:
            if not running.stopping:
                self._kill(running, f"refused to initialize: {exc.message[:200]}")
        finally:
            reader_task.cancel()
            running.tasks.discard(reader_task)
            if running.writer is writer:
                self._close(running)
            else:  # already closed (a kill), maybe replaced by the restarted process's connection
                writer.close()

    async def _initialize(self, running: Running) -> None:
        async with self.platform.database.transaction(writes=False) as session:
            plugin = await get_plugin(session, running.plugin_id)
            settings = plugin_settings(self.platform, plugin) if plugin is not None else {}
        hooks = await self.call(
            running, "initialize",
            {"plugin_id": running.plugin_id, "capabilities": sorted(running.granted), "settings": settings},
        )  # fmt: skip
        running.hooks = hooks if isinstance(hooks, dict) else {}
        await self._report_exit(running)  # a restart: its crash is told before it runs again
        await self._set_status(running.plugin_id, "running", None)
        running.tasks.add(asyncio.create_task(self._ping(running)))
        if "schedule" in running.granted:
            for schedule in running.hooks.get("schedules") or []:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    every = max(1.0, float(schedule["every"]))
                    task = asyncio.create_task(self._schedule(running, str(schedule["name"]), every))
                    running.tasks.add(task)

    def _close(self, running: Running) -> None:
        writer, running.writer = running.writer, None
        if writer is not None:
            writer.close()
        for future in running.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the plugin's connection ended"))
        running.pending.clear()

    async def _read(self, running: Running, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                await self._fail(running, "sent a frame larger than plugin_max_frame_bytes")
                return
            except ConnectionError:
                return
            if not line:
                return
            try:
                message = rpc.decode(line)
            except rpc.RpcError as failure:
                if await self._garbage(running, failure.message):
                    return
                continue
            if "method" in message:
                task = asyncio.create_task(self._answer(running, message))
                running.tasks.add(task)
                task.add_done_callback(running.tasks.discard)
            else:
                future = running.pending.get(message.get("id"))  # type: ignore[arg-type]
                if future is None or future.done():
                    if await self._garbage(running, "an answer to no call"):
                        return
                    continue
                if "error" in message:
                    error = message["error"]
                    future.set_exception(rpc.RpcError(int(error.get("code", 0)), str(error.get("message"))))
                else:
                    future.set_result(message.get("result"))

    async def _garbage(self, running: Running, what: str) -> bool:
        """Count a malformed frame; True when the plugin was stopped for too many."""
        now = time.monotonic()
        running.garbage.append(now)
        while running.garbage and running.garbage[0] < now - 60:
            running.garbage.popleft()
        self.log.warning("panel_plugin_garbage", plugin=running.plugin_id, problem=what[:200])
        if len(running.garbage) > self.settings.plugin_garbage_limit:
            await self._fail(running, f"sent malformed JSON-RPC ({what[:200]})")
            return True
        return False

    async def _send(self, running: Running, frame: bytes) -> None:
        writer = running.writer
        if writer is None:
            raise ConnectionError("the plugin is not connected")
        writer.write(frame)
        await writer.drain()

    async def call(self, running: Running, method: str, params: dict[str, Any]) -> Any:
        """Call the plugin; its answer. A plugin that does not answer in time is killed (PluginTimeout)."""
        running.next_id += 1
        request_id = running.next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        running.pending[request_id] = future
        try:
            await self._send(running, rpc.request(request_id, method, params))
            async with asyncio.timeout(self.settings.plugin_call_timeout):
                return await future
        except TimeoutError:
            self._kill(running, f"did not answer {method} within {self.settings.plugin_call_timeout:g} s")
            raise PluginTimeout(method) from None
        finally:
            running.pending.pop(request_id, None)

    def _kill(self, running: Running, reason: str) -> None:
        """SIGKILL to the plugin's process group (the supervisor restarts it); `reason` is its status."""
        self.log.warning("panel_plugin_killed", plugin=running.plugin_id, reason=reason)
        running.kill_reason = reason
        child = running.child
        pid = child.pid if child is not None else None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self._close(running)

    # ------------------------------------------------------------ plugin -> panel

    async def _answer(self, running: Running, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        method = str(message["method"])
        params = message.get("params")
        try:
            if method not in METHODS:
                raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"unknown method {method}")
            needed = METHODS[method]
            if needed is not None and needed not in running.granted:
                await self._denied(running, method, needed)
                raise rpc.RpcError(rpc.CAPABILITY_DENIED, f"{method} needs the capability {needed}")
            if not isinstance(params, dict):
                params = {}
            value = await self._panel_method(running, method, params)
        except rpc.RpcError as failure:
            answer = rpc.error(request_id, failure)
        except AppError as exc:
            answer = rpc.error(request_id, rpc.RpcError(rpc.FAILED, f"{exc.code}: {exc.message}"))
        except (KeyError, ValueError, TypeError) as exc:
            answer = rpc.error(request_id, rpc.RpcError(rpc.INVALID_PARAMS, f"bad params: {exc}"))
        else:
            answer = rpc.result(request_id, value)
        if request_id is not None:
            with contextlib.suppress(ConnectionError):
                await self._send(running, answer)

    async def _denied(self, running: Running, method: str, needed: str) -> None:
        self.log.warning("panel_plugin_denied", plugin=running.plugin_id, method=method, capability=needed)
        async with self.platform.database.transaction() as session:
            audit.record(
                session, audit.Actor("system", label=f"plugin {running.plugin_id}"),
                "panel.plugin.denied", resource_type="panel.plugin", resource_id=running.plugin_id,
                method=method, capability=needed,
            )  # fmt: skip

    async def _panel_method(self, running: Running, method: str, params: dict[str, Any]) -> Any:
        if method == "log":
            self.log.info(
                "panel_plugin_log", plugin=running.plugin_id, message=str(params.get("message"))[:500]
            )
            return None
        if method == "servers.list":
            async with self.platform.database.transaction(writes=False) as session:
                return [_server(s) for s in await repository.list_servers(session)]
        server_id = uuid.UUID(str(params["server_id"]))
        if method == "servers.get":
            async with self.platform.database.transaction(writes=False) as session:
                server = await repository.get_server(session, server_id)
                if server is None:
                    raise rpc.RpcError(rpc.INVALID_PARAMS, "no such server")
                return _server(server)
        platform = cast("Platform", self.platform)
        actor = audit.Actor("system", label=f"plugin {running.plugin_id}")
        async with platform.database.transaction() as session:
            context = PanelContext(session, platform, None, actor)
            if method == "servers.power":
                action = str(params["action"])
                if action not in ("start", "stop", "restart", "kill"):
                    raise rpc.RpcError(rpc.INVALID_PARAMS, "action is start, stop, restart or kill")
                result = await do_power(context, server_id, action)  # type: ignore[arg-type]
                return {"state": result.state}
            await do_send_command(context, server_id, str(params["command"]))
            return None

    # ------------------------------------------------------------ panel -> plugin

    async def _hold_address(self, running: Running) -> None:
        """Relay messages for this plugin: {"kind": "event"|"http", ...} → a call to the plugin."""
        async with self.platform.relay.hold(relay_address(running.plugin_id), take_over=True) as inbox:
            async for message in inbox:
                task = asyncio.create_task(self._relayed(running, message.data, message.reply))
                running.tasks.add(task)
                task.add_done_callback(running.tasks.discard)

    async def _relayed(self, running: Running, data: bytes | str, reply: Callable[..., Any] | None) -> None:
        answer: dict[str, Any]
        try:
            message = json.loads(data)
            kind = message.get("kind")
            if kind == "event":
                if "events.subscribe" in running.granted and message["name"] in (
                    running.hooks.get("events") or []
                ):
                    await self.call(
                        running, "event", {"name": message["name"], "payload": message["payload"]}
                    )
                answer = {"ok": True}
            elif kind == "http" and "http.routes" in running.granted:
                answer = {
                    "ok": True,
                    "response": await self.call(running, "http.request", message["request"]),
                }
            else:
                answer = {"ok": False, "error": "not allowed"}
        except PluginTimeout:
            answer = {"ok": False, "error": "the plugin did not answer in time"}
        except (rpc.RpcError, ConnectionError) as exc:
            answer = {"ok": False, "error": str(exc)[:300]}
        except (ValueError, KeyError, TypeError):
            answer = {"ok": False, "error": "bad message"}
        if reply is not None:
            await reply(json.dumps(answer))

    @staticmethod
    def _connected_since(running: Running, generation: int) -> bool:
        """The connection that started a loop is still the plugin's."""
        return running.writer is not None and running.connections == generation

    async def _ping(self, running: Running) -> None:
        generation = running.connections
        with contextlib.suppress(PluginTimeout, ConnectionError, rpc.RpcError):
            while self._connected_since(running, generation):
                await asyncio.sleep(self.settings.plugin_ping_interval)
                if self._connected_since(running, generation):
                    await self.call(running, "ping", {})

    async def _schedule(self, running: Running, name: str, every: float) -> None:
        generation = running.connections
        with contextlib.suppress(PluginTimeout, ConnectionError):
            while self._connected_since(running, generation):
                await asyncio.sleep(every)
                if not self._connected_since(running, generation):
                    return
                try:
                    await self.call(running, "schedule", {"name": name})
                except rpc.RpcError as exc:
                    self.log.warning(
                        "panel_plugin_schedule_failed", plugin=running.plugin_id, error=exc.message
                    )

    # ------------------------------------------------------------ exits and status

    async def _watch_exits(self, running: Running) -> None:
        """Report each exit of the plugin's process (the supervisor restarts it)."""
        while running.child is not None and not running.stopping:
            await asyncio.sleep(0.2)
            await self._report_exit(running)

    async def _report_exit(self, running: Running) -> None:
        """Report the process's last exit once, from the watcher or from the restarted process's start,
        whichever comes first: a restart quicker than the watcher's poll must not have its "running" status
        overwritten by the earlier crash."""
        exit = running.child.exit if running.child is not None else None
        if exit is None or exit is running.reported_exit or running.stopping:
            return
        running.reported_exit = exit
        if running.kill_reason is not None:
            reason, running.kill_reason = running.kill_reason, None
        elif exit.limit_exceeded is not None:
            reason = f"killed by its {exit.limit_exceeded} limit"
        elif exit.signal is not None:
            reason = f"ended by signal {signal.Signals(exit.signal).name}"
        else:
            reason = f"exited with status {exit.returncode}"
        await self._crashed(running, reason)

    async def _crashed(self, running: Running, reason: str) -> None:
        self.log.warning("panel_plugin_crashed", plugin=running.plugin_id, reason=reason)
        await self._set_status(running.plugin_id, "crashed", reason, restarted=True)

    async def _fail(self, running: Running, reason: str) -> None:
        self.log.error("panel_plugin_failed", plugin=running.plugin_id, reason=reason)
        task = asyncio.create_task(self.stop(running.plugin_id, "failed", reason))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _set_status(
        self, plugin_id: str, status: str, reason: str | None, *, restarted: bool = False
    ) -> None:
        async with self.platform.database.transaction() as session:
            plugin = await get_plugin(session, plugin_id)
            if plugin is None or (plugin.status == status and plugin.status_reason == reason):
                return
            previous = plugin.status
            plugin.status, plugin.status_reason = status, reason
            if restarted:
                plugin.restarts += 1
            update = PluginStatus(plugin_id=plugin_id, status=status, reason=reason, restarts=plugin.restarts)
            publish(session, PLUGINS_TOPIC, update)
            await emit(
                session,
                PLUGIN_STATUS_CHANGED.name,
                PluginStatusChanged(
                    plugin_id=plugin_id, status=status, previous=previous, reason=reason or ""
                ),
            )
        self.log.info("panel_plugin_status", plugin=plugin_id, status=status, reason=reason)


def _server(server: Any) -> dict[str, Any]:
    return {
        "id": str(server.id), "name": server.name, "node_id": str(server.node_id), "state": server.state,
        "status": server.status,
    }  # fmt: skip


async def plugin_host(context: ServiceContext) -> None:
    await PluginHost(context).run()


async def wake_host(platform: AppContext) -> None:
    """Ask the plugin host to look at the plugins' rows now (it does every SYNC_INTERVAL anyway)."""
    with contextlib.suppress(RelayError):
        await platform.relay.send(WAKE_ADDRESS, "sync")


SERVICES = [ServiceSpec(SERVICE, plugin_host, placement="worker", stable_after=30.0, stop_timeout=5.0)]
