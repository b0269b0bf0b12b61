"""A /ws connection driven in-process: the app's real WebSocket endpoint and hub, no network and no server.

It runs in the test's event loop on the test's database connection, so realtime tests run on every
database like the rest. Requests are awaited one at a time (the connection is shared with the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI

WAIT = 10.0


class Socket:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._backlog: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/ws",
            "raw_path": b"/ws",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "subprotocols": [],
        }
        self._task = asyncio.create_task(self.app(scope, self._incoming.get, self._sent))
        await self._incoming.put({"type": "websocket.connect"})
        accepted = await self.next_message()
        assert accepted["type"] == "websocket.accept", accepted

    async def _sent(self, message: MutableMapping[str, Any]) -> None:
        await self._outgoing.put(dict(message))

    async def close(self) -> None:
        await self._incoming.put({"type": "websocket.disconnect", "code": 1000})
        if self._task is not None:
            async with asyncio.timeout(WAIT):
                with contextlib.suppress(Exception):
                    await self._task

    async def next_message(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            return await self._outgoing.get()

    async def send(self, frame: dict[str, Any]) -> None:
        await self._incoming.put({"type": "websocket.receive", "text": orjson.dumps(frame).decode()})

    async def recv(self) -> dict[str, Any]:
        if self._backlog:
            return self._backlog.pop(0)
        message = await self.next_message()
        assert message["type"] == "websocket.send", message
        frame: dict[str, Any] = orjson.loads(message["text"])
        return frame

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its acknowledgement; frames read meanwhile stay for `event`."""
        request_id = next(self._ids)
        await self.send({"op": op, "id": request_id, **fields})
        skipped: list[dict[str, Any]] = []
        while True:
            frame = await self.recv()
            if frame["op"] == "ack" and frame["id"] == request_id:
                self._backlog[:0] = skipped
                return frame
            skipped.append(frame)

    async def event(self, topic: str | None = None) -> dict[str, Any]:
        """The next event (of `topic`), skipping presence frames and pings."""
        while True:
            frame = await self.recv()
            if frame["op"] == "event" and (topic is None or frame["topic"] == topic):
                return frame

    def pending_events(self) -> list[dict[str, Any]]:
        """Events already delivered and not read yet (without waiting)."""
        frames = list(self._backlog)
        self._backlog.clear()
        while not self._outgoing.empty():
            message = self._outgoing.get_nowait()
            if message["type"] == "websocket.send":
                frames.append(orjson.loads(message["text"]))
        return [frame for frame in frames if frame["op"] == "event"]


async def refused_with(app: FastAPI, token: str) -> int | None:
    """The close code the server answers an `auth` frame with, or None if it accepted the token."""
    socket = Socket(app)
    await socket.open()
    try:
        await socket.send({"op": "auth", "id": 1, "token": token})
        answer = await socket.next_message()
        if answer["type"] == "websocket.close":
            code: int = answer["code"]
            return code
        return None
    finally:
        await socket.close()


@asynccontextmanager
async def connected(app: FastAPI, token: str) -> AsyncIterator[Socket]:
    """An authenticated socket."""
    socket = Socket(app)
    await socket.open()
    try:
        ack = await socket.request("auth", token=token)
        assert ack["ok"], ack
        yield socket
    finally:
        await socket.close()


async def settle() -> None:
    """Let the hub hand published events to the sockets' writers."""
    for _ in range(20):
        await asyncio.sleep(0)
