# ruff: noqa: E501
"""A fake Anthropic Messages API on loopback (`POST /v1/messages`), for the official `anthropic` SDK pointed
at it with `base_url`: JSON answers and SSE streams with the real event sequence (`message_start`,
`content_block_start`, `content_block_delta` with `text_delta` / `input_json_delta`, `content_block_stop`,
`message_delta` with usage, `message_stop`, `ping`), tool_use blocks, and injected faults (llm_common.FAULTS):
529 `overloaded_error`, 429 with `retry-after`, 500, an `error` event inside a 200 stream, a hang, garbage.

    python -m tests.fakes.market.anthropic_api --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.market.llm_common import Script, Text, ToolCall, serve

HANG_SECONDS = 3600.0


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def input_tokens(body: dict[str, Any]) -> int:
    """A stand-in token count: words in the system prompt and messages (deterministic)."""
    return max(
        1, len(json.dumps(body.get("messages", [])).split()) + len(str(body.get("system", "")).split())
    )


class FakeAnthropic:
    def __init__(self) -> None:
        self.script = Script()
        self.counter = 0
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        # The SDK sends the key as `x-api-key` (older releases) or `Authorization: Bearer` (2.x).
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        self.script.api_keys.append(key)
        self.script.requests.append(body)
        if self.script.valid_keys is not None and key not in self.script.valid_keys:
            return _error(401, "authentication_error", "invalid x-api-key")
        if "model" not in body or "messages" not in body or "max_tokens" not in body:
            return _error(400, "invalid_request_error", "model, messages and max_tokens are required")
        fault = self.script.next_fault()
        if fault == "overloaded":
            return _error(529, "overloaded_error", "Overloaded")
        if fault == "429":
            return _error(429, "rate_limit_error", "Number of requests has exceeded your rate limit",
                          {"retry-after": "30"})  # fmt: skip
        if fault == "500":
            return _error(500, "api_error", "Internal server error")
        if fault == "hang":
            await asyncio.sleep(HANG_SECONDS)
        turn = self.script.next_turn()
        self.counter += 1
        message_id = f"msg_fake{self.counter:04d}"
        tokens_in = input_tokens(body)
        if isinstance(turn, ToolCall):
            block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_fake{self.counter:04d}", "name": turn.name,
                                     "input": turn.input}  # fmt: skip
            stop = "tool_use"
            text = ""
        else:
            text = turn.render(body)
            block = {"type": "text", "text": text}
            stop = "end_turn"
        tokens_out = max(1, len(text.split()) + (10 if stop == "tool_use" else 0))
        if not body.get("stream"):
            return JSONResponse({
                "id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                "content": [block], "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
            })  # fmt: skip
        return StreamingResponse(
            self._stream(body["model"], message_id, block, stop, tokens_in, tokens_out, fault),
            media_type="text/event-stream",
        )

    async def _stream(
        self, model: str, message_id: str, block: dict[str, Any], stop: str, tokens_in: int, tokens_out: int,
        fault: str | None,
    ) -> AsyncIterator[bytes]:  # fmt: skip
        if fault == "garbage":
            yield b"\x00\x9f<html>definitely not an event stream\n\n{{{\n\n"
            yield b"event: content_block_delta\ndata: {not json at all\n\n"
            return
        yield _sse("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": tokens_in, "output_tokens": 1},
        }})  # fmt: skip
        yield _sse("ping", {"type": "ping"})
        if block["type"] == "text":
            yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}})  # fmt: skip
            words = block["text"].split(" ")
            for n, word in enumerate(words):
                piece = word if n == 0 else " " + word
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": piece}})  # fmt: skip
                if fault == "midstream" and n == 1:
                    yield _sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                    "message": "Overloaded"}})  # fmt: skip
                    return
                if fault == "truncated" and n == 1:
                    return
        else:
            yield _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})  # fmt: skip
            raw = json.dumps(block["input"])
            for start in range(0, len(raw), 7):
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": raw[start : start + 7]}})  # fmt: skip
            if fault in ("midstream", "truncated"):
                if fault == "midstream":
                    yield _sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                    "message": "Overloaded"}})  # fmt: skip
                return
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": tokens_out}})  # fmt: skip
        yield _sse("message_stop", {"type": "message_stop"})


async def serving(fake: FakeAnthropic, port: int = 0) -> AsyncIterator[str]:
    async for url in serve(fake.app, port):
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    fake = FakeAnthropic()
    fake.script.turns.append(Text("The fake Anthropic API answers."))

    async def run() -> None:
        async for url in serving(fake, args.port):
            print(url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
