"""Reading a file or archive from a node in chunks with several reads in flight.

One read (`file_read`, `backup_read`) carries wire.READ_CHUNK_BYTES, so a round trip per chunk would bound a
download by the link's latency; `read_ahead` keeps READ_AHEAD reads of the next offsets in flight and yields
their bytes in order. Reads of a file being changed meanwhile may not line up: a chunk shorter than asked
(before the end) ends the stream, as does an empty one."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from pentad.panel_wire import protocol as wire

READ_AHEAD = 8
"""Reads in flight (each wire.READ_CHUNK_BYTES): 256 KiB on the way at once."""


async def read_ahead(
    read: Callable[[int], Awaitable[bytes]],
    size: int,
    *,
    start: int = 0,
    chunk: int = wire.READ_CHUNK_BYTES,
    window: int | None = None,
) -> AsyncIterator[bytes]:
    """The bytes from `start` to `size`, read `chunk` at a time by `read(offset)`, `window` (default
    READ_AHEAD, read when called) at once."""
    window = window or READ_AHEAD
    pending: deque[asyncio.Task[bytes]] = deque()
    offset = start
    try:
        while True:
            while len(pending) < window and offset < size:
                pending.append(asyncio.ensure_future(read(offset)))
                offset += chunk
            if not pending:
                return
            data = await pending.popleft()
            if not data:
                return
            yield data
            if len(data) < chunk and (pending or offset < size):
                return  # the file shrank: what follows would not line up
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
