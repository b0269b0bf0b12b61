"""The agent's game status queries: the teeworlds 0.7 server-info query against Debian's teeworlds-server
(run directly, no sandbox), silence and garbage giving None or QueryError, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pentad.agent import query
from pentad.panel_wire.serverspec import GameQuery
from tests.agent.conftest import require_binary
from tests.agent.test_games import free_port

TEEWORLDS = "/usr/games/teeworlds-server"


@pytest.fixture(scope="module")
async def teeworlds(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    require_binary(TEEWORLDS, "teeworlds-server")
    folder: Path = tmp_path_factory.mktemp("teeworlds")
    port = free_port(socket.SOCK_DGRAM)
    game = await asyncio.create_subprocess_exec(
        TEEWORLDS, f"sv_port {port}", "sv_register 0", "sv_max_clients 6", "sv_player_slots 5",
        cwd=folder, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port
    finally:
        game.kill()
        # A CI run once waited here for good after the kill (the loop idle, asyncio's child watcher never
        # told): the game is SIGKILLed either way, so the suite goes on after a bounded wait.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(game.wait(), 10)


async def test_teeworlds_tells_its_players_and_slots(teeworlds: int) -> None:
    target = GameQuery(kind="teeworlds", host="0.0.0.0", port=teeworlds)  # asked on loopback
    found = None
    for _ in range(150):  # the game may still be loading its map
        found = await query.players(target)
        if found is not None:
            break
        await asyncio.sleep(0.2)
    assert found == query.Players(players=0, max_players=5)  # sv_player_slots, nobody joined


async def test_silence_is_none_within_the_timeout() -> None:
    port = free_port(socket.SOCK_DGRAM)  # nobody listens
    async with asyncio.timeout(5):
        assert await query.teeworlds("127.0.0.1", port, timeout=0.2) is None


def info(token: int, *, players: int = 3, slots: int = 8, head: bytes = b"\xff\xff\xff\xffinf3") -> bytes:
    strings = b"0.7.5\x00name\x00\x00dm1\x00DM\x00"
    body = query.pack_int(token) + strings + query.pack_int(0) + query.pack_int(1)
    return bytes(9) + head + body + query.pack_int(players) + query.pack_int(slots)


def test_the_info_answer_is_read_and_checked() -> None:
    assert query.parse_teeworlds_info(info(40000, players=12, slots=16), 40000) == query.Players(12, 16)
    for packet, token in (
        (info(7), 8),  # an answer to another request
        (info(7, head=b"\xff\xff\xff\xffinfo"), 7),  # not a server info
        (info(7)[:-3], 7),  # cut short
        (info(7, players=5000), 7),  # implausible
        (bytes(9) + b"\xff\xff\xff\xffinf3" + query.pack_int(7) + b"no terminator", 7),
    ):
        with pytest.raises(query.QueryError):
            query.parse_teeworlds_info(packet, token)


def test_variable_integers_round_trip() -> None:
    for value in (0, 1, 63, 64, 1234, 65535, -1, -64, 2**31 - 1):
        assert query._Reader(query.pack_int(value)).int() == value
