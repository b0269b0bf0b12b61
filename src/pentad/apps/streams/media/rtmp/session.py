"""One RTMP connection, server side: handshake, `connect` to the application `live`, `createStream`,
`publish <key>`, then media until the publisher unpublishes, disconnects, goes idle or is dropped.

The key is checked (StreamHost.open_stream) when `publish` arrives and before `NetStream.Publish.Start`
is sent: a refused publisher gets an error status and the connection closes, so no media of it is ever
read into a relay. Garbage, a truncated or slow handshake, a chunk stream out of bounds or silence
closes the connection with one `rtmp_rejected` / `rtmp_closed` log line (the peer's address and a reason,
never the key), never an exception out of the session."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass
from typing import Any

import structlog

from pentad.apps.streams.media.engines.base import Publication, StreamHost
from pentad.apps.streams.media.frames import DATA, MediaFrame
from pentad.apps.streams.media.redact import peer_text
from pentad.apps.streams.media.rtmp import amf0, chunks, handshake
from pentad.apps.streams.media.rtmp.chunks import ChunkError, ChunkReader, ChunkWriter, Message

APPLICATION = "live"
SERVER_CHUNK_SIZE = 4096
SERVER_WINDOW = 5_000_000
READ_SIZE = 65536
PUBLISH_STREAM_ID = 1

logger = structlog.get_logger("pentad.streams.rtmp")
_ALREADY_LOGGED = frozenset(
    {
        "handshake_timeout", "truncated_handshake", "bad_handshake", "idle_timeout", "bad_chunk_stream",
        "bad_amf0", "amf3_unsupported", "command_before_connect", "play_refused", "unknown_application",
        "refused", "disconnected", "closed", "unpublished", "bitrate_exceeded",
    }
)  # fmt: skip
"""Reasons whose own log line was written where they arose (or that are a normal end)."""


@dataclass(frozen=True)
class SessionLimits:
    handshake_timeout: float
    idle_timeout: float
    keyframe_timeout: float
    max_bitrate_kbps: int = 0
    """Media faster than this, averaged over `bitrate_window` seconds, drops the publisher (0: no limit)."""
    bitrate_window: float = 5.0


class Closing(Exception):
    """End the connection; `reason` for the log line (and the session's end when publishing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RtmpSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: StreamHost,
        *,
        engine: str,
        limits: SessionLimits,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.engine = engine
        self.limits = limits
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"
        self.log = logger.bind(peer=self.peer, engine=engine)
        self.chunks_in = ChunkReader()
        self.chunks_out = ChunkWriter()
        self.ack_window = 0
        self.acked = 0
        self.connected = False
        self.publication: Publication | None = None
        self._drop_reason: str | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._window_start = 0.0
        self._window_bytes = 0

    async def run(self) -> None:
        reason = "closed"
        try:
            await self._handshake()
            await self._serve()
        except Closing as closing:
            reason = closing.reason
        except (ConnectionError, OSError):
            reason = "connection_lost"
        except asyncio.IncompleteReadError:
            reason = "disconnected"
        finally:
            if self._drop_reason is not None:
                reason = self._drop_reason
            await self._finish(reason)

    async def _finish(self, reason: str) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        publication, self.publication = self.publication, None
        if publication is not None:
            self.log.info("rtmp_publish_ended", camera_id=str(publication.camera_id), reason=reason)
            await self.host.close_stream(publication, reason)
        elif reason not in _ALREADY_LOGGED:
            self.log.info("rtmp_closed", reason=reason)
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    # -------------------------------------------------------------- handshake

    async def _handshake(self) -> None:
        try:
            async with asyncio.timeout(self.limits.handshake_timeout):
                c0 = await self.reader.readexactly(1)
                handshake.check_c0(c0)
                c1 = await self.reader.readexactly(handshake.PACKET_SIZE)
                self.writer.write(handshake.server_packets(c1))
                await self.writer.drain()
                await self.reader.readexactly(handshake.PACKET_SIZE)  # C2: an echo of S1, not checked
        except TimeoutError:
            self.log.warning("rtmp_rejected", reason="handshake_timeout")
            raise Closing("handshake_timeout") from None
        except asyncio.IncompleteReadError:
            self.log.warning("rtmp_rejected", reason="truncated_handshake")
            raise Closing("truncated_handshake") from None
        except handshake.HandshakeError as exc:
            self.log.warning("rtmp_rejected", reason="bad_handshake", detail=str(exc))
            raise Closing("bad_handshake") from None

    # -------------------------------------------------------------- messages

    async def _serve(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.limits.idle_timeout):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                self.log.warning("rtmp_idle", timeout=self.limits.idle_timeout)
                raise Closing("idle_timeout") from None
            if not data:
                raise Closing("unpublished" if self.publication is None else "disconnected")
            try:
                self.chunks_in.feed(data)
                for message in self.chunks_in.messages():
                    await self._message(message)
            except ChunkError as exc:
                self.log.warning("rtmp_rejected", reason="bad_chunk_stream", detail=str(exc))
                raise Closing("bad_chunk_stream") from None
            except amf0.Amf0Error as exc:
                self.log.warning("rtmp_rejected", reason="bad_amf0", detail=str(exc))
                raise Closing("bad_amf0") from None
            await self._acknowledge()

    async def _acknowledge(self) -> None:
        received = self.chunks_in.received
        if self.ack_window and received - self.acked >= self.ack_window:
            self.acked = received
            await self._send(chunks.control(chunks.ACKNOWLEDGEMENT, received & 0xFFFFFFFF))

    async def _send(self, *messages: Message) -> None:
        self.writer.write(b"".join(self.chunks_out.encode(message) for message in messages))
        await self.writer.drain()

    async def _message(self, message: Message) -> None:
        kind = message.type_id
        if kind in (chunks.AUDIO, chunks.VIDEO):
            if self.publication is not None:
                self.publication.relay.push(MediaFrame.parse(kind, message.timestamp, message.body))
                self._meter(len(message.body))
        elif kind == chunks.DATA_AMF0:
            self._data(message)
        elif kind == chunks.COMMAND_AMF0:
            values = amf0.decode_all(message.body)
            await self._command(message, values)
        elif kind == chunks.WINDOW_ACK_SIZE and len(message.body) >= 4:
            self.ack_window = struct.unpack(">I", message.body[:4])[0]
        elif kind in (chunks.COMMAND_AMF3, chunks.DATA_AMF3, chunks.SHARED_OBJECT_AMF3):
            self.log.warning("rtmp_rejected", reason="amf3_unsupported")
            raise Closing("amf3_unsupported")
        # Acknowledgements, user control (ping), peer bandwidth, set chunk size (applied by the reader),
        # abort, shared objects and aggregates need nothing more from a publishing server.

    def _data(self, message: Message) -> None:
        if self.publication is None:
            return
        values = amf0.decode_all(message.body)
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if values and values[0] == "onMetaData":
            payload = amf0.encode_all(*values)
            self.publication.relay.push(MediaFrame.parse(DATA, message.timestamp, payload))

    async def _command(self, message: Message, values: list[Any]) -> None:
        if not values or not isinstance(values[0], str):
            raise Closing("bad_command")
        name = values[0]
        transaction = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        args = values[3:]
        if name == "connect":
            await self._connect(transaction, values[2] if len(values) > 2 else None)
        elif not self.connected:
            self.log.warning("rtmp_rejected", reason="command_before_connect", command=peer_text(name))
            raise Closing("command_before_connect")
        elif name == "createStream":
            await self._result(transaction, None, float(PUBLISH_STREAM_ID))
        elif name in ("releaseStream", "FCPublish", "getStreamLength"):
            if transaction:
                await self._result(transaction, None)
        elif name == "publish":
            await self._publish(message.stream_id, args)
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            if self.publication is not None:
                raise Closing("unpublished")
        elif name == "play":
            await self._status(message.stream_id, "error", "NetStream.Play.Failed", "playing is not offered")
            self.log.warning("rtmp_rejected", reason="play_refused")
            raise Closing("play_refused")

    async def _connect(self, transaction: float, properties: Any) -> None:
        if self.connected:
            raise Closing("second_connect")
        app = properties.get("app") if isinstance(properties, dict) else None
        app_name = app.partition("?")[0].strip("/") if isinstance(app, str) else ""
        if app_name != APPLICATION:
            await self._send(
                _command(
                    "_error",
                    transaction,
                    None,
                    _status_info("error", "NetConnection.Connect.Rejected", "unknown application"),
                )
            )
            self.log.warning("rtmp_rejected", reason="unknown_application", app=peer_text(app))
            raise Closing("unknown_application")
        self.connected = True
        await self._send(
            chunks.control(chunks.WINDOW_ACK_SIZE, SERVER_WINDOW),
            chunks.peer_bandwidth(SERVER_WINDOW),
            chunks.control(chunks.SET_CHUNK_SIZE, SERVER_CHUNK_SIZE),
        )
        self.chunks_out.chunk_size = SERVER_CHUNK_SIZE
        await self._result(
            transaction,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            {**_status_info("status", "NetConnection.Connect.Success", "connected"), "objectEncoding": 0.0},
        )

    async def _publish(self, stream_id: int, args: list[Any]) -> None:
        if self.publication is not None:
            raise Closing("second_publish")
        raw_key = args[0] if args and isinstance(args[0], str) else ""
        publication = await self.host.open_stream(
            raw_key, engine=self.engine, peer=self.peer, drop=self._drop
        )
        if publication is None:
            await self._status(stream_id, "error", "NetStream.Publish.BadName", "publishing refused")
            raise Closing("refused")
        self.publication = publication
        self.log.info("rtmp_publish_started", camera_id=str(publication.camera_id))
        await self._send(
            chunks.user_control(chunks.STREAM_BEGIN, stream_id),
        )
        await self._status(stream_id, "status", "NetStream.Publish.Start", "publishing")
        self._window_start, self._window_bytes = time.monotonic(), 0
        self._watchdog = asyncio.create_task(self._keyframe_watchdog(publication))

    def _meter(self, size: int) -> None:
        if not self.limits.max_bitrate_kbps:
            return
        now = time.monotonic()
        self._window_bytes += size
        elapsed = now - self._window_start
        if elapsed < self.limits.bitrate_window:
            return
        kbps = self._window_bytes * 8 / 1000 / elapsed
        self._window_start, self._window_bytes = now, 0
        if kbps > self.limits.max_bitrate_kbps:
            camera = str(self.publication.camera_id) if self.publication else None
            self.log.warning(
                "rtmp_bitrate_exceeded",
                camera_id=camera,
                kbps=round(kbps),
                limit=self.limits.max_bitrate_kbps,
            )
            raise Closing("bitrate_exceeded")

    async def _keyframe_watchdog(self, publication: Publication) -> None:
        relay = publication.relay
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.limits.keyframe_timeout):
                await relay.first_keyframe.wait()
            return
        if relay.has_video:
            self.log.warning("rtmp_no_keyframe", camera_id=str(publication.camera_id))
            await self._drop("no_keyframe")

    async def _drop(self, reason: str) -> None:
        """Disconnect this publisher (the host calls it on key revocation, the watchdog without keyframes)."""
        if self._drop_reason is None:
            self._drop_reason = reason
        self.writer.close()

    async def _result(self, transaction: float, *values: Any) -> None:
        await self._send(_command("_result", transaction, *values))

    async def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        body = amf0.encode_all("onStatus", 0.0, None, _status_info(level, code, description))
        await self._send(Message(chunks.COMMAND_AMF0, stream_id, 0, body, chunk_stream=5))


def _status_info(level: str, code: str, description: str) -> dict[str, Any]:
    return {"level": level, "code": code, "description": description}


def _command(name: str, transaction: float, *values: Any) -> Message:
    return Message(chunks.COMMAND_AMF0, 0, 0, amf0.encode_all(name, transaction, *values), chunk_stream=3)
