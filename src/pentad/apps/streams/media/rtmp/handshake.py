"""The RTMP handshake, server side: C0 C1 in, S0 S1 S2 out, C2 in.

S1 carries a zero version field, which tells digest-aware clients (ffmpeg, librtmp as OBS uses it) that
this is the simple handshake: they skip the digest checks, and S2 echoes C1 as the specification asks.
C1 may carry a Flash Player 9 digest (ffmpeg sends one); nothing in it is checked."""

from __future__ import annotations

import os
import struct
import time

VERSION = 3
PACKET_SIZE = 1536


class HandshakeError(ValueError):
    """A client that does not speak RTMP."""


def check_c0(c0: bytes) -> None:
    if len(c0) != 1:
        raise HandshakeError("no C0")
    if c0[0] != VERSION:
        # 6 is RTMPE (encrypted), anything else (an HTTP request's "G", TLS's 0x16) is not RTMP.
        raise HandshakeError(f"unsupported RTMP version byte 0x{c0[0]:02x}")


def server_packets(c1: bytes) -> bytes:
    """S0, S1 and S2 for a client's C1."""
    if len(c1) != PACKET_SIZE:
        raise HandshakeError("short C1")
    s1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0) + os.urandom(PACKET_SIZE - 8)
    return bytes([VERSION]) + s1 + c1


def client_packets() -> bytes:
    """C0 and C1 of a simple-handshake client (tests, tools)."""
    return bytes([VERSION]) + struct.pack(">II", 0, 0) + os.urandom(PACKET_SIZE - 8)
