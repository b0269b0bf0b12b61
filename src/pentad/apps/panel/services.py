"""`panel.node_watch`: nodes whose agent went silent are marked offline within seconds.

The agent's socket handler marks its node offline when the socket ends, and closes a socket silent for
`heartbeat_timeout`. What it cannot cover is the panel process holding the socket dying (a crash, a
SIGKILL, a lost host): nobody is left to write `offline`. This service (placement `worker`, one per node of
the cluster) sweeps every `heartbeat_interval` seconds, and once at its start, for nodes marked online
whose last heartbeat is older than `heartbeat_timeout`, and marks them offline (published on
`panel.node.{id}.status`).
"""

from __future__ import annotations

import asyncio

from pentad.apps.panel import repository
from pentad.apps.panel.agent_link import set_node_status, stale_nodes
from pentad.apps.panel.settings import PanelSettings
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.services import ServiceContext, ServiceSpec


async def sweep_stale_nodes(platform: AppContext) -> list[str]:
    """Mark offline every online node silent for longer than heartbeat_timeout; their names."""
    settings = platform.app_settings(PanelSettings)
    async with platform.database.transaction() as session:
        nodes = stale_nodes(await repository.list_nodes(session), utcnow(), settings.heartbeat_timeout)
        for node in nodes:
            await set_node_status(session, node, "offline", "no heartbeat")
    return [node.name for node in nodes]


async def node_watch(context: ServiceContext) -> None:
    settings = context.platform.app_settings(PanelSettings)
    while True:
        for name in await sweep_stale_nodes(context.platform):
            context.log.info("panel_node_offline", node=name, reason="no heartbeat")
        await asyncio.sleep(settings.heartbeat_interval)


SERVICES = [ServiceSpec("panel.node_watch", node_watch, placement="worker", stable_after=30.0)]
