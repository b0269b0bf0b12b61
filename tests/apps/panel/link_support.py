"""Helpers of the agent-link tests: a served panel (uvicorn in this event loop, on a port that can be
reused to restart it), nodes enrolled through the real enrolment endpoint, agents (the real AgentLink
with a FakeRuntime), servers, and waiting for the database to say something."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from pentad.agent import enrol
from pentad.agent.link import AgentLink
from pentad.app import create_app
from pentad.apps.panel import repository
from pentad.apps.panel.actions import nodes
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.models import PanelAllocation, PanelNode, PanelServer, PanelTemplate
from pentad.apps.panel.schemas import EnrolmentTokenCreate
from pentad.apps.panel.spec import APP
from pentad.core import audit
from pentad.core.auth.models import User
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.platform import Platform
from pentad.core.realtime.wsserver import SERVE_PROTOCOL
from tests.agent.fake_runtime import FakeRuntime
from tests.conftest import make_settings
from tests.factories import free_port

WAIT = 15.0
HEARTBEAT = 0.2
HEARTBEAT_TIMEOUT = 1.0


def panel_settings(data_dir: Path, database_url: str, **panel: Any) -> Settings:
    return make_settings(
        data_dir,
        database_url,
        apps=["panel"],
        ratelimit={"enabled": False},
        jobs={"in_process_worker": False},
        realtime={"auth_timeout": 1.0},
        panel={
            "heartbeat_interval": HEARTBEAT,
            "heartbeat_timeout": HEARTBEAT_TIMEOUT,
            "agent_command_timeout": 5.0,
            "stop_timeout": 1,
            **panel,
        },
    )


@dataclass
class ServedPanel:
    platform: Platform
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/panel/agent/socket"

    @property
    def hub_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@asynccontextmanager
async def served_panel(settings: Settings, port: int | None = None) -> AsyncIterator[ServedPanel]:
    app = create_app(settings, apps=[APP])
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws=SERVE_PROTOCOL
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield ServedPanel(app.state.platform, port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT):
            await asyncio.wait([task])


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def node_row(platform: Platform, node_id: uuid.UUID | str) -> PanelNode:
    async with platform.database.transaction(writes=False) as session:
        node = await repository.get_node(session, uuid.UUID(str(node_id)))
    assert node is not None
    return node


async def server_row(platform: Platform, server_id: uuid.UUID | str) -> PanelServer:
    async with platform.database.transaction(writes=False) as session:
        server = await repository.get_server(session, uuid.UUID(str(server_id)))
    assert server is not None
    return server


async def wait_node_status(platform: Platform, node_id: uuid.UUID | str, status: str) -> None:
    async def check() -> bool:
        return (await node_row(platform, node_id)).status == status

    await eventually(check, f"node {status}")


async def wait_server_state(platform: Platform, server_id: uuid.UUID | str, state: str) -> None:
    async def check() -> bool:
        return (await server_row(platform, server_id)).state == state

    await eventually(check, f"server {state}")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def enrolment_token(platform: Platform, node_name: str) -> str:
    async with platform.database.transaction() as session:
        panel = PanelContext(session, platform, None, audit.SYSTEM)
        created = await nodes.do_create_enrolment_token(panel, EnrolmentTokenCreate(node_name=node_name))
    return created.token


async def enrolled(panel: ServedPanel, directory: Path, name: str | None = None) -> enrol.NodeCredential:
    """A new node, enrolled through POST /api/panel/agent/enrol as `pentad agent enrol` does."""
    token = await enrolment_token(panel.platform, name or unique("node"))
    return await asyncio.to_thread(enrol.enrol, panel.url, token, directory / unique("credential"))


@asynccontextmanager
async def agent(
    credential: enrol.NodeCredential, runtime: FakeRuntime | None = None
) -> AsyncIterator[tuple[AgentLink, FakeRuntime]]:
    runtime = runtime or FakeRuntime()
    link = AgentLink(credential, runtime, agent_version="test", reconnect_first=0.05, reconnect_max=0.5)
    task = asyncio.create_task(link.run())
    try:
        yield link, runtime
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def connected(link: AgentLink, sessions: int = 1) -> None:
    async def check() -> bool:
        return link.connected.is_set() and link.sessions >= sessions

    await eventually(check, f"agent session {sessions}")


async def make_server(
    platform: Platform,
    node_id: uuid.UUID | str,
    owner: User,
    *,
    state: str = "offline",
    status: str = "installed",
) -> PanelServer:
    """A server on the node (a small template of its own, one allocation), owned by `owner`."""
    async with platform.database.transaction() as session:
        template = PanelTemplate(
            slug=unique("tpl"),
            name="loop",
            startup="./game --port {{SERVER_PORT}} --name {{NAME}}",
            stop="quit",
            done=["ready"],
        )
        session.add(template)
        await session.flush()
        server = PanelServer(
            short_id=secrets.token_hex(4),
            name=unique("server"),
            owner_id=owner.id,
            node_id=uuid.UUID(str(node_id)),
            template_id=template.id,
            memory_mb=512,
            disk_mb=1024,
            status=status,
            state=state,
        )
        session.add(server)
        await session.flush()
        allocation = PanelAllocation(
            node_id=server.node_id, ip="127.0.0.1", port=20000 + secrets.randbelow(20000), server_id=server.id
        )
        session.add(allocation)
        await session.flush()
        server.allocation_id = allocation.id
        await AuthService(session, platform).grant(
            owner.id, "panel.server", str(server.id), "owner", actor=audit.SYSTEM
        )
    return server


async def grant(platform: Platform, user: User, server_id: uuid.UUID, *roles: str) -> None:
    async with platform.database.transaction() as session:
        for role in roles:
            await AuthService(session, platform).grant(
                user.id, "panel.server", str(server_id), role, actor=audit.SYSTEM
            )
