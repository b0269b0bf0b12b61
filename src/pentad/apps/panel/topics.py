"""The panel's realtime topics, what they carry, and who may read them.

- `panel.server.{server_id}.console`: the game's console output, one event per agent batch, published
  without a transaction (publish_now: no DB session per batch); history 256 batches for resume. Subscribe:
  `websocket.connect` and `control.console` on the server; call `send` ({"command": "..."}) writes a line
  to the console (`control.console`).
- `panel.server.{server_id}.state`: power state changes (published with the transaction that stores them)
  and 1 Hz stats (publish_now). Subscribe: `websocket.connect` on the server.
- `panel.node.{node_id}.status`: a node going online/offline. Admins only.
- `panel.plugins`: a plugin's status changes (starting, running, crashed with the reason, failed, stopped),
  published with the transaction that stores them. Admins only.

Clients never publish. Every refusal is a plain "no" (the hub answers `forbidden`), whether the server
does not exist or the caller lacks a key on it, so a topic does not tell which servers exist.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, Field

from pentad.apps.panel.access import server_access
from pentad.apps.panel.permissions import PANEL_ADMIN, PANEL_USE, SERVER_CONSOLE, SERVER_WEBSOCKET
from pentad.core.errors import AppError
from pentad.core.realtime.topics import TopicAccess, TopicCall, TopicSpec

if TYPE_CHECKING:
    from pentad.core.platform import Platform

CONSOLE_HISTORY = 256


def console_topic(server_id: uuid.UUID | str) -> str:
    return f"panel.server.{server_id}.console"


def state_topic(server_id: uuid.UUID | str) -> str:
    return f"panel.server.{server_id}.state"


def node_topic(node_id: uuid.UUID | str) -> str:
    return f"panel.node.{node_id}.status"


PLUGINS_TOPIC = "panel.plugins"


class PluginStatus(BaseModel):
    type: Literal["plugin"] = "plugin"
    plugin_id: str
    status: str
    reason: str | None = None
    restarts: int = 0


class ConsoleOutput(BaseModel):
    type: Literal["console"] = "console"
    server_id: str
    lines: list[str]
    dropped: int = Field(0, description="lines the agent dropped (throttled) before these")


class ServerStateChanged(BaseModel):
    type: Literal["state"] = "state"
    server_id: str
    state: str
    previous: str | None = None
    status: str = Field(description="the server's life status: installing, installed, install_failed, …")
    reason: str | None = None
    exit_code: int | None = None
    exit_signal: int | None = None


class ServerStats(BaseModel):
    type: Literal["stats"] = "stats"
    server_id: str
    state: str
    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int | None = None
    disk_bytes: int
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    net_rx_packets: int | None = None
    net_tx_packets: int | None = None
    net_unavailable: str | None = None
    uptime_s: float
    players: int | None = None
    max_players: int | None = None


class NodeStatusChanged(BaseModel):
    type: Literal["node_status"] = "node_status"
    node_id: str
    status: str
    previous: str | None = None
    reason: str = ""
    agent_version: str | None = None


class CommandSent(BaseModel):
    sent: bool = True


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _holds(access: TopicAccess, *needed: Any, actions: tuple[str, ...] = ("subscribe",)) -> bool:
    server_id = _uuid(access.params["server_id"])
    if server_id is None or access.action not in actions:
        return False
    try:
        held = await server_access(access.session, access.platform, access.principal, server_id)
    except AppError:
        return False
    return all(held.has(permission) for permission in needed)


async def _may_read_console(access: TopicAccess) -> bool:
    return await _holds(access, SERVER_WEBSOCKET, SERVER_CONSOLE, actions=("subscribe", "call"))


async def _may_follow_state(access: TopicAccess) -> bool:
    return await _holds(access, SERVER_WEBSOCKET)


async def _may_follow_node(access: TopicAccess) -> bool:
    return access.action == "subscribe" and access.principal.has(PANEL_ADMIN)


async def _may_follow_plugins(access: TopicAccess) -> bool:
    return access.action == "subscribe" and access.principal.has(PANEL_ADMIN)


async def _send_command(call: TopicCall) -> CommandSent:
    # imported here: the console action imports the agent link, which imports this module
    from pentad.apps.panel.actions import console
    from pentad.apps.panel.actions.context import PanelContext

    server_id = _uuid(call.params["server_id"])
    command = call.data.get("command")
    if server_id is None or not isinstance(command, str):
        raise AppError('Send {"command": "..."}.', code="bad_command")
    context = PanelContext(
        call.session, cast("Platform", call.platform), call.principal, call.principal.actor()
    )
    await console.do_send_command(context, server_id, command)
    return CommandSent()


TOPICS = (
    TopicSpec(
        "panel.server.{server_id}.console",
        _may_read_console,
        history_size=CONSOLE_HISTORY,
        calls={"send": _send_command},
        requires=PANEL_USE,
    ),
    TopicSpec("panel.server.{server_id}.state", _may_follow_state, history_size=100, requires=PANEL_USE),
    TopicSpec("panel.node.{node_id}.status", _may_follow_node, history_size=100, requires=PANEL_ADMIN),
    TopicSpec(PLUGINS_TOPIC, _may_follow_plugins, history_size=100, requires=PANEL_ADMIN),
)
