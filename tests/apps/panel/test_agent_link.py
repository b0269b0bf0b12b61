"""The agent <-> panel link on every database: enrolment, the socket's authentication (deny side), hello
and reconcile, heartbeats and offline detection, calls through the relay (power, console) with their
lock and authorisation, realtime topics, and an agent reconnecting after the panel restarts.

The panel is served for real (uvicorn in this event loop, its own migrated database per engine); the agent
is the real AgentLink over a real WebSocket, with a FakeRuntime in place of game processes (those run in
test_games.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pentad.agent import enrol
from pentad.agent.events import ServerState
from pentad.apps.panel import repository
from pentad.apps.panel.actions.power import server_spec
from pentad.apps.panel.agent_link import AgentTimeout, NodeOffline, call
from pentad.apps.panel.models import PanelNodeCredential, PanelTemplateVariable
from pentad.apps.panel.services import sweep_stale_nodes
from pentad.core.db.base import utcnow
from pentad.core.db.migrate import upgrade_async
from pentad.panel_wire import protocol as wire
from tests.agent.fake_runtime import FakeRuntime
from tests.apps.panel.link_support import (
    WAIT,
    ServedPanel,
    agent,
    connected,
    enrolled,
    enrolment_token,
    eventually,
    grant,
    make_server,
    node_row,
    panel_settings,
    served_panel,
    server_row,
    unique,
    wait_node_status,
    wait_server_state,
)
from tests.conftest import ALL_APPS
from tests.core.realtime.conftest import Peer
from tests.factories import bearer, create_admin, create_user, free_port, issue_api_key


@pytest.fixture(scope="module")
async def panel_database(scratch_url: str) -> str:
    await upgrade_async(scratch_url, ALL_APPS)
    return scratch_url


@pytest.fixture(scope="module")
async def panel(panel_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServedPanel]:
    async with served_panel(panel_settings(tmp_path_factory.mktemp("panel"), panel_database)) as served:
        yield served


@pytest.fixture
async def http(panel: ServedPanel) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=panel.url, timeout=WAIT) as client:
        yield client


async def close_code(url: str, **options: Any) -> int | None:
    """Connect, send nothing, read until the panel closes; its close code."""
    async with connect(url, open_timeout=WAIT, **options) as socket:
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    await socket.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


async def hub_peer(panel: ServedPanel, token: str) -> Any:
    socket = await connect(panel.hub_url, open_timeout=WAIT)
    peer = Peer(socket)
    ack = await peer.request("auth", token=token)
    assert ack["ok"], ack
    return socket, peer


# --- enrolment -------------------------------------------------------------------------------------------


async def test_enrolment_swaps_a_one_time_token_for_a_private_hashed_credential(
    panel: ServedPanel, tmp_path: Path
) -> None:
    name = unique("node")
    token = await enrolment_token(panel.platform, name)
    path = tmp_path / "agent" / "credential"
    credential = await asyncio.to_thread(enrol.enrol, panel.url, token, path, facts={"cores": 2})
    assert credential.node_name == name
    assert credential.credential.startswith("pnd_")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert enrol.load_credential(path).credential == credential.credential

    async with panel.platform.database.transaction(writes=False) as session:
        stored = (await session.scalars(select(PanelNodeCredential.token_hash))).all()
    assert all(credential.credential not in value for value in stored)

    again = tmp_path / "again"
    with pytest.raises(enrol.EnrolError, match="enrolment_token_invalid"):
        await asyncio.to_thread(enrol.enrol, panel.url, token, again)
    with pytest.raises(enrol.EnrolError, match="enrolment_token_invalid"):
        await asyncio.to_thread(enrol.enrol, panel.url, "pne_nope", again)
    assert not again.exists()


# --- the socket's deny side ------------------------------------------------------------------------------


async def test_the_agent_socket_takes_only_node_credentials(panel: ServedPanel, tmp_path: Path) -> None:
    user = await create_user(panel.platform, roles=("member",))
    admin = await create_admin(panel.platform)
    assert await close_code(panel.socket_url) in (wire.CLOSE_UNAUTHORISED, 4401)  # no token (auth frame)
    assert await close_code(panel.socket_url, additional_headers=bearer("pnd_bogus_credential")) == 4401
    for person in (user, admin):
        key = await issue_api_key(panel.platform, person)
        assert await close_code(panel.socket_url, additional_headers=bearer(key)) == 4403


async def test_hello_is_checked_before_anything_else(panel: ServedPanel, tmp_path: Path) -> None:
    credential = await enrolled(panel, tmp_path)
    other = await enrolled(panel, tmp_path)
    headers = bearer(credential.credential)

    async def answer_to(first: str) -> tuple[list[str], int | None]:
        frames: list[str] = []
        async with connect(panel.socket_url, additional_headers=headers, open_timeout=WAIT) as socket:
            await socket.send(first)
            try:
                async with asyncio.timeout(WAIT):
                    while True:
                        frames.append(str(await socket.recv()))
            except ConnectionClosed as closed:
                return frames, closed.rcvd.code if closed.rcvd else None
        return frames, None

    hello = wire.Hello(node_id=credential.node_id, agent_version="x", protocol=99)
    frames, code = await answer_to(wire.encode(hello))
    assert code == wire.CLOSE_PROTOCOL_MISMATCH
    assert json.loads(frames[0])["code"] == "protocol_mismatch"

    frames, code = await answer_to(wire.encode(wire.Hello(node_id=other.node_id, agent_version="x")))
    assert code == wire.CLOSE_WRONG_NODE

    frames, code = await answer_to("garbage")
    assert code == wire.CLOSE_PROTOCOL_MISMATCH
    frames, code = await answer_to(wire.encode(wire.Heartbeat(at=0)))
    assert code == wire.CLOSE_PROTOCOL_MISMATCH
    assert (await node_row(panel.platform, credential.node_id)).status == "offline"


# --- online, reconcile, offline -------------------------------------------------------------------------


async def test_an_agent_comes_online_reconciles_its_servers_and_goes_offline(
    panel: ServedPanel, tmp_path: Path
) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    credential = await enrolled(panel, tmp_path)
    running = await make_server(panel.platform, credential.node_id, owner, state="offline")
    gone = await make_server(panel.platform, credential.node_id, owner, state="running")
    runtime = FakeRuntime()
    runtime.states[str(running.id)] = ServerState.RUNNING

    def agents_connected() -> float:
        value = panel.platform.metrics.registry.get_sample_value("pentad_panel_agents_connected")
        return value or 0.0

    before = agents_connected()
    async with agent(credential, runtime) as (link, _):
        await connected(link)
        assert agents_connected() == before + 1
        node = await node_row(panel.platform, credential.node_id)
        assert node.status == "online"
        assert node.facts["limits_backend"] == "rlimits"
        assert node.facts["agent_version"] == "test"
        assert link.welcome is not None
        assert link.welcome.heartbeat_interval == pytest.approx(0.2)
        assert (await server_row(panel.platform, running.id)).state == "running"
        assert (await server_row(panel.platform, gone.id)).state == "offline"
        first_seen = node.last_seen_at
        assert first_seen is not None

        async def heard_again() -> bool:
            seen = (await node_row(panel.platform, credential.node_id)).last_seen_at
            return seen is not None and seen > first_seen

        await eventually(heard_again, "a heartbeat")
    await wait_node_status(panel.platform, credential.node_id, "offline")

    async def gauge_back() -> bool:  # the link's end and the node's status are written separately
        return agents_connected() == before

    await eventually(gauge_back, "the connected-agents gauge to count the agent out")
    # the game keeps running while its agent is away: its state is not guessed
    assert (await server_row(panel.platform, running.id)).state == "running"


async def test_a_silent_agent_is_offline_within_the_heartbeat_timeout(
    panel: ServedPanel, tmp_path: Path
) -> None:
    credential = await enrolled(panel, tmp_path)
    headers = bearer(credential.credential)
    async with connect(panel.socket_url, additional_headers=headers, open_timeout=WAIT) as socket:
        await socket.send(wire.encode(wire.Hello(node_id=credential.node_id, agent_version="mute")))
        welcome = wire.decode_panel_frame(await socket.recv())
        assert isinstance(welcome, wire.Welcome)
        await wait_node_status(panel.platform, credential.node_id, "online")
        # say nothing more: the panel closes the socket after heartbeat_timeout
        async with asyncio.timeout(WAIT):
            await socket.wait_closed()
    await wait_node_status(panel.platform, credential.node_id, "offline")


async def test_node_watch_marks_nodes_whose_panel_process_died_offline(
    panel: ServedPanel, tmp_path: Path
) -> None:
    credential = await enrolled(panel, tmp_path)
    async with panel.platform.database.transaction() as session:
        node = await repository.get_node(session, uuid.UUID(credential.node_id))
        assert node is not None
        node.status = "online"  # as left by a panel process killed while the agent was connected
        node.last_seen_at = utcnow()
    assert node.name not in await sweep_stale_nodes(panel.platform)  # fresh: left alone

    async with panel.platform.database.transaction() as session:
        node = await repository.get_node(session, uuid.UUID(credential.node_id))
        assert node is not None
        node.last_seen_at = utcnow().replace(year=2020)
    assert node.name in await sweep_stale_nodes(panel.platform)
    assert (await node_row(panel.platform, credential.node_id)).status == "offline"


async def test_an_agent_sends_for_its_own_servers_only(panel: ServedPanel, tmp_path: Path) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    mine, theirs = await enrolled(panel, tmp_path), await enrolled(panel, tmp_path)
    foreign = await make_server(panel.platform, theirs.node_id, owner)
    headers = bearer(mine.credential)
    async with connect(panel.socket_url, additional_headers=headers, open_timeout=WAIT) as socket:
        await socket.send(wire.encode(wire.Hello(node_id=mine.node_id, agent_version="x")))
        assert isinstance(wire.decode_panel_frame(await socket.recv()), wire.Welcome)
        await socket.send(wire.encode(wire.StateChange(server_id=str(foreign.id), state="crashed")))
        await socket.send(wire.encode(wire.ConsoleBatch(server_id=str(foreign.id), lines=["spoofed"])))
        await socket.send("not json")
        codes = []
        async with asyncio.timeout(WAIT):
            while len(codes) < 3:
                frame = wire.decode_panel_frame(await socket.recv())
                if isinstance(frame, wire.Error):
                    codes.append(frame.code)
    assert codes == ["unknown_server", "unknown_server", "bad_json"]
    assert (await server_row(panel.platform, foreign.id)).state == "offline"


# --- calls ------------------------------------------------------------------------------------------------


async def test_a_call_to_a_node_without_its_agent_is_409_node_offline(
    panel: ServedPanel, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    headers = bearer(await issue_api_key(panel.platform, owner))
    credential = await enrolled(panel, tmp_path)
    server = await make_server(panel.platform, credential.node_id, owner)
    with pytest.raises(NodeOffline):
        await call(panel.platform, uuid.UUID(credential.node_id), "state", server.id)
    response = await http.post(
        f"/api/panel/servers/{server.id}/power", json={"action": "start"}, headers=headers
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "node_offline"
    response = await http.get(f"/api/panel/servers/{server.id}/console", headers=headers)
    assert response.json()["code"] == "node_offline"


async def test_power_console_and_topics_through_the_agent(
    panel: ServedPanel, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    key = await issue_api_key(panel.platform, owner)
    headers = bearer(key)
    credential = await enrolled(panel, tmp_path)
    server = await make_server(panel.platform, credential.node_id, owner)
    base = f"/api/panel/servers/{server.id}"
    hub_socket, hub = await hub_peer(panel, key)
    try:
        assert (await hub.request("subscribe", topic=f"panel.server.{server.id}.state"))["ok"]
        assert (await hub.request("subscribe", topic=f"panel.server.{server.id}.console"))["ok"]
        async with agent(credential) as (link, runtime):
            await connected(link)
            response = await http.post(f"{base}/power", json={"action": "start"}, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["state"] == "starting"
            spec = runtime.specs[str(server.id)]
            assert spec.startup.startswith("./game --port {{SERVER_PORT}}")
            assert spec.env["SERVER_PORT"].isdigit()
            assert spec.env["SERVER_MEMORY"] == "512"
            assert spec.stop.kind == "command"
            assert spec.stop.value == "quit"
            await wait_server_state(panel.platform, server.id, "running")

            response = await http.post(f"{base}/command", json={"command": "say hi"}, headers=headers)
            assert response.status_code == 204, response.text
            assert runtime.commands == [(str(server.id), "say hi")]
            response = await http.get(f"{base}/console", params={"lines": 10}, headers=headers)
            assert response.json()["lines"] == ["server ready", "> say hi"]
            response = await http.post(f"{base}/command", json={"command": "a\nb"}, headers=headers)
            assert response.status_code in (400, 422)

            ack = await hub.request(
                "call", topic=f"panel.server.{server.id}.console", method="send", data={"command": "status"}
            )
            assert ack["ok"], ack
            assert runtime.commands[-1] == (str(server.id), "status")

            runtime.report_stats(str(server.id))
            response = await http.post(f"{base}/power", json={"action": "start"}, headers=headers)
            assert response.status_code == 409
            assert response.json()["code"] == "invalid_power_state"
            response = await http.post(f"{base}/power", json={"action": "stop"}, headers=headers)
            assert response.status_code == 200, response.text
            await wait_server_state(panel.platform, server.id, "offline")
            response = await http.post(f"{base}/power", json={"action": "kill"}, headers=headers)
            assert response.status_code == 200  # kill is always allowed

        events: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not any(e["data"].get("lines") == ["> status"] for e in events) or not any(
                e["data"].get("type") == "stats" for e in events
            ):
                events.append(await hub.recv_op("event"))
        states = [e["data"]["state"] for e in events if e["data"].get("type") == "state"]
        assert states[:2] == ["starting", "running"]
        console = [line for e in events if e["data"].get("type") == "console" for line in e["data"]["lines"]]
        assert console[:3] == ["server ready", "> say hi", "> status"]
        stats = next(e["data"] for e in events if e["data"].get("type") == "stats")
        assert stats["cpu_percent"] == 12.5
    finally:
        await hub_socket.close()


async def test_one_power_action_at_a_time_and_kill_always(
    panel: ServedPanel, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    headers = bearer(await issue_api_key(panel.platform, owner))
    credential = await enrolled(panel, tmp_path)
    server = await make_server(panel.platform, credential.node_id, owner)
    base = f"/api/panel/servers/{server.id}"
    async with agent(credential) as (link, runtime):
        await connected(link)
        runtime.gate = asyncio.Event()
        first = asyncio.create_task(http.post(f"{base}/power", json={"action": "start"}, headers=headers))
        while True:
            if ("start", str(server.id)) in runtime.calls:
                break
            await asyncio.sleep(0.01)
        second = await http.post(f"{base}/power", json={"action": "restart"}, headers=headers)
        assert second.status_code == 409
        assert second.json()["code"] == "power_action_pending", second.json()
        assert second.json()["pending"] == "start"
        killed = await http.post(f"{base}/power", json={"action": "kill"}, headers=headers)
        assert killed.status_code == 200
        runtime.gate.set()
        assert (await first).status_code == 200
        again = await http.post(f"{base}/power", json={"action": "stop"}, headers=headers)
        assert again.status_code in (200, 409)
        assert again.json().get("code") != "power_action_pending"


async def test_an_agent_that_does_not_answer_is_504(panel: ServedPanel, tmp_path: Path) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    credential = await enrolled(panel, tmp_path)
    server = await make_server(panel.platform, credential.node_id, owner)
    async with agent(credential) as (link, runtime):
        await connected(link)
        runtime.gate = asyncio.Event()
        with pytest.raises(AgentTimeout):
            await call(
                panel.platform,
                uuid.UUID(credential.node_id),
                "stop",
                server.id,
                wire.StopParams(),
                timeout=0.3,
            )
        runtime.gate.set()


# --- authorisation ----------------------------------------------------------------------------------------


async def test_power_console_and_topics_deny_side(
    panel: ServedPanel, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    stranger = await create_user(panel.platform, roles=("member",))
    console_only = await create_user(panel.platform, roles=("member",))
    watcher = await create_user(panel.platform, roles=("member",))
    credential = await enrolled(panel, tmp_path)
    server = await make_server(panel.platform, credential.node_id, owner)
    await grant(panel.platform, console_only, server.id, "control.console", "websocket.connect")
    await grant(panel.platform, watcher, server.id, "websocket.connect")
    base = f"/api/panel/servers/{server.id}"
    keys = {
        name: await issue_api_key(panel.platform, user)
        for name, user in (("stranger", stranger), ("console", console_only), ("watcher", watcher))
    }
    async with agent(credential) as (link, runtime):
        await connected(link)
        runtime.states[str(server.id)] = ServerState.RUNNING
        async with panel.platform.database.transaction() as session:
            row = await repository.get_server(session, server.id)
            assert row is not None
            row.state = "running"

        stranger_headers = bearer(keys["stranger"])
        for method, path, body in (
            ("POST", "/power", {"action": "stop"}),
            ("POST", "/command", {"command": "x"}),
            ("GET", "/console", None),
            ("GET", "/stats", None),
            ("POST", "/install", {}),
        ):
            response = await http.request(method, f"{base}{path}", json=body, headers=stranger_headers)
            assert response.status_code == 404, (path, response.text)
        for action in ("start", "stop", "restart", "kill"):
            response = await http.post(
                f"{base}/power", json={"action": action}, headers=bearer(keys["console"])
            )
            assert response.status_code == 403, (action, response.text)
        response = await http.post(f"{base}/command", json={"command": "x"}, headers=bearer(keys["watcher"]))
        assert response.status_code == 403
        response = await http.post(f"{base}/command", json={"command": "x"}, headers=bearer(keys["console"]))
        assert response.status_code == 204
        assert runtime.calls == []  # nothing refused reached the agent
        response = await http.post(f"{base}/power", json={"action": "stop"})
        assert response.status_code == 401

    topics = [f"panel.server.{server.id}.console", f"panel.server.{server.id}.state"]
    expected = {"stranger": (False, False), "console": (True, True), "watcher": (False, True)}
    for name, allowed in expected.items():
        socket, peer = await hub_peer(panel, keys[name])
        try:
            got = tuple([(await peer.request("subscribe", topic=topic))["ok"] for topic in topics])
            assert got == allowed, name
            node = await peer.request("subscribe", topic=f"panel.node.{credential.node_id}.status")
            assert not node["ok"]
        finally:
            await socket.close()
    admin_socket, admin = await hub_peer(
        panel, await issue_api_key(panel.platform, await create_admin(panel.platform))
    )
    try:
        assert (await admin.request("subscribe", topic=f"panel.node.{credential.node_id}.status"))["ok"]
    finally:
        await admin_socket.close()


# --- the panel restarts -----------------------------------------------------------------------------------


async def test_the_agent_reconnects_after_the_panel_restarts(
    panel: ServedPanel, panel_database: str, tmp_path: Path
) -> None:
    settings = panel_settings(tmp_path / "restarted", panel_database)
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        async with served_panel(settings, port=port) as first:
            credential = await enrolled(first, tmp_path)
            link, _ = await stack.enter_async_context(agent(credential))
            await connected(link, 1)
            await wait_node_status(first.platform, credential.node_id, "online")
        # that panel process is gone; the agent retries with backoff until one answers on the port again
        await wait_node_status(panel.platform, credential.node_id, "offline")
        async with served_panel(settings, port=port) as second:
            await connected(link, 2)
            await wait_node_status(second.platform, credential.node_id, "online")


async def test_the_server_spec_the_agent_gets(panel: ServedPanel, tmp_path: Path) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    credential = await enrolled(panel, tmp_path)
    server = await make_server(panel.platform, credential.node_id, owner)
    async with panel.platform.database.transaction() as session:
        row = await repository.get_server(session, server.id)
        assert row is not None
        template = await repository.get_template(session, row.template_id)
        assert template is not None
        template.stop = "^C"
        template.done = ["Done (", "{{NAME}} is up"]
        template.config_files = {
            "server.properties": {
                "parser": "properties",
                "find": {"server-port": "{{server.build.default.port}}"},
            }
        }
        spec = await server_spec(panel.platform, session, row)
        template.startup = "{{CMD}}"
        template.console_input = "econ"
        session.add(
            PanelTemplateVariable(
                template_id=template.id, env_name="CMD", name="c", default_value="./x 'a b'"
            )
        )
        await session.flush()
        any_command = await server_spec(panel.platform, session, row)
        port = (await repository.list_allocations(session, server_id=row.id))[0].port

    assert spec.server_id == str(server.id)
    assert spec.stop.kind == "signal"
    assert spec.stop.value == "SIGINT"
    assert spec.done == [r"Done\ \(", r"\{\{NAME\}\}\ is\ up"]  # substrings; an unknown variable stays
    assert spec.env["SERVER_PORT"] == str(port)
    assert spec.config_files[0].find == {"server-port": str(port)}
    assert spec.limits.memory_mb == 512
    assert spec.stop_timeout == 1.0
    assert any_command.startup == "./x 'a b'"  # the whole command line, given to the shell as written
    assert any_command.console_input.kind == "econ"
    assert any_command.console_input.password  # one per start when the server has none
    assert any_command.env["ECON_PASSWORD"] == any_command.console_input.password


async def test_an_install_ends_installed_or_install_failed(
    panel: ServedPanel, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await create_user(panel.platform, roles=("member",))
    headers = bearer(await issue_api_key(panel.platform, owner))
    credential = await enrolled(panel, tmp_path)
    good = await make_server(panel.platform, credential.node_id, owner, status="installing")
    bad = await make_server(panel.platform, credential.node_id, owner, status="installing")
    async with agent(credential) as (link, runtime):
        await connected(link)
        response = await http.post(
            f"/api/panel/servers/{good.id}/power", json={"action": "start"}, headers=headers
        )
        assert response.status_code == 409
        assert response.json()["code"] == "server_not_installed"

        response = await http.post(f"/api/panel/servers/{good.id}/install", json={}, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "installing"

        async def installed() -> bool:
            return (await server_row(panel.platform, good.id)).status == "installed"

        await eventually(installed, "installed")

        runtime.install_exit = 1
        response = await http.post(f"/api/panel/servers/{bad.id}/install", json={}, headers=headers)
        assert response.status_code == 202, response.text

        async def failed() -> bool:
            return (await server_row(panel.platform, bad.id)).status == "install_failed"

        await eventually(failed, "install_failed")
        response = await http.post(
            f"/api/panel/servers/{bad.id}/power", json={"action": "start"}, headers=headers
        )
        assert response.json()["code"] == "server_not_installed"
        assert response.json()["server_status"] == "install_failed"
        response = await http.post(
            f"/api/panel/servers/{good.id}/power", json={"action": "start"}, headers=headers
        )
        assert response.status_code == 200, response.text
