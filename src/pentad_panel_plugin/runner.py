"""Runs a plugin: `python -m pentad_panel_plugin.runner --socket PATH --entry module:attribute`.

Connects to the panel's Unix socket, answers the panel's requests (`initialize`, `ping`, `event`,
`schedule`, `http.request`) with the plugin's hooks, and carries the hooks' calls to the panel. Each
request runs in its own task, so a slow hook does not block pings. The process ends when the panel closes
the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import itertools
import os
import sys
import traceback
from typing import Any

from pentad_panel_plugin import Panel, Plugin, rpc
from pentad_panel_plugin.types import Event, Request, Response


class Connection:
    """One JSON-RPC connection to the panel: sends calls and matches their answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.send(rpc.request(request_id, method, params))
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def send(self, frame: bytes) -> None:
        self.writer.write(frame)
        await self.writer.drain()

    def answered(self, message: dict[str, Any]) -> None:
        future = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in message:
            error = message["error"]
            future.set_exception(rpc.RpcError(int(error.get("code", 0)), str(error.get("message"))))
        else:
            future.set_result(message.get("result"))


class Runner:
    def __init__(self, plugin: Plugin, connection: Connection) -> None:
        self.plugin = plugin
        self.connection = connection
        self.panel = Panel(connection, {}, [])
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        try:
            value = await self.dispatch(str(message["method"]), message.get("params") or {})
        except rpc.RpcError as failure:
            await self.connection.send(rpc.error(request_id, failure))
        except MemoryError:
            # Out of its memory limit (RLIMIT_AS): die, saying so; the panel restarts it.
            os.write(2, b"MemoryError: the plugin ran out of its memory limit\n")
            os._exit(70)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            await self.connection.send(rpc.error(request_id, rpc.RpcError(rpc.FAILED, repr(exc))))
        else:
            if request_id is not None:
                await self.connection.send(rpc.result(request_id, value))

    async def dispatch(self, method: str, params: dict[str, Any]) -> Any:
        plugin = self.plugin
        if method == "initialize":
            settings, capabilities = params.get("settings") or {}, params.get("capabilities") or []
            self.panel = Panel(self.connection, settings, capabilities)
            return plugin.hooks()
        if method == "ping":
            return "pong"
        if method == "event":
            event = Event(str(params["name"]), dict(params.get("payload") or {}))
            for hook in plugin.events.get(event.name, []):
                await hook(event, self.panel)
            return None
        if method == "schedule":
            schedule = plugin.schedules.get(str(params.get("name")))
            if schedule is None:
                raise rpc.RpcError(rpc.INVALID_PARAMS, "no such schedule")
            await schedule.run(self.panel)
            return None
        if method == "http.request":
            request = Request(
                method=str(params["method"]).upper(),
                path=str(params["path"]),
                query={str(k): str(v) for k, v in (params.get("query") or {}).items()},
                body=str(params.get("body") or ""),
                user_id=params.get("user_id"),
            )
            route = plugin.routes.get((request.method, request.path))
            if route is None:
                return Response({"detail": "no such route"}, status=404).to_json()
            return (await route(request, self.panel)).to_json()
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"unknown method {method}")

    async def serve(self) -> None:
        reader = self.connection.reader
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a frame beyond the limit
                return
            if not line:
                return
            try:
                message = rpc.decode(line)
            except rpc.RpcError as failure:
                await self.connection.send(rpc.error(None, failure))
                continue
            if "method" in message:
                task = asyncio.create_task(self.handle(message))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            else:
                self.connection.answered(message)


def load(entry: str) -> Plugin:
    """The Plugin named by `module:attribute` (attribute defaults to `plugin`)."""
    module_name, _, attribute = entry.partition(":")
    plugin = getattr(importlib.import_module(module_name), attribute or "plugin")
    if not isinstance(plugin, Plugin):
        raise TypeError(f"{entry} is not a pentad_panel_plugin.Plugin")
    return plugin


async def run(socket_path: str, entry: str) -> None:
    plugin = load(entry)
    reader, writer = await asyncio.open_unix_connection(socket_path, limit=rpc.MAX_FRAME_BYTES)
    runner = Runner(plugin, Connection(reader, writer))
    try:
        await runner.serve()
    finally:
        for task in list(runner.tasks):
            task.cancel()
        with contextlib.suppress(OSError):
            writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a Pentad panel plugin.")
    parser.add_argument("--socket", required=True, help="The panel's Unix socket for this plugin.")
    parser.add_argument("--entry", required=True, help="module:attribute of the Plugin.")
    args = parser.parse_args(argv)
    sys.path.insert(0, ".")
    asyncio.run(run(args.socket, args.entry))


if __name__ == "__main__":
    main()
