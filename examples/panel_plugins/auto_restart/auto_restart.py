"""Auto-restart: every minute, start the servers in state `crashed` (the agent gave up on them).

Settings: {"servers": ["<server id>", ...]} limits it to those servers (default: every server).
"""

from __future__ import annotations

from pentad_panel_plugin import Panel, Plugin, RpcError

plugin = Plugin()


@plugin.every(60, name="restart-crashed")
async def restart_crashed(panel: Panel) -> None:
    allowed = set(panel.settings.get("servers") or [])
    for server in await panel.servers():
        if server.state == "crashed" and (not allowed or server.id in allowed):
            try:
                await panel.power(server.id, "start")
                await panel.log("restarted a crashed server", server=server.id)
            except RpcError as exc:
                await panel.log("could not restart", server=server.id, error=exc.message)
