"""The RTMP chunk stream (RTMP 1.0 §5.3): messages cut into chunks on chunk stream ids, the four header
formats, extended timestamps, and the protocol control messages that change how chunks are read.

ChunkReader is incremental (feed bytes, take whole messages) and bounded: a chunk size above MAX_CHUNK_SIZE
or a message above MAX_MESSAGE_SIZE is a ChunkError, so a hostile peer cannot make it buffer without limit.
ChunkWriter cuts outgoing messages with format 0 headers (plus format 3 continuations)."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

# Message type ids
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
SHARED_OBJECT_AMF3 = 16
COMMAND_AMF3 = 17
DATA_AMF0 = 18
SHARED_OBJECT_AMF0 = 19
COMMAND_AMF0 = 20
AGGREGATE = 22

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 65536
MAX_MESSAGE_SIZE = 8 * 1024 * 1024
MAX_CHUNK_STREAMS = 64
EXTENDED = 0xFFFFFF

# User control events
STREAM_BEGIN = 0
STREAM_EOF = 1


class ChunkError(ValueError):
    """A chunk stream this server will not read."""


@dataclass(frozen=True, slots=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int
    body: bytes
    chunk_stream: int = 3


@dataclass(slots=True)
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    started: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class ChunkReader:
    """Bytes in (`feed`), messages out (`messages`). Set-chunk-size and abort are applied here and also
    handed on; `received` counts every byte fed (for acknowledgements)."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.received = 0
        self._data = bytearray()
        self._streams: dict[int, _ChunkStream] = {}
        self._ready: deque[Message] = deque()

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self._data += data
        while self._read_chunk():
            pass
        if len(self._data) > MAX_CHUNK_SIZE + 32:
            raise ChunkError("chunk larger than the chunk size")

    def messages(self) -> list[Message]:
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def _read_chunk(self) -> bool:
        data = self._data
        if not data:
            return False
        fmt = data[0] >> 6
        csid = data[0] & 0x3F
        position = 1
        if csid == 0:
            if len(data) < 2:
                return False
            csid = 64 + data[1]
            position = 2
        elif csid == 1:
            if len(data) < 3:
                return False
            csid = 64 + data[1] + data[2] * 256
            position = 3
        header_size = (11, 7, 3, 0)[fmt]
        if len(data) < position + header_size:
            return False
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts without a full header")
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ChunkError(f"more than {MAX_CHUNK_STREAMS} chunk streams")
            stream = self._streams[csid] = _ChunkStream()
        header = bytes(data[position : position + header_size])
        position += header_size
        new_message = not stream.buffer
        timestamp_field = int.from_bytes(header[0:3], "big") if fmt < 3 else 0
        extended = timestamp_field == EXTENDED if fmt < 3 else stream.extended
        if extended:
            if len(data) < position + 4:
                return False
            timestamp_field = struct.unpack(">I", data[position : position + 4])[0]
            position += 4
        if fmt <= 1:
            length = int.from_bytes(header[3:6], "big")
            if length > MAX_MESSAGE_SIZE:
                raise ChunkError(f"message of {length} bytes is too large")
        else:
            length = stream.length
        remaining = length - len(stream.buffer)
        if remaining < 0 or (not new_message and fmt != 3):
            raise ChunkError("new chunk header inside an unfinished message")
        take = min(remaining, self.chunk_size)
        if len(data) < position + take:
            return False
        # The whole chunk is here: commit its header.
        if fmt == 0:
            stream.timestamp = timestamp_field
            stream.delta = timestamp_field
            stream.stream_id = struct.unpack("<I", header[7:11])[0]
        elif fmt in (1, 2):
            stream.delta = timestamp_field
            stream.timestamp = (stream.timestamp + timestamp_field) & 0xFFFFFFFF
        elif new_message and stream.started:
            stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        if fmt <= 1:
            stream.length = length
            stream.type_id = header[6]
        if fmt < 3:
            stream.extended = extended
        stream.started = True
        stream.buffer += data[position : position + take]
        del data[: position + take]
        if len(stream.buffer) == stream.length:
            body = bytes(stream.buffer)
            stream.buffer.clear()
            self._message(Message(stream.type_id, stream.stream_id, stream.timestamp, body, csid))
        return True

    def _message(self, message: Message) -> None:
        if message.type_id == SET_CHUNK_SIZE:
            if len(message.body) < 4:
                raise ChunkError("short set-chunk-size")
            size = struct.unpack(">I", message.body[:4])[0] & 0x7FFFFFFF
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise ChunkError(f"chunk size {size} out of range (1..{MAX_CHUNK_SIZE})")
            self.chunk_size = size
        elif message.type_id == ABORT:
            if len(message.body) < 4:
                raise ChunkError("short abort")
            aborted = self._streams.get(struct.unpack(">I", message.body[:4])[0])
            if aborted is not None:
                aborted.buffer.clear()
        self._ready.append(message)


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 2 or csid > 65599:
        raise ChunkError(f"chunk stream id {csid} out of range")
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + (csid - 64).to_bytes(2, "little")


class ChunkWriter:
    """Messages out as chunks of `chunk_size` (set it only after sending SET_CHUNK_SIZE)."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def encode(self, message: Message) -> bytes:
        body = message.body
        timestamp = message.timestamp & 0xFFFFFFFF
        extended = timestamp >= EXTENDED
        header = (
            _basic_header(0, message.chunk_stream)
            + (EXTENDED if extended else timestamp).to_bytes(3, "big")
            + len(body).to_bytes(3, "big")
            + bytes([message.type_id])
            + struct.pack("<I", message.stream_id)
        )
        extra = struct.pack(">I", timestamp) if extended else b""
        parts = [header, extra, body[: self.chunk_size]]
        continuation = _basic_header(3, message.chunk_stream) + extra
        for start in range(self.chunk_size, len(body), self.chunk_size):
            parts += [continuation, body[start : start + self.chunk_size]]
        return b"".join(parts)


def control(type_id: int, value: int) -> Message:
    """SET_CHUNK_SIZE, ACKNOWLEDGEMENT, WINDOW_ACK_SIZE (chunk stream 2, message stream 0)."""
    return Message(type_id, 0, 0, struct.pack(">I", value), chunk_stream=2)


def peer_bandwidth(size: int, limit_type: int = 2) -> Message:
    return Message(SET_PEER_BANDWIDTH, 0, 0, struct.pack(">IB", size, limit_type), chunk_stream=2)


def user_control(event: int, stream_id: int) -> Message:
    return Message(USER_CONTROL, 0, 0, struct.pack(">HI", event, stream_id), chunk_stream=2)
