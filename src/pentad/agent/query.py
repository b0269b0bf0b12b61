"""Player counts from a game's own status query, asked by the agent on the host (loopback or the server's
allocation), once per stats report, with a short timeout: a game that does not answer gives `None`.

- `teeworlds` (0.7, Debian's teeworlds-server): two UDP round trips. A control packet asks for the server's
  token (NET_CTRLMSG_TOKEN, padded to 512 bytes as the protocol requires against amplification), then a
  connectionless packet carrying both tokens asks for the server info (`gie3`); the answer (`inf3`) holds
  the player count and the player slots as the protocol's variable-length integers.

Minetest has no status query a client may ask without joining (its server list learns the figures from
the server's own announce over HTTP), so its players stay `None`."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

from pentad.panel_wire.serverspec import GameQuery

QUERY_TIMEOUT = 0.5

_TOKEN_NONE = b"\xff\xff\xff\xff"
_CONTROL_HEADER = bytes([1 << 2, 0, 0])  # flags CONTROL, no ack, no chunks
_CONNLESS_HEADER = bytes([(8 << 2) | 1])  # flags CONNLESS (1 << 3), packet version 1
_CTRL_TOKEN = 5
_GET_INFO = b"\xff\xff\xff\xffgie3"
_INFO = b"\xff\xff\xff\xffinf3"


@dataclass(frozen=True, slots=True)
class Players:
    players: int
    max_players: int


class QueryError(Exception):
    """The answer was not what the protocol says (never raised for silence: that is None)."""


def pack_int(value: int) -> bytes:
    """Teeworlds' variable-length integer: 6 bits and a sign in the first byte, 7 bits in each next one."""
    out = bytearray()
    sign = 0
    if value < 0:
        sign = 0x40
        value = ~value
    byte = sign | (value & 0x3F)
    value >>= 6
    while value:
        out.append(byte | 0x80)
        byte = value & 0x7F
        value >>= 7
    out.append(byte)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def int(self) -> int:
        if self.at >= len(self.data):
            raise QueryError("answer cut short")
        byte = self.data[self.at]
        self.at += 1
        negative = byte & 0x40
        value = byte & 0x3F
        shift = 6
        while byte & 0x80:
            if self.at >= len(self.data) or shift > 27:
                raise QueryError("bad integer")
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
        return ~value if negative else value

    def string(self) -> str:
        end = self.data.find(b"\x00", self.at)
        if end < 0:
            raise QueryError("unterminated string")
        text = self.data[self.at : end].decode(errors="replace")
        self.at = end + 1
        return text


def parse_teeworlds_info(packet: bytes, token: int) -> Players:
    """The player count of an `inf3` answer (after the 9-byte connless header) to our `gie3` with `token`."""
    payload = packet[9:]
    if not payload.startswith(_INFO):
        raise QueryError("not a server info answer")
    reader = _Reader(payload[len(_INFO) :])
    if reader.int() != token:
        raise QueryError("answer to another request")
    for _ in range(5):  # version, name, host name, map, game type
        reader.string()
    reader.int()  # flags
    reader.int()  # skill level
    players, max_players = reader.int(), reader.int()
    if not (0 <= players <= 1024 and 0 <= max_players <= 1024):
        raise QueryError("implausible player count")
    return Players(players, max_players)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)


async def teeworlds(host: str, port: int, timeout: float = QUERY_TIMEOUT) -> Players | None:  # noqa: ASYNC109
    """The server's players and slots, or None when it does not answer within `timeout` (both trips)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    transport, protocol = await loop.create_datagram_endpoint(
        _Datagrams, remote_addr=(host, port), family=family
    )
    try:
        async with asyncio.timeout(timeout):
            mine = os.urandom(4)
            transport.sendto(_CONTROL_HEADER + _TOKEN_NONE + bytes([_CTRL_TOKEN]) + mine + bytes(512 - 5))
            while True:
                answer = await protocol.queue.get()
                if answer[:1] == _CONTROL_HEADER[:1] and answer[3:7] == mine and answer[7] == _CTRL_TOKEN:
                    theirs = answer[8:12]
                    break
            token = int.from_bytes(os.urandom(2), "big")
            transport.sendto(_CONNLESS_HEADER + theirs + mine + _GET_INFO + pack_int(token))
            while True:
                answer = await protocol.queue.get()
                if answer[:1] == _CONNLESS_HEADER and answer[1:5] == mine:
                    return parse_teeworlds_info(answer, token)
    except (TimeoutError, OSError, QueryError, IndexError):
        return None
    finally:
        transport.close()


async def players(query: GameQuery) -> Players | None:
    """The players of the game `query` names; None when it cannot tell."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(query.host, query.host)  # noqa: S104
    if query.kind == "teeworlds":
        return await teeworlds(host, query.port)
    return None
