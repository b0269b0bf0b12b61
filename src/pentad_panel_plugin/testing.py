"""Test a plugin without a panel: `Harness` runs its hooks against recorded, scripted panel calls.

harness = Harness(plugin, settings={"url": ...}, capabilities=["servers.read"])
harness.answers["servers.list"] = [{"id": "s1", "name": "A", "node_id": "n", "state": "crashed",
                                    "status": "installed"}]
await harness.run_schedule("restart-crashed")
assert harness.calls == [("servers.list", {}), ("servers.power", {"server_id": "s1", "action": "start"})]
"""

from __future__ import annotations

from typing import Any

from pentad_panel_plugin import Panel, Plugin
from pentad_panel_plugin.types import Event, Request, Response


class Harness:
    def __init__(
        self, plugin: Plugin, *, settings: dict[str, Any] | None = None, capabilities: list[str] | None = None
    ) -> None:
        self.plugin = plugin
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        self.panel = Panel(self, settings or {}, capabilities or [])

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        answer = self.answers.get(method)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def emit(self, name: str, payload: dict[str, Any]) -> None:
        for hook in self.plugin.events.get(name, []):
            await hook(Event(name, payload), self.panel)

    async def run_schedule(self, name: str) -> None:
        await self.plugin.schedules[name].run(self.panel)

    async def request(self, method: str, path: str, body: str = "") -> Response:
        route = self.plugin.routes[(method.upper(), path)]
        return await route(Request(method.upper(), path, body=body), self.panel)
