"""The panel topic families as tests/test_topic_table.py walks them: each makes a resource of the owner (an
admin) and returns its topic and the REST path reading the same data (the server's stats for both server
topics: they need the same keys; the node for its status topic; the plugins list for the plugins topic)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import httpx

from pentad.apps.panel.models import PanelNode
from tests.apps.panel.link_support import make_server

if TYPE_CHECKING:
    from pentad.core.platform import Platform
    from tests.test_topic_table import Owner


async def _node(platform: Platform) -> PanelNode:
    async with platform.database.transaction() as session:
        node = PanelNode(name=f"walked-{secrets.token_hex(4)}")
        session.add(node)
    return node


async def _server_console(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    server = await make_server(platform, (await _node(platform)).id, owner.user)
    return f"panel.server.{server.id}.console", f"/api/panel/servers/{server.id}/stats"


async def _server_state(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    server = await make_server(platform, (await _node(platform)).id, owner.user)
    return f"panel.server.{server.id}.state", f"/api/panel/servers/{server.id}/stats"


async def _node_status(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    node = await _node(platform)
    return f"panel.node.{node.id}.status", f"/api/panel/nodes/{node.id}"


async def _plugins(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    return "panel.plugins", "/api/panel/plugins"


PANEL_CASES = {
    "panel.server.{server_id}.console": _server_console,
    "panel.server.{server_id}.state": _server_state,
    "panel.node.{node_id}.status": _node_status,
    "panel.plugins": _plugins,
}
