"""read_ahead: several reads in flight, bytes in order whatever order the reads finish in; a short or empty
read ends the stream; a failing read fails it and cancels the others."""

from __future__ import annotations

import asyncio
import random

import pytest

from pentad.apps.panel.chunks import read_ahead

DATA = bytes(random.Random(7).randbytes(10 * 1000 + 123))


async def _collect(**options: int) -> tuple[bytes, int]:
    in_flight = most = 0

    async def read(offset: int) -> bytes:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(random.random() / 1000)  # finish out of order
        in_flight -= 1
        return DATA[offset : offset + 1000]

    out = b"".join([piece async for piece in read_ahead(read, len(DATA), chunk=1000, **options)])
    return out, most


async def test_the_bytes_come_in_order_with_reads_in_flight() -> None:
    out, most = await _collect(window=4)
    assert out == DATA
    assert most == 4
    out, most = await _collect(window=1, start=2000)
    assert out == DATA[2000:]
    assert most == 1


async def test_a_short_read_ends_the_stream_and_a_failure_propagates() -> None:
    async def shrunk(offset: int) -> bytes:
        return b"x" * (500 if offset == 1000 else 1000)

    assert len(b"".join([p async for p in read_ahead(shrunk, 5000, chunk=1000, window=3)])) == 1500

    started: list[int] = []

    async def failing(offset: int) -> bytes:
        started.append(offset)
        if offset == 2000:
            raise RuntimeError("node gone")
        await asyncio.sleep(0.01)
        return b"y" * 1000

    with pytest.raises(RuntimeError, match="node gone"):
        async for _ in read_ahead(failing, 10_000, chunk=1000, window=4):
            pass
    assert max(started) < 10_000
