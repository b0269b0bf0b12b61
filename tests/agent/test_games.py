"""Real games from Debian in the sandbox: minetest-server and teeworlds-server start under a shim, answer
on their UDP port, show their console, take commands (teeworlds through its econ port: it does not read
stdin), report stats, and stop cleanly."""

from __future__ import annotations

import asyncio
import secrets
import socket

from pentad.agent.events import ServerState
from pentad.agent.runtime import Runtime
from pentad.panel_wire.configfiles import ConfigFile
from pentad.panel_wire.serverspec import ConsoleInput, ServerSpec, StopSpec
from tests.agent.conftest import WAIT, Events, require_binary

MINETEST_PROBE = bytes.fromhex("4f45740300000003ffdc01")  # reliable ORIGINAL, peer 0: "hello"
TEEWORLDS_TOKEN = b"\x12\x34\x56\x78"
# A teeworlds 0.7 control packet asking for a token (NET_CTRLMSG_TOKEN, padded to 512 bytes as required).
TEEWORLDS_PROBE = bytes([1 << 2, 0, 0]) + b"\xff\xff\xff\xff" + bytes([5]) + TEEWORLDS_TOKEN + bytes(512 - 5)


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def udp_answer(port: int, probe: bytes) -> bytes:
    """Send `probe` until the game answers (it may still be loading); its answer."""
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


async def test_minetest_server_answers_on_its_port(opened: tuple[Runtime, Events]) -> None:
    require_binary("/usr/games/minetestserver", "minetest-server")
    runtime, events = opened
    port = free_port(socket.SOCK_DGRAM)
    spec = ServerSpec(
        server_id="minetest",
        startup=(
            "touch minetest.conf && exec minetestserver --config ./minetest.conf --port {{SERVER_PORT}}"
            " --world ./world --gameid minetest --logfile ''"
        ),
        env={"SERVER_PORT": str(port)},
        done=[r"listening on \S+:\d+"],
        stop=StopSpec(kind="signal", value="SIGTERM"),
    )
    await runtime.start(spec)
    await events.wait_state("minetest", "running")
    answer = await udp_answer(port, MINETEST_PROBE)
    assert answer[:4] == bytes.fromhex("4f457403")  # the minetest protocol id: the game itself answered
    stats = await runtime.stats("minetest")
    assert stats.state == ServerState.RUNNING
    assert stats.memory_bytes > 0
    assert stats.disk_bytes > 0  # its world was created inside the server folder
    assert (runtime.settings.servers_dir / "minetest" / "world").is_dir()
    status = await runtime.stop("minetest")
    # The template's SIGTERM reaches the game (not bwrap): minetest shuts down cleanly.
    assert (status.state, status.exit_code, status.signal) == (ServerState.OFFLINE, 0, None)
    assert any("Shutting down" in line for line in events.lines("minetest"))


async def test_teeworlds_server_answers_and_takes_econ_commands(opened: tuple[Runtime, Events]) -> None:
    require_binary("/usr/games/teeworlds-server", "teeworlds-server")
    runtime, events = opened
    port, econ = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    password = secrets.token_hex(8)
    spec = ServerSpec(
        server_id="teeworlds",
        startup="teeworlds-server -f server.cfg",
        env={"SERVER_PORT": str(port), "ECON_PORT": str(econ), "ECON_PASSWORD": password},
        done=[r"\[server\]: version 0\.7"],
        install_script=(
            "cd /mnt/server && printf 'sv_name pentad\\nsv_port 8303\\nbindaddr 0.0.0.0\\n"
            "ec_port 0\\nec_password none\\nec_bindaddr 127.0.0.1\\n' > server.cfg"
        ),
        # Egg-style config rewriting sets the ports and the econ password before every start.
        config_files=[
            ConfigFile(
                path="server.cfg",
                parser="file",
                find={
                    "sv_port": "sv_port {{server.build.env.SERVER_PORT}}",
                    "bindaddr": "bindaddr 127.0.0.1",
                    "ec_port": "ec_port {{env.ECON_PORT}}",
                    "ec_password": "ec_password {{ECON_PASSWORD}}",
                },
            )
        ],
        console_input=ConsoleInput(kind="econ", port=econ, password=password),
        stop=StopSpec(kind="command", value="shutdown"),
    )
    assert await runtime.install(spec) == 0
    config = (runtime.settings.servers_dir / "teeworlds" / "server.cfg").read_text()
    assert "sv_port 8303" in config  # rewritten at start, not at install
    await runtime.start(spec)
    await events.wait_state("teeworlds", "running")
    config = (runtime.settings.servers_dir / "teeworlds" / "server.cfg").read_text()
    assert f"sv_port {port}\n" in config
    assert f"ec_password {password}\n" in config

    answer = await udp_answer(port, TEEWORLDS_PROBE)
    assert TEEWORLDS_TOKEN in answer[:8]  # its token reply carries ours back

    await events.wait_line("teeworlds", "[econ]: ")  # econ listens once the server logged it
    await runtime.send_command("teeworlds", "say hello from the panel")
    await events.wait_line("teeworlds", "*** hello from the panel")
    status = await runtime.stop("teeworlds")
    assert (status.state, status.exit_code) == (ServerState.OFFLINE, 0)
    assert not any("SIGTERM" in line for line in events.lines("teeworlds"))  # `shutdown` over econ was enough
