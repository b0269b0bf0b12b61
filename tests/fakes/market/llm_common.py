"""What the fake Anthropic and OpenAI APIs share: scripted turns, injected faults, loopback serving."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass
class Text:
    """A text answer: a string, or a function of the request body (e.g. quoting a tool result)."""

    text: str | Callable[[dict[str, Any]], str]

    def render(self, body: dict[str, Any]) -> str:
        return self.text(body) if callable(self.text) else self.text


@dataclass
class ToolCall:
    name: str
    input: dict[str, Any]


Turn = Text | ToolCall

FAULTS = ("overloaded", "429", "500", "midstream", "hang", "garbage", "truncated")
"""overloaded: HTTP 529 (Anthropic) / 503 (OpenAI) with the API's error body; 429 with retry-after; 500;
midstream: HTTP 200, some text, then the API's error event; hang: headers never come; garbage: HTTP 200
text/event-stream of bytes that are not events; truncated: the stream stops before its end event."""


@dataclass
class Script:
    turns: deque[Turn] = field(default_factory=deque)
    faults: deque[str] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)
    valid_keys: set[str] | None = None
    """None: any key is accepted; else only these (others get 401)."""

    def reset(self) -> None:
        self.turns.clear()
        self.faults.clear()
        self.requests.clear()
        self.api_keys.clear()
        self.valid_keys = None

    def next_turn(self) -> Turn:
        return self.turns.popleft() if self.turns else Text("I have nothing scripted to say.")

    def next_fault(self) -> str | None:
        return self.faults.popleft() if self.faults else None


async def serve(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 in this event loop until the generator is closed; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the fake stopped before it started")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await task
