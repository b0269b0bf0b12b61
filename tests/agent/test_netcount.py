"""Per-server network counters on real nftables: a real UDP and TCP exchange with a sandboxed game on its
allocated loopback port shows in its stats, the counters survive an agent restart (re-attach keeps
counting) and go with the server's deletion; where nft is missing or not permitted the stats say why."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pentad.agent.events import ServerStats
from pentad.agent.netcount import NetCounters
from pentad.agent.runtime import Runtime
from pentad.panel_wire.serverspec import ServerSpec
from tests.agent.conftest import Events, agent_settings, require_bwrap, require_nft
from tests.agent.test_games import free_port

# A game answering on its port: UDP datagrams and TCP streams echoed back.
ECHO_GAME = """
import socket, sys, threading
port = int(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", port))
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", port)); tcp.listen()
def serve_tcp():
    while True:
        conn, _ = tcp.accept()
        while data := conn.recv(65536):
            conn.sendall(data)
        conn.close()
threading.Thread(target=serve_tcp, daemon=True).start()
print("ready", flush=True)
while True:
    data, peer = udp.recvfrom(65536)
    udp.sendto(data, peer)
"""


def nft_json(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["nft", "-j", *args], capture_output=True, check=True, text=True).stdout
    return [item for item in json.loads(out)["nftables"] if "metainfo" not in item]


@pytest.fixture
def table() -> Iterator[str]:
    """A table of this test's own (deleted afterwards, counters and all)."""
    require_nft()
    name = f"pentad_t{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(["nft", "delete", "table", "inet", name], capture_output=True, check=False)


def exchange(port: int, rounds: int) -> int:
    """`rounds` UDP datagrams and one TCP stream of the same size to the game, each echoed back; returns
    the payload bytes sent (each way)."""
    payload = b"x" * 200
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(10)
        for _ in range(rounds):
            udp.sendto(payload, ("127.0.0.1", port))
            assert udp.recv(1000) == payload
    with socket.create_connection(("127.0.0.1", port), timeout=10) as tcp:
        tcp.sendall(payload * rounds)
        received = b""
        while len(received) < len(payload) * rounds:
            received += tcp.recv(65536)
    return 2 * len(payload) * rounds


async def test_a_udp_and_tcp_exchange_counts_survives_restart_and_is_removed_with_the_server(
    data_root: Path, table: str
) -> None:
    require_bwrap()
    port = free_port(socket.SOCK_DGRAM)
    settings = agent_settings(data_root / "agent", nft_table=table)
    runtime = Runtime(settings)
    await runtime.open()
    assert runtime.net.available
    assert runtime.facts()["net_counters"] == "nftables"
    events = Events(runtime)
    spec = ServerSpec(
        server_id="net1",
        startup='exec python3 -u -c "${GAME}" {{PORT}}',
        env={"GAME": ECHO_GAME, "PORT": str(port)},
        done=["ready"],
        ports=[port],
    )
    try:
        await runtime.start(spec)
        await events.wait_state("net1", "running")
        before = await runtime.stats("net1")
        assert (before.net_rx_bytes, before.net_rx_packets, before.net_tx_bytes) == (0, 0, 0)
        assert before.net_reason is None

        sent = await asyncio.to_thread(exchange, port, 3)
        after = await runtime.stats("net1")
        assert after.net_rx_bytes is not None
        assert after.net_tx_bytes is not None
        assert after.net_rx_bytes > sent
        assert after.net_tx_bytes > sent
        assert after.net_rx_packets is not None
        assert after.net_rx_packets >= 3 + 3
        assert after.net_tx_packets is not None
        assert after.net_tx_packets >= 3 + 2
        # the periodic stats carry the figures too
        counted = after.net_rx_bytes
        await events.wait_for(lambda e: isinstance(e, ServerStats) and (e.net_rx_bytes or 0) >= counted)

        # an agent restart: the game keeps running, its counters keep their figures and keep counting
        await events.close()
        await runtime.close()
        runtime = Runtime(settings)
        await runtime.open()
        events = Events(runtime)
        assert runtime.status("net1").state.value == "running"
        again = await runtime.stats("net1")
        assert again.net_rx_bytes is not None
        assert again.net_rx_bytes >= after.net_rx_bytes
        await asyncio.to_thread(exchange, port, 1)
        later = await runtime.stats("net1")
        assert later.net_rx_bytes is not None
        assert later.net_rx_bytes > again.net_rx_bytes
        assert later.net_tx_packets is not None
        assert after.net_tx_packets < later.net_tx_packets

        await runtime.delete("net1")
        items = nft_json("list", "table", "inet", table)
        assert not [item for item in items if "counter" in item]
        assert all(not item["map"].get("elem") for item in items if "map" in item)
    finally:
        await events.close()
        for status in runtime.servers():
            await runtime.kill(status.server_id)
        await runtime.close()


async def test_ports_follow_the_spec_and_a_server_without_ports_has_a_reason(table: str) -> None:
    counters = NetCounters(None, table)
    await counters.open()
    assert counters.available
    await counters.sync("a", [31001, 31002])
    await counters.sync("a", [31002, 31003])  # a changed allocation: 31001 no longer counted for "a"
    await counters.sync("b", [31003])  # a port taken over by another server
    maps = {
        item["map"]["name"]: item["map"].get("elem", [])
        for item in nft_json("list", "table", "inet", table)
        if "map" in item
    }
    rx = sorted((element[0]["concat"][0], element[0]["concat"][1], element[1]) for element in maps["rx"])
    assert rx == [
        ("tcp", 31002, "s-a-rx"),
        ("tcp", 31003, "s-b-rx"),
        ("udp", 31002, "s-a-rx"),
        ("udp", 31003, "s-b-rx"),
    ]
    assert set(await counters.read()) == {"a", "b"}
    assert counters.unavailable("a", [31002]) is None
    assert counters.unavailable("c", []) == "the server has no allocated ports to count"
    await counters.sync("a", [])  # no ports left: no counters
    assert set(await counters.read()) == {"b"}


async def test_without_nft_the_server_runs_and_its_stats_say_why(data_root: Path) -> None:
    require_bwrap()
    missing = data_root / "no-such" / "nft"
    runtime = Runtime(agent_settings(data_root / "agent", nft_path=missing))
    await runtime.open()
    try:
        reason = runtime.net.reason
        assert reason is not None
        assert reason.startswith("nft is not installed")
        assert str(missing) in reason
        assert runtime.facts()["net_counters"] is None
        assert runtime.facts()["net_counters_reason"] == reason
        await runtime.start(ServerSpec(server_id="nonet", startup="exec sleep 1000", ports=[31999]))
        stats = await runtime.stats("nonet")
        assert (stats.net_rx_bytes, stats.net_tx_bytes, stats.net_rx_packets) == (None, None, None)
        assert stats.net_reason == reason
        await runtime.delete("nonet")  # no nft: nothing to remove, no error
    finally:
        for status in runtime.servers():
            await runtime.kill(status.server_id)
        await runtime.close()
    off = Runtime(agent_settings(data_root / "off", net_counters="off"))
    assert off.net.reason == "network counters are off (PENTAD_AGENT__NET_COUNTERS=off)"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_without_cap_net_admin_the_reason_says_not_permitted(table: str) -> None:
    """The agent as root but without CAP_NET_ADMIN (dropped from the bounding set): nft is refused."""
    code = (
        "import asyncio, sys\n"
        "from pentad.agent.netcount import NetCounters\n"
        "counters = NetCounters(None, sys.argv[1])\n"
        "asyncio.run(counters.open())\n"
        "print(counters.reason)\n"
    )
    result = subprocess.run(
        ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", sys.executable, "-c", code, table],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    reason = result.stdout.strip()
    assert reason.startswith("nft is not permitted: per-server network counters need root or CAP_NET_ADMIN")
    assert table not in {item["table"]["name"] for item in nft_json("list", "tables", "inet")}
