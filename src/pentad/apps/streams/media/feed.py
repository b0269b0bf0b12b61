"""FLV into the relay from a child process: the way media pulled by ffmpeg (from nginx-rtmp over loopback
RTMP, from an IP camera over RTSP) enters the same pipeline as the built-in engine's frames.

A FlvFeed listens on a unix socket in the media plane's private (0700) folder; the child writes FLV to it
(`ffmpeg ... -c copy -f flv unix:<socket>`), one connection per run of the child. Each connection's tags are
parsed into MediaFrames and pushed to the relay. A restarted child connects again and its frames follow
(the relay's consumers see a new codec configuration and keyframe, as after a publisher's reconnect)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from pentad.apps.streams.media import flv
from pentad.apps.streams.media.frames import KINDS, MediaFrame

logger = structlog.get_logger("pentad.streams.feed")


class FlvFeed:
    """A unix socket receiving FLV; every frame goes to `sink` (a relay's push)."""

    def __init__(self, socket_path: Path, sink: Callable[[MediaFrame], None], *, label: str) -> None:
        self.socket_path = socket_path
        self.sink = sink
        self.connections = 0
        self.frames = 0
        self.last_frame_at: float | None = None
        self.first_frame = asyncio.Event()
        self.log = logger.bind(feed=label)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """What the child writes to (ffmpeg's unix protocol)."""
        return f"unix:{self.socket_path}"

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._connected, path=str(self.socket_path))
        self.socket_path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            await self._read(reader)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the child stopped mid-tag: its next run starts a new connection
        except flv.FlvError as exc:
            self.log.warning("feed_not_flv", error=str(exc))
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        head = await reader.readexactly(flv.HEADER_SIZE + 4)
        flv.read_header(head)
        offset = struct.unpack(">I", head[5:9])[0]
        if offset > flv.HEADER_SIZE:
            await reader.readexactly(offset - flv.HEADER_SIZE)
        while True:
            try:
                header = await reader.readexactly(flv.TAG_HEADER_SIZE)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return
            kind = header[0] & 0x1F
            size = int.from_bytes(header[1:4], "big")
            timestamp = int.from_bytes(header[4:7], "big") | header[7] << 24
            body = await reader.readexactly(size + 4)
            if kind not in KINDS:
                continue  # script data of another kind, or padding: not media
            frame = MediaFrame.parse(kind, timestamp, body[:size])
            self.frames += 1
            self.last_frame_at = time.monotonic()
            self.first_frame.set()
            self.sink(frame)
