"""An RTMP publisher for tests, on the app's own codecs: handshake, connect, createStream, publish, frames.
Used where the test is about the server's behaviour (refusals, drops, timeouts), not about the codecs
(those have byte fixtures and round trips of their own) and not about interoperability (ffmpeg does that)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pentad.apps.streams.media.frames import AUDIO, VIDEO, MediaFrame
from pentad.apps.streams.media.rtmp import amf0, chunks, handshake
from pentad.apps.streams.media.rtmp.chunks import ChunkReader, ChunkWriter, Message

AVC_CONFIG = (
    b"\x17\x00\x00\x00\x00\x01\x64\x00\x1e\xff\xe1\x00\x04\x67\x64\x00\x1e\x01\x00\x04\x68\xee\x3c\x80"
)
AAC_CONFIG = b"\xaf\x00\x11\x90"
WAIT_SECONDS = 10.0


def video(timestamp: int, *, keyframe: bool) -> MediaFrame:
    head = b"\x17\x01" if keyframe else b"\x27\x01"
    return MediaFrame.parse(VIDEO, timestamp, head + b"\x00\x00\x00" + b"\x00\x00\x00\x03\x65\x88\x84")


def audio(timestamp: int) -> MediaFrame:
    return MediaFrame.parse(AUDIO, timestamp, b"\xaf\x01" + b"\x21" * 8)


class Publisher:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.chunks_in = ChunkReader()
        self.chunks_out = ChunkWriter()
        self.transaction = 1.0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(handshake.client_packets())
        s0s1s2 = await self.reader.readexactly(1 + 2 * handshake.PACKET_SIZE)
        self.writer.write(s0s1s2[1 : 1 + handshake.PACKET_SIZE])  # C2 echoes S1

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def send(self, message: Message) -> None:
        self.writer.write(self.chunks_out.encode(message))
        await self.writer.drain()

    async def command(self, name: str, *values: Any, stream_id: int = 0) -> None:
        self.transaction += 1
        body = amf0.encode_all(name, self.transaction, *values)
        await self.send(Message(chunks.COMMAND_AMF0, stream_id, 0, body, chunk_stream=3))

    async def replies(self, until: str) -> list[list[Any]]:
        """Command messages from the server until one whose status code or name is `until`."""
        found: list[list[Any]] = []
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return found
                self.chunks_in.feed(data)
                for message in self.chunks_in.messages():
                    if message.type_id != chunks.COMMAND_AMF0:
                        continue
                    values = amf0.decode_all(message.body)
                    found.append(values)
                    info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                    if until in (values[0], info.get("code")):
                        return found

    async def publish(self, key: str, app: str = "live") -> list[list[Any]]:
        """connect + createStream + publish; every reply up to the publish status (or the close)."""
        await self.command("connect", {"app": app, "tcUrl": f"rtmp://127.0.0.1:{self.port}/{app}"})
        self.transaction = 1.0
        replies = await self.replies("_result")
        if replies and replies[-1][0] == "_error":
            return replies
        await self.command("createStream", None)
        replies += await self.replies("_result")
        await self.command("publish", None, key, "live", stream_id=1)
        return replies + await self.replies("onStatus")

    async def data(self, body: bytes) -> None:
        await self.send(Message(chunks.DATA_AMF0, 1, 0, body, chunk_stream=4))

    async def frame(self, frame: MediaFrame) -> None:
        await self.send(Message(frame.kind, 1, frame.timestamp, frame.payload, chunk_stream=6))

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (within WAIT_SECONDS), reading what it still sends."""
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            pass
        return True
