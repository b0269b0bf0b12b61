"""Pentad's WebSocket protocol for uvicorn (`pentad serve` passes it as `ws=`): uvicorn's own websockets
(sans-I/O) protocol, plus a way to write a frame encoded once for every recipient.

An event fanned out to N sockets went N times through the ASGI send chain (each middleware's wrapper, the
server's send coroutine, the frame encoding); most of a delivery's CPU. This protocol advertises the ASGI
extension `pentad.preencoded_frames`, whose `write(frame) -> bool` puts the bytes of a complete server
frame (`encode_text_frame`, made once per event) on the transport at once. It refuses (False) whenever
that would not be what the ordinary send does right now: before the handshake completed or after a close,
with a negotiated extension (compression), and while the transport's buffer is over its high-water mark
(the ordinary send would wait: the caller falls back to it, so backpressure works as before). Servers
without the extension (another `--ws`, the test client) get the ordinary ASGI send from the hub.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

PREENCODED_FRAMES: Final = "pentad.preencoded_frames"
"""The ASGI scope extension: {"write": Callable[[bytes], bool]}."""

WriteFrame = Callable[[bytes], bool]

SERVE_PROTOCOL: Final = "pentad.core.realtime.wsserver:PentadWebSocketProtocol"
"""uvicorn's `ws=` for this protocol (`pentad serve`)."""

_FIN_TEXT: Final = 0x81


def encode_text_frame(text: str) -> bytes:
    """A complete unmasked, unfragmented server-to-client text frame (RFC 6455 section 5.2)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", _FIN_TEXT, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return header + payload


def frame_writer(extensions: dict[str, object] | None) -> WriteFrame | None:
    """The `write` of the pre-encoded frames extension in a scope's extensions, if the server has it."""
    offered = (extensions or {}).get(PREENCODED_FRAMES)
    write = offered.get("write") if isinstance(offered, dict) else None
    return write if callable(write) else None


class PentadWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol with the `pentad.preencoded_frames` extension (module docstring)."""

    async def run_asgi(self) -> None:
        self.scope["extensions"][PREENCODED_FRAMES] = {"write": self.write_preencoded}
        await super().run_asgi()

    def write_preencoded(self, frame: bytes) -> bool:
        """Write `frame` now if the ordinary send would write it now without waiting; else False."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
