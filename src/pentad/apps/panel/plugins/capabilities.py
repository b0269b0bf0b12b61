"""What a plugin may ask for, and which capability each panel method needs.

The host checks every plugin→panel call against the capabilities the admin approved (METHODS); a method
that is not listed is refused too. The panel→plugin side is gated the same way: events are delivered only
with `events.subscribe`, schedules run only with `schedule`, routes answer only with `http.routes`, the UI
panel is served only with `ui.panel`.
"""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "servers.read": "See every server: name, node, state.",
    "power.write": "Start, stop, restart and kill servers.",
    "console.write": "Send commands to servers' consoles.",
    "events.subscribe": "Receive the panel's events (server started, stopped, crashed...).",
    "http.routes": "Answer HTTP requests under /api/panel/plugins/{id}/routes/.",
    "ui.panel": "Show a page in a sandboxed frame on the plugins page.",
    "schedule": "Run tasks at a fixed interval.",
}

METHODS: dict[str, str | None] = {
    "servers.list": "servers.read",
    "servers.get": "servers.read",
    "servers.power": "power.write",
    "console.send": "console.write",
    "log": None,
}
"""Panel methods a plugin may call, with the capability each needs (None: every plugin)."""

SUBSCRIBABLE_EVENTS = (
    "panel.server_state_changed",
    "panel.server_crashed",
    "panel.node_status_changed",
    "panel.plugin_status_changed",
)
"""The domain events plugins may subscribe to."""


def widened(granted: list[str], requested: list[str]) -> list[str]:
    """The requested capabilities that were not granted (an update that asks for more needs approval)."""
    return sorted(set(requested) - set(granted))
