"""The SDK for Pentad panel plugins: a plugin runs in its own process and talks to the panel over JSON-RPC.

It needs nothing of the Pentad server. A plugin module defines one `Plugin` and its hooks:

    plugin = Plugin()

    @plugin.on("panel.server_crashed")            # capability events.subscribe
    async def crashed(event: Event, panel: Panel) -> None: ...

    @plugin.every(60, name="sweep")              # capability schedule (the panel drives the timer)
    async def sweep(panel: Panel) -> None:
        for server in await panel.servers():      # capability servers.read
            ...

    @plugin.route("GET", "/status")              # capability http.routes
    async def status(request: Request, panel: Panel) -> Response: ...

The panel starts it as `python -m pentad_panel_plugin.runner --socket PATH --entry module:plugin` and
enforces the capabilities the admin granted on every call. See docs/panel.md (Plugins).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pentad_panel_plugin.rpc import CAPABILITY_DENIED, RpcError
from pentad_panel_plugin.types import Event, Request, Response, Server

__all__ = [
    "CAPABILITY_DENIED",
    "Event",
    "Panel",
    "Plugin",
    "Request",
    "Response",
    "RpcError",
    "Server",
]


class Caller(Protocol):
    async def call(self, method: str, params: dict[str, Any]) -> Any: ...


class Panel:
    """The panel as the plugin sees it: each method is a call the panel checks against the granted
    capabilities (RpcError with code CAPABILITY_DENIED when it is not granted)."""

    def __init__(self, caller: Caller, settings: dict[str, Any], capabilities: list[str]) -> None:
        self._caller = caller
        self.settings = settings
        """The plugin's settings, as the admin set them."""
        self.capabilities = capabilities
        """The capabilities the admin granted."""

    async def servers(self) -> list[Server]:
        """Every server of the panel (servers.read)."""
        return [Server(**item) for item in await self._caller.call("servers.list", {})]

    async def server(self, server_id: str) -> Server:
        """One server (servers.read)."""
        return Server(**await self._caller.call("servers.get", {"server_id": server_id}))

    async def power(self, server_id: str, action: str) -> None:
        """start, stop, restart or kill a server (power.write)."""
        await self._caller.call("servers.power", {"server_id": server_id, "action": action})

    async def send_command(self, server_id: str, command: str) -> None:
        """Type a line into a server's console (console.write)."""
        await self._caller.call("console.send", {"server_id": server_id, "command": command})

    async def log(self, message: str, **fields: Any) -> None:
        """A line in the panel's log, under the plugin's name (always allowed)."""
        await self._caller.call("log", {"message": message, "fields": fields})

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Any panel method by name (for methods newer than this SDK)."""
        return await self._caller.call(method, params or {})


EventHook = Callable[[Event, Panel], Awaitable[None]]
ScheduleHook = Callable[[Panel], Awaitable[None]]
RouteHook = Callable[[Request, Panel], Awaitable[Response]]


@dataclass(frozen=True)
class Schedule:
    name: str
    every: float
    run: ScheduleHook


class Plugin:
    """A plugin's hooks, registered with decorators; the runner serves them."""

    def __init__(self) -> None:
        self.events: dict[str, list[EventHook]] = {}
        self.schedules: dict[str, Schedule] = {}
        self.routes: dict[tuple[str, str], RouteHook] = {}

    def on(self, event: str) -> Callable[[EventHook], EventHook]:
        """Run the decorated coroutine for every `event` (a panel domain event name)."""

        def register(hook: EventHook) -> EventHook:
            self.events.setdefault(event, []).append(hook)
            return hook

        return register

    def every(self, seconds: float, *, name: str | None = None) -> Callable[[ScheduleHook], ScheduleHook]:
        """Run the decorated coroutine every `seconds` (at least 1; the panel keeps the time)."""
        if seconds < 1:
            raise ValueError("a schedule runs at most once a second")

        def register(hook: ScheduleHook) -> ScheduleHook:
            key = name or hook.__name__
            self.schedules[key] = Schedule(key, float(seconds), hook)
            return hook

        return register

    def route(self, method: str, path: str) -> Callable[[RouteHook], RouteHook]:
        """Answer `method` `path` under /api/panel/plugins/{id}/routes (path starts with '/')."""
        if not path.startswith("/"):
            raise ValueError("a route's path starts with '/'")

        def register(hook: RouteHook) -> RouteHook:
            self.routes[(method.upper(), path)] = hook
            return hook

        return register

    def hooks(self) -> dict[str, Any]:
        """What the plugin asks the panel for (sent in answer to `initialize`)."""
        return {
            "events": sorted(self.events),
            "schedules": [{"name": s.name, "every": s.every} for s in self.schedules.values()],
            "routes": [{"method": method, "path": path} for method, path in sorted(self.routes)],
        }
