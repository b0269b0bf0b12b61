"""Two nodes on one panel, every part a real process (issue 11, "Done when"): `pentad serve` with the panel,
two `pentad agent run` processes with their own data folders and credentials, and their games (Debian's
teeworlds-server on the first node when installed, else the "any command" template; the "any command"
template on the second).

One scenario, in order: both agents online, each runs its game; the panel is stopped and started again →
both agents reconnect and their games are still `running`; the first agent is killed with SIGKILL → its
game keeps running (the game answers on its port, its shim lives) → the agent started again re-attaches:
a command typed after the re-attach comes back on the console topic, and stats flow again.

Runs once (its own SQLite file; the database engine is not what it tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from pentad.agent import enrol
from pentad.apps.panel.spec import APP
from pentad.core.cli_support import build_platform
from pentad.core.db.migrate import upgrade_async
from tests.agent.conftest import require_bwrap
from tests.apps.panel.link_support import enrolment_token, panel_settings
from tests.apps.panel.test_games import TEEWORLDS_PROBE, TEEWORLDS_TOKEN, VENV_BIN, free_port, udp_answer
from tests.conftest import ALL_APPS
from tests.core.realtime.conftest import Peer
from tests.factories import TEST_CRYPTO_KEYS, TEST_SECRET_KEY, bearer, create_admin, issue_api_key

WAIT = 60.0
HAS_TEEWORLDS = Path("/usr/games/teeworlds-server").exists()


@dataclass
class Node:
    name: str
    node_id: str
    data_dir: Path
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None


@dataclass
class Cluster:
    home: Path
    port: int
    env: dict[str, str]
    headers: dict[str, str]
    nodes: list[Node] = field(default_factory=list)
    panel: asyncio.subprocess.Process | None = None
    panel_starts: int = 0
    servers: dict[str, str] = field(default_factory=dict)  # role -> server id, for the tests that follow

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=WAIT)


async def eventually(check: Any, what: str, seconds: float = WAIT) -> Any:
    """The first truthy answer of `check()` (polled), or the test fails naming `what`."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                found = await check()
                if found:
                    return found
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


async def start_panel(cluster: Cluster) -> None:
    cluster.panel_starts += 1
    log = cluster.home / f"panel-{cluster.panel_starts}.log"
    argv = ["serve", "--host", "127.0.0.1", "--port", str(cluster.port), "--workers", "1"]
    with log.open("wb") as sink:
        cluster.panel = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "pentad"), *argv, env=cluster.env, cwd=cluster.home, stdout=sink, stderr=sink
        )
    process = cluster.panel

    async def up() -> bool:
        assert process.returncode is None, tail(log)
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"{cluster.url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, "the panel serving")


async def stop(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(20):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


async def start_agent(node: Node) -> None:
    with node.log.open("ab") as sink:
        node.process = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "pentad"), "agent", "run", env=node.env, stdout=sink, stderr=sink
        )


def kill_shims(data_dir: Path) -> None:
    """The games outlive their agent by design: stop whatever the test left running."""
    for state_file in (data_dir / "run").glob("*/state.json"):
        with contextlib.suppress(ValueError, KeyError, TypeError, ProcessLookupError, PermissionError):
            os.kill(int(json.loads(state_file.read_text())["shim_pid"]), signal.SIGKILL)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """Outside pytest's 0700 temporary folders: game uids pass through every folder above theirs."""
    require_bwrap()
    home = Path(tempfile.mkdtemp(prefix="pentad-multinode-", dir="/tmp"))
    home.chmod(0o711)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
async def cluster(home: Path) -> AsyncIterator[Cluster]:
    url = f"sqlite+aiosqlite:///{home / 'panel.db'}"
    await upgrade_async(url, ALL_APPS)
    # The accounts and the enrolment tokens are written before the panel process starts (as its CLI would).
    platform = build_platform([APP], panel_settings(home / "panel", url))
    await platform.open_resources()
    try:
        admin = await create_admin(platform)
        headers = bearer(await issue_api_key(platform, admin))
        tokens = [await enrolment_token(platform, name) for name in ("node-a", "node-b")]
    finally:
        await platform.close()
    clean = {name: value for name, value in os.environ.items() if not name.startswith("PENTAD_")}
    env = {
        **clean,
        "PENTAD_ENVIRONMENT": "test",
        "PENTAD_DATA_DIR": str(home / "panel"),
        "PENTAD_DATABASE__URL": url,
        "PENTAD_APPS": "panel",
        "PENTAD_AUTH__SECRET_KEY": TEST_SECRET_KEY,
        "PENTAD_CRYPTO__KEYS": TEST_CRYPTO_KEYS,
        "PENTAD_RATELIMIT__ENABLED": "false",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_PANEL__HEARTBEAT_INTERVAL": "0.5",
        # a loaded machine may stall a process for seconds; offline here comes from the socket closing
        "PENTAD_PANEL__HEARTBEAT_TIMEOUT": "10",
        "PENTAD_PANEL__AGENT_COMMAND_TIMEOUT": "30",
        "PENTAD_PANEL__STATS_INTERVAL": "0.5",
        "PENTAD_JOBS__POLL_INTERVAL": "0.2",  # the transfer job runs in the panel's own worker
    }
    cluster = Cluster(home, free_port(socket.SOCK_STREAM), env, headers)
    await start_panel(cluster)
    try:
        for name, token in zip(("node-a", "node-b"), tokens, strict=True):
            data_dir = home / name
            credential = await asyncio.to_thread(
                enrol.enrol, cluster.url, token, data_dir / "credential"
            )  # what `pentad agent enrol` does (its own test: test_games.py)
            agent_env = {
                **clean,
                "PENTAD_AGENT__DATA_DIR": str(data_dir),
                "PENTAD_AGENT__CGROUP_ROOT": str(home / "no-cgroup"),
                "PENTAD_AGENT__NFT_TABLE": "pentad_agent_test",  # never the host's own agent table
                "PENTAD_AGENT__RECONNECT_MAX": "1",
                "PENTAD_AGENT__STOP_TIMEOUT": "10",
                "PENTAD_AGENT__KILL_TIMEOUT": "5",
            }
            node = Node(name, credential.node_id, data_dir, agent_env, home / f"{name}.log")
            cluster.nodes.append(node)
        await asyncio.gather(*(start_agent(node) for node in cluster.nodes))
        yield cluster
    finally:
        await asyncio.gather(*(stop(node.process) for node in cluster.nodes))
        await stop(cluster.panel)
        for node in cluster.nodes:
            kill_shims(node.data_dir)


async def node_status(cluster: Cluster, node: Node) -> str:
    async with cluster.http() as http:
        response = await http.get(f"/api/panel/nodes/{node.node_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def wait_online(cluster: Cluster, *nodes: Node) -> None:
    for node in nodes:

        async def online(node: Node = node) -> bool:
            assert node.process is not None
            assert node.process.returncode is None, tail(node.log)
            return await node_status(cluster, node) == "online"

        await eventually(online, f"{node.name} online")


async def server(cluster: Cluster, server_id: str) -> dict[str, Any]:
    async with cluster.http() as http:
        response = await http.get(f"/api/panel/servers/{server_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def wait_server(cluster: Cluster, server_id: str, node: Node, **expected: str) -> None:
    async def reached() -> bool:
        found = await server(cluster, server_id)
        assert found["status"] != "install_failed", tail(node.log)
        return all(found[key] == value for key, value in expected.items())

    await eventually(reached, f"server {expected}")


async def game_server(cluster: Cluster, node: Node, *, teeworlds: bool) -> tuple[str, int]:
    """A server on `node`, installed and running; its id and its (game) port."""
    port = free_port(socket.SOCK_DGRAM if teeworlds else socket.SOCK_STREAM)
    variables = {"ECON_PORT": str(free_port(socket.SOCK_STREAM))} if teeworlds else {}
    async with cluster.http() as http:
        response = await http.post(
            f"/api/panel/nodes/{node.node_id}/allocations", json={"ip": "127.0.0.1", "ports": [str(port)]}
        )
        assert response.status_code == 201, response.text
        allocation = response.json()[0]["id"]
        templates = (await http.get("/api/panel/templates")).json()
        slug = "teeworlds" if teeworlds else "generic"
        template = next(item["id"] for item in templates if item["slug"] == slug)
        body = {
            "name": f"{slug}-{node.name}", "node_id": node.node_id, "template_id": template,
            "allocation_id": allocation, "memory_mb": 512, "disk_mb": 256, "variables": variables,
        }  # fmt: skip
        response = await http.post("/api/panel/servers", json=body)
        assert response.status_code == 201, response.text
        server_id: str = response.json()["id"]
        response = await http.post(f"/api/panel/servers/{server_id}/install", json={})
        assert response.status_code == 202, response.text
        await wait_server(cluster, server_id, node, status="installed", state="offline")
        response = await http.post(f"/api/panel/servers/{server_id}/power", json={"action": "start"})
        assert response.status_code == 200, response.text
        await wait_server(cluster, server_id, node, state="running")
    return server_id, port


def shim_pid(node: Node, server_id: str) -> int:
    pid: int = json.loads((node.data_dir / "run" / server_id / "state.json").read_text())["shim_pid"]
    return pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def hub(cluster: Cluster, *topics: str) -> Peer:
    socket_ = await connect(f"ws://127.0.0.1:{cluster.port}/ws", open_timeout=WAIT)
    peer = Peer(socket_)
    assert (await peer.request("auth", token=cluster.headers["Authorization"].removeprefix("Bearer ")))["ok"]
    for topic in topics:
        assert (await peer.request("subscribe", topic=topic))["ok"]
    return peer


async def test_two_agents_survive_a_panel_restart_and_an_agent_kill(cluster: Cluster) -> None:
    first, second = cluster.nodes
    await wait_online(cluster, first, second)
    teeworlds = HAS_TEEWORLDS
    (game, game_port), (other, _) = await asyncio.gather(
        game_server(cluster, first, teeworlds=teeworlds), game_server(cluster, second, teeworlds=False)
    )
    assert (await server(cluster, game))["node_id"] == first.node_id
    assert (await server(cluster, other))["node_id"] == second.node_id
    cluster.servers = {"game": game, "other": other}

    # the panel restarts: both agents reconnect by themselves, their games ran on meanwhile
    await stop(cluster.panel)
    assert panel_gone(cluster)
    await start_panel(cluster)
    await wait_online(cluster, first, second)
    for server_id, node in ((game, first), (other, second)):
        await wait_server(cluster, server_id, node, state="running")

    # the first agent is SIGKILLed: its game keeps running, the panel sees the node offline
    pid = shim_pid(first, game)
    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    await first.process.wait()

    async def offline() -> bool:
        return await node_status(cluster, first) == "offline"

    await eventually(offline, "the killed agent's node offline")
    assert alive(pid)
    if teeworlds:
        assert TEEWORLDS_TOKEN in (await udp_answer(game_port, TEEWORLDS_PROBE))[:8]
    assert (await server(cluster, game))["state"] == "running"  # kept while its agent is away
    assert await node_status(cluster, second) == "online"

    # started again, the agent re-attaches to the game's shim: console and stats flow again
    await start_agent(first)
    await wait_online(cluster, first)
    assert shim_pid(first, game) == pid  # the same shim, not a new start
    await wait_server(cluster, game, first, state="running")
    peer = await hub(cluster, f"panel.server.{game}.console", f"panel.server.{game}.state")
    try:
        command, echo = ("say typed after re-attach", "*** typed after re-attach") if teeworlds else (
            "typed after re-attach", "got: typed after re-attach")  # fmt: skip
        async with cluster.http() as http:

            async def sent() -> bool:
                # econ reconnects with the re-attached agent: a command may need a second try
                response = await http.post(f"/api/panel/servers/{game}/command", json={"command": command})
                assert response.status_code in (204, 409), response.text
                return response.status_code == 204

            await eventually(sent, "the command accepted")
        seen_line = seen_stats = False
        async with asyncio.timeout(WAIT):
            while not (seen_line and seen_stats):
                event = (await peer.recv_op("event"))["data"]
                if event.get("type") == "console":
                    seen_line = seen_line or any(echo in line for line in event["lines"])
                elif event.get("type") == "stats":
                    assert event["state"] == "running"
                    assert event["memory_bytes"] > 0
                    # teeworlds also answers the agent's server-info query: its players are counted
                    seen_stats = not teeworlds or event["players"] == 0
    finally:
        await peer.ws.close()


def panel_gone(cluster: Cluster) -> bool:
    """The panel process is gone: its port refuses connections."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", cluster.port)) != 0


async def test_a_server_moves_to_the_other_node(cluster: Cluster) -> None:
    """A stopped server's files go from the second node to the first through the panel's storage; it
    starts there on its new allocation, the old node's copy and allocation are gone. Refusals first."""
    first, second = cluster.nodes
    game, other = cluster.servers["game"], cluster.servers["other"]
    target_port = free_port(socket.SOCK_STREAM)
    world = os.urandom(3 * 512 * 1024 + 1234)  # several chunks each way
    async with cluster.http() as http:
        killed = await http.post(f"/api/panel/servers/{other}/power", json={"action": "kill"})
        assert killed.status_code == 200, killed.text
        await wait_server(cluster, other, second, state="offline")
        uploaded = await http.post(
            f"/api/panel/servers/{other}/files/upload", params={"path": "world/save.dat"}, content=world
        )
        assert uploaded.status_code == 201, uploaded.text
        made = await http.post(
            f"/api/panel/nodes/{first.node_id}/allocations",
            json={"ip": "127.0.0.1", "ports": [str(target_port)]},
        )
        assert made.status_code == 201, made.text
        allocation = made.json()[0]["id"]
        before = await server(cluster, other)

        running = await http.post(f"/api/panel/servers/{game}/transfer", json={"node_id": second.node_id})
        assert running.status_code == 409, running.text
        assert running.json()["code"] == "server_not_stopped"
        same = await http.post(f"/api/panel/servers/{other}/transfer", json={"node_id": second.node_id})
        assert same.status_code == 409
        assert same.json()["code"] == "transfer_same_node"

        moving = await http.post(
            f"/api/panel/servers/{other}/transfer",
            json={"node_id": first.node_id, "allocation_id": allocation},
        )
        assert moving.status_code == 202, moving.text
        assert moving.json()["status"] == "transferring"
        started = await http.post(f"/api/panel/servers/{other}/power", json={"action": "start"})
        assert started.status_code == 409  # not while its files move

        async def settled() -> bool:
            return str((await server(cluster, other))["status"]) != "transferring"

        await eventually(settled, "the transfer's end")
        moved = await server(cluster, other)
        activity = (await http.get(f"/api/panel/servers/{other}/activity")).json()
        panel_log = tail(cluster.home / f"panel-{cluster.panel_starts}.log")
        assert moved["node_id"] == first.node_id, f"{activity[0]['details']} {panel_log[-800:]}"
        assert moved["status"] == "installed"
        assert [item["id"] for item in moved["allocations"]] == [allocation]
        assert (first.data_dir / "servers" / other / "world" / "save.dat").read_bytes() == world
        assert not (second.data_dir / "servers" / other).exists()
        free = await http.get(f"/api/panel/nodes/{second.node_id}/allocations", params={"free": "true"})
        assert before["allocations"][0]["id"] in {item["id"] for item in free.json()}

        restarted = await http.post(f"/api/panel/servers/{other}/power", json={"action": "start"})
        assert restarted.status_code == 200, restarted.text
        await wait_server(cluster, other, first, state="running")
        response = await http.post(f"/api/panel/servers/{other}/command", json={"command": "moved"})
        assert response.status_code == 204, response.text

        async def echoed() -> bool:
            lines = (await http.get(f"/api/panel/servers/{other}/console")).json()["lines"]
            return any("got: moved" in line for line in lines)

        await eventually(echoed, "the moved server's echo")
        actions = {entry["action"] for entry in activity}
        assert {"panel.server.transfer", "panel.server.transfer_done"} <= actions
