# ruff: noqa: E501
"""A fake OpenAI Chat Completions API on loopback (`POST /v1/chat/completions`), for the official `openai`
SDK pointed at it with `base_url`: JSON answers and SSE streams of `chat.completion.chunk` objects (content
deltas, `delta.tool_calls` fragments with the arguments in pieces, a usage chunk when
`stream_options.include_usage`, `data: [DONE]`), and injected faults (llm_common.FAULTS): 503 overloaded,
429 with `retry-after`, 500, an error object inside a 200 stream, a hang, garbage.

    python -m tests.fakes.market.openai_api --port 0
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
MIDSTREAM_ERROR = b'data: {"error": {"message": "The server is overloaded", "type": "server_error"}}\n\n'


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return JSONResponse(body, status_code=status, headers=headers)


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": completion_id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(data)}\n\n".encode()


class FakeOpenAI:
    def __init__(self) -> None:
        self.script = Script()
        self.counter = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.script.api_keys.append(key)
        self.script.requests.append(body)
        if self.script.valid_keys is not None and key not in self.script.valid_keys:
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        if "model" not in body or "messages" not in body:
            return _error(400, "invalid_request_error", "model and messages are required")
        fault = self.script.next_fault()
        if fault == "overloaded":
            return _error(503, "server_overloaded", "The server is overloaded, try again later.")
        if fault == "429":
            return _error(429, "rate_limit_exceeded", "Rate limit reached.", {"retry-after": "20"})
        if fault == "500":
            return _error(500, "server_error", "The server had an error while processing your request.")
        if fault == "hang":
            await asyncio.sleep(HANG_SECONDS)
        turn = self.script.next_turn()
        self.counter += 1
        completion_id = f"chatcmpl-fake{self.counter:04d}"
        tokens_in = max(1, len(json.dumps(body["messages"]).split()))
        call_id = f"call_fake{self.counter:04d}"
        if isinstance(turn, ToolCall):
            text, finish = "", "tool_calls"
            arguments = json.dumps(turn.input)
        else:
            text, finish, arguments = turn.render(body), "stop", ""
        tokens_out = max(1, len(text.split()) + (10 if finish == "tool_calls" else 0))
        usage = {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if isinstance(turn, ToolCall):
                message["tool_calls"] = [{"id": call_id, "type": "function",
                                          "function": {"name": turn.name, "arguments": arguments}}]  # fmt: skip
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": 1_700_000_000, "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            })  # fmt: skip
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def stream() -> AsyncIterator[bytes]:
            model = body["model"]
            if fault == "garbage":
                yield b"\x00\x9f<html>not an event stream\n\ndata: {broken json\n\n"
                return
            yield _chunk(completion_id, model, {"role": "assistant", "content": ""})
            if isinstance(turn, ToolCall):
                yield _chunk(completion_id, model, {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                                    "function": {"name": turn.name, "arguments": ""}}]})  # fmt: skip
                for start in range(0, len(arguments), 7):
                    yield _chunk(completion_id, model, {"tool_calls": [
                        {"index": 0, "function": {"arguments": arguments[start : start + 7]}}]})  # fmt: skip
                    if fault in ("midstream", "truncated") and start >= 7:
                        if fault == "midstream":
                            yield MIDSTREAM_ERROR
                        return
            else:
                words = text.split(" ")
                for n, word in enumerate(words):
                    yield _chunk(completion_id, model, {"content": word if n == 0 else " " + word})
                    if fault in ("midstream", "truncated") and n == 1:
                        if fault == "midstream":
                            yield MIDSTREAM_ERROR
                        return
            yield _chunk(completion_id, model, {}, finish)
            if include_usage:
                data = {"id": completion_id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                        "model": model, "choices": [], "usage": usage}  # fmt: skip
                yield f"data: {json.dumps(data)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


async def serving(fake: FakeOpenAI, port: int = 0) -> AsyncIterator[str]:
    async for url in serve(fake.app, port):
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    fake = FakeOpenAI()
    fake.script.turns.append(Text("The fake OpenAI API answers."))

    async def run() -> None:
        async for url in serving(fake, args.port):
            print(url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
