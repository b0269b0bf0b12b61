"""A node runs a game, end to end: a served panel, a real `pentad agent` process (enrolled with `pentad agent
enrol`, its shims, bubblewrap) and real games from Debian. Teeworlds from the shipped template: install,
start, the game answers on its UDP port, its console is read through the panel and a command typed in the
panel reaches it (econ), stop. And a real Pterodactyl egg export (PTDL_v2) whose startup needs no Docker:
imported, installed, started, commanded through stdin, stopped.

Runs once (its own SQLite file: the panel and the agent are separate processes' worth of work, not a
database check)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pentad.core.db.migrate import upgrade_async
from tests.agent.conftest import nft_reason, require_binary, require_bwrap
from tests.apps.panel.link_support import (
    ServedPanel,
    enrolment_token,
    eventually,
    node_row,
    panel_settings,
    served_panel,
    server_row,
)
from tests.conftest import ALL_APPS
from tests.factories import bearer, create_admin, issue_api_key

WAIT = 60.0
VENV_BIN = Path(sys.executable).parent
TEEWORLDS_TOKEN = b"\x12\x34\x56\x78"
# A teeworlds 0.7 control packet asking for a token (NET_CTRLMSG_TOKEN, padded to 512 bytes as required).
TEEWORLDS_PROBE = bytes([1 << 2, 0, 0]) + b"\xff\xff\xff\xff" + bytes([5]) + TEEWORLDS_TOKEN + bytes(512 - 5)

# A generic egg as the Pterodactyl panel exports it (PTDL_v2), with a startup the host's Debian runs.
SHELL_EGG: dict[str, Any] = {
    "_comment": "DO NOT EDIT: FILE GENERATED AUTOMATICALLY BY PTERODACTYL PANEL - PTERODACTYL.IO",
    "meta": {"version": "PTDL_v2", "update_url": None},
    "exported_at": "2026-12-01T12:00:00+00:00",
    "name": "Echo console",
    "author": "tests@pentad.example",
    "description": "Reads commands on stdin and answers them.",
    "features": None,
    "docker_images": {"Debian": "ghcr.io/parkervcp/yolks:debian"},
    "file_denylist": [],
    "startup": 'python3 -u -c "{{SCRIPT}}" {{GREETING}}',
    "config": {
        "files": "{}",
        "startup": '{\r\n    "done": "echo console ready"\r\n}',
        "logs": "{}",
        "stop": "quit",
    },
    "scripts": {
        "installation": {
            "script": "#!/bin/bash\ncd /mnt/server\necho installed > installed.txt\necho 'install done'\n",
            "container": "ghcr.io/parkervcp/installers:debian",
            "entrypoint": "bash",
        }
    },
    "variables": [
        {
            "name": "Script",
            "description": "The program.",
            "env_variable": "SCRIPT",
            "default_value": (
                "import sys; print('echo console ready', sys.argv[1], flush=True)\n"
                "for line in sys.stdin:\n"
                "    line = line.strip()\n"
                "    if line == 'quit': break\n"
                "    print('got: ' + line, flush=True)"
            ),
            "user_viewable": True,
            "user_editable": False,
            "rules": "required|string",
            "field_type": "text",
        },
        {
            "name": "Greeting",
            "description": "Printed at start.",
            "env_variable": "GREETING",
            "default_value": "hello",
            "user_viewable": True,
            "user_editable": True,
            "rules": "required|alpha_dash|max:20",
            "field_type": "text",
        },
    ],
}


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def udp_answer(port: int, probe: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            while True:
                sock.sendto(probe, ("127.0.0.1", port))
                try:
                    return await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.5)
                except TimeoutError:
                    continue


@dataclass
class Stack:
    panel: ServedPanel
    http: httpx.AsyncClient
    headers: dict[str, str]
    node_id: str
    agent_log: Path


async def run_command(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.fixture(scope="module")
def games_home() -> Iterator[Path]:
    """Outside pytest's 0700 temporary folders: game uids pass through every folder above theirs."""
    require_bwrap()
    home = Path(tempfile.mkdtemp(prefix="pentad-games-test-", dir="/tmp"))
    home.chmod(0o711)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
async def stack(games_home: Path) -> AsyncIterator[Stack]:
    home = games_home
    url = f"sqlite+aiosqlite:///{home / 'panel.db'}"
    await upgrade_async(url, ALL_APPS)
    async with served_panel(panel_settings(home / "panel", url, agent_command_timeout=15.0)) as panel:
        admin = await create_admin(panel.platform)
        headers = bearer(await issue_api_key(panel.platform, admin))
        env = {
            **os.environ,
            "PENTAD_AGENT__DATA_DIR": str(home / "agent"),
            "PENTAD_AGENT__STOP_TIMEOUT": "10",
            "PENTAD_AGENT__KILL_TIMEOUT": "5",
            "PENTAD_AGENT__STATS_INTERVAL": "0.5",
            "PENTAD_AGENT__CGROUP_ROOT": str(home / "no-cgroup"),
            "PENTAD_AGENT__NFT_TABLE": "pentad_agent_test",  # never the host's own agent table
        }
        code, output = await run_command(
            str(VENV_BIN / "pentad"),
            "agent",
            "enrol",
            panel.url,
            await enrolment_token(panel.platform, "games"),
            env=env,
        )
        assert code == 0, output
        credential = json.loads((home / "agent" / "credential").read_text())
        log = home / "agent.log"
        with log.open("wb") as sink:
            agent = await asyncio.create_subprocess_exec(
                str(VENV_BIN / "pentad"), "agent", "run", env=env, stdout=sink, stderr=sink
            )
        try:

            async def online() -> bool:
                assert agent.returncode is None, log.read_text()
                return (await node_row(panel.platform, credential["node_id"])).status == "online"

            await eventually(online, "the agent online")
            async with httpx.AsyncClient(base_url=panel.url, timeout=WAIT) as http:
                yield Stack(panel, http, headers, credential["node_id"], log)
        finally:
            with contextlib.suppress(ProcessLookupError):
                agent.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await agent.wait()
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
            # the games outlive the agent by design: stop whatever the tests left running
            for state_file in (home / "agent" / "run").glob("*/state.json"):
                with contextlib.suppress(
                    ValueError, KeyError, TypeError, ProcessLookupError, PermissionError
                ):
                    os.kill(int(json.loads(state_file.read_text())["shim_pid"]), signal.SIGKILL)


async def create_server(stack: Stack, template_slug: str, ports: list[int], **variables: str) -> str:
    response = await stack.http.post(
        f"/api/panel/nodes/{stack.node_id}/allocations",
        json={"ip": "127.0.0.1", "ports": [str(port) for port in ports]},
        headers=stack.headers,
    )
    assert response.status_code == 201, response.text
    allocations = {item["port"]: item["id"] for item in response.json()}
    templates = (await stack.http.get("/api/panel/templates", headers=stack.headers)).json()
    template = next(item for item in templates if item["slug"] == template_slug)
    response = await stack.http.post(
        "/api/panel/servers",
        json={
            "name": f"{template_slug}-{secrets.token_hex(3)}",
            "node_id": stack.node_id,
            "template_id": template["id"],
            "allocation_id": allocations[ports[0]],
            "memory_mb": 512,
            "disk_mb": 1024,
            "variables": variables,
        },
        headers=stack.headers,
    )
    assert response.status_code == 201, response.text
    server_id: str = response.json()["id"]
    return server_id


async def wait_for(
    stack: Stack, server_id: str, *, status: str | None = None, state: str | None = None
) -> None:
    async def reached() -> bool:
        server = await server_row(stack.panel.platform, server_id)
        assert server.status != "install_failed", stack.agent_log.read_text()[-3000:]
        return (status is None or server.status == status) and (state is None or server.state == state)

    await eventually(reached, f"server {status or ''} {state or ''}")


async def console_lines(stack: Stack, server_id: str) -> list[str]:
    response = await stack.http.get(f"/api/panel/servers/{server_id}/console", headers=stack.headers)
    assert response.status_code == 200, response.text
    lines: list[str] = response.json()["lines"]
    return lines


async def wait_console(stack: Stack, server_id: str, text: str) -> None:
    async def seen() -> bool:
        return any(text in line for line in await console_lines(stack, server_id))

    await eventually(seen, f"console line {text!r}")


async def power(stack: Stack, server_id: str, action: str) -> dict[str, Any]:
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/power", json={"action": action}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_teeworlds_server_from_the_shipped_template(stack: Stack) -> None:
    require_binary("/usr/games/teeworlds-server", "teeworlds-server")
    port, econ = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    # no econ password given: the panel makes one per start, known to the game and the agent only
    server_id = await create_server(stack, "teeworlds", [port], ECON_PORT=str(econ))
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/install", json={}, headers=stack.headers
    )
    assert response.status_code == 202, response.text
    await wait_for(stack, server_id, status="installed", state="offline")

    assert (await power(stack, server_id, "start"))["state"] == "starting"
    await wait_for(stack, server_id, state="running")
    answer = await udp_answer(port, TEEWORLDS_PROBE)
    assert TEEWORLDS_TOKEN in answer[:8]  # the game itself answered on its allocation

    async def players_counted() -> bool:  # the agent asks the game's server-info query (query:teeworlds)
        response = await stack.http.get(f"/api/panel/servers/{server_id}/stats", headers=stack.headers)
        assert response.status_code == 200, response.text
        stats = response.json()["stats"]
        return stats is not None and stats["players"] is not None

    await eventually(players_counted, "the player count in the stats")
    response = await stack.http.get(f"/api/panel/servers/{server_id}/stats", headers=stack.headers)
    stats = response.json()["stats"]
    assert (stats["players"], stats["max_players"]) == (0, 8)  # nobody joined; MAX_CLIENTS 8
    if nft_reason() is None:  # the probe and the player queries went to the game's allocated port
        assert stats["net_rx_packets"] >= 2
        assert stats["net_tx_bytes"] > 0
        assert stats["net_unavailable"] is None
    else:
        assert stats["net_rx_bytes"] is None
        assert stats["net_unavailable"]

    await wait_console(stack, server_id, "[econ]: ")
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/command",
        json={"command": "say hello from the panel"},
        headers=stack.headers,
    )
    assert response.status_code == 204, response.text
    await wait_console(stack, server_id, "*** hello from the panel")

    await power(stack, server_id, "stop")
    await wait_for(stack, server_id, state="offline")


async def test_the_any_command_template_runs_its_command(stack: Stack) -> None:
    server_id = await create_server(stack, "generic", [free_port(socket.SOCK_STREAM)])
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/install", json={}, headers=stack.headers
    )
    assert response.status_code == 202, response.text
    await wait_for(stack, server_id, status="installed", state="offline")
    await power(stack, server_id, "start")
    await wait_for(stack, server_id, state="running")  # its default command printed the done text, `ready`
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/command", json={"command": "hi"}, headers=stack.headers
    )
    assert response.status_code == 204, response.text
    await wait_console(stack, server_id, "got: hi")
    await power(stack, server_id, "kill")
    await wait_for(stack, server_id, state="offline")


async def test_a_pterodactyl_egg_runs_without_docker(stack: Stack) -> None:
    response = await stack.http.post(
        "/api/panel/templates/import", json={"egg": SHELL_EGG, "slug": "echo-console"}, headers=stack.headers
    )
    assert response.status_code == 201, response.text
    server_id = await create_server(stack, "echo-console", [free_port(socket.SOCK_STREAM)], GREETING="pentad")
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/install", json={}, headers=stack.headers
    )
    assert response.status_code == 202, response.text
    await wait_for(stack, server_id, status="installed", state="offline")

    await power(stack, server_id, "start")
    await wait_for(stack, server_id, state="running")
    await wait_console(stack, server_id, "echo console ready pentad")
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/command", json={"command": "ping 42"}, headers=stack.headers
    )
    assert response.status_code == 204, response.text
    await wait_console(stack, server_id, "got: ping 42")

    await power(stack, server_id, "stop")  # the egg's stop command, `quit`, written to stdin
    await wait_for(stack, server_id, state="offline")
    server = await server_row(stack.panel.platform, server_id)
    assert server.state_reason is not None


async def test_a_schedule_runs_its_chain_on_a_real_server(stack: Stack) -> None:
    """A schedule's chain through the core job: only when online (skipped while offline), then a command
    the game answers and a kill, in order; its history tells each step."""
    from tests.factories import run_due_jobs

    server_id = await create_server(stack, "generic", [free_port(socket.SOCK_STREAM)])
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/install", json={}, headers=stack.headers
    )
    assert response.status_code == 202, response.text
    await wait_for(stack, server_id, status="installed", state="offline")
    base = f"/api/panel/servers/{server_id}/schedules"
    body = {
        "name": "Announce and stop", "cron": "0 4 * * *", "only_when_online": True,
        "tasks": [{"action": "command", "payload": "scheduled hello"},
                  {"action": "power", "payload": "kill", "delay_s": 1}],
    }  # fmt: skip
    made = await stack.http.post(base, json=body, headers=stack.headers)
    assert made.status_code == 201, made.text
    runs = f"{base}/{made.json()['id']}/runs"

    assert (
        await stack.http.post(f"{base}/{made.json()['id']}/run", headers=stack.headers)
    ).status_code == 202
    await run_due_jobs(stack.panel.platform)
    [skipped] = (await stack.http.get(runs, headers=stack.headers)).json()
    assert skipped["status"] == "skipped"

    await power(stack, server_id, "start")
    await wait_for(stack, server_id, state="running")
    assert (
        await stack.http.post(f"{base}/{made.json()['id']}/run", headers=stack.headers)
    ).status_code == 202
    await run_due_jobs(stack.panel.platform)
    latest = (await stack.http.get(runs, headers=stack.headers)).json()[0]
    assert latest["status"] == "ok", latest
    assert [(step["action"], step["ok"]) for step in latest["steps"]] == [("command", True), ("power", True)]
    await wait_console(stack, server_id, "got: scheduled hello")
    await wait_for(stack, server_id, state="offline")
