"""The AI providers behind the advisor, through their official SDKs: Anthropic's Messages API (streamed
events) and OpenAI's Chat Completions (streamed chunks), each running the tool loop: the model asks for
tools, the ToolBox answers from the user's data, the model answers in text, within AI_MAX_TOOL_ROUNDS.

Anything that keeps an answer from completing raises `ProviderFailed` with a short reason (the next
provider takes over): a timeout (connect, first event, whole answer), 429, 5xx and 529 (overloaded), an
`error` event inside a 200 stream, a stream that ends early or carries bytes that are not events, a refused
key. The SDKs' own retries are off (`max_retries=0`): failover is the retry. Keys are handed to the SDK
only; they never go into a reason, a log line or an exception text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from pentad.apps.market.advisor.tools import ToolBox

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Send an event to the asker: ("delta", {"text"}), ("tool", {"name"}), ("reset", {...}), ("done", {...})."""

ProviderName = Literal["anthropic", "openai"]
MAX_TOKENS = 1024


class ProviderFailed(Exception):
    """The provider could not answer; `reason` is safe to show and store (no key, no body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ProviderAnswer:
    text: str
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_token: float
    total: float


class Provider(Protocol):
    name: ProviderName
    own_key: bool

    async def answer(
        self, system: str, history: list[tuple[str, str]], question: str, tools: ToolBox, emit: Emit,
        max_rounds: int,
    ) -> ProviderAnswer: ...  # fmt: skip


def _reason(error: BaseException) -> str:
    """A short, key-free reason for a provider error."""
    # The SDKs are imported when first used (as here, once a provider exists): importing them costs every
    # `pentad` command and server start seconds, and most never ask the advisor anything.
    import anthropic
    import openai

    if isinstance(error, ProviderFailed):
        return error.reason
    if isinstance(error, asyncio.TimeoutError | anthropic.APITimeoutError | openai.APITimeoutError):
        return "timeout"
    if isinstance(error, anthropic.APIStatusError | openai.APIStatusError):
        status = error.status_code
        if status == 200:  # an error event inside the stream (e.g. Anthropic's overloaded_error)
            return "overloaded (in stream)" if "overload" in str(error).lower() else "error event in stream"
        if status == 529 or (status == 503 and "overload" in str(error).lower()):
            return f"overloaded ({status})"
        if status == 429:
            return "rate limited (429)"
        if status in (401, 403):
            return f"key refused ({status})"
        return f"HTTP {status}"
    if isinstance(error, anthropic.APIConnectionError | openai.APIConnectionError | httpx.TransportError):
        return "connection failed"
    if isinstance(error, anthropic.APIError | openai.APIError):
        text = str(error).lower()
        return "overloaded (in stream)" if "overload" in text else "error event in stream"
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError | KeyError | ValueError | TypeError):
        return "unreadable stream"
    return f"failed ({type(error).__name__})"


async def _events(stream: Any, timeouts: Timeouts, started: float) -> Any:
    """The stream's events, the first within FIRST_TOKEN_TIMEOUT, all within TOTAL_TIMEOUT."""
    loop = asyncio.get_running_loop()
    iterator = stream.__aiter__()
    first = True
    while True:
        left = timeouts.total - (loop.time() - started)
        if left <= 0:
            raise ProviderFailed("timeout")
        wait = min(left, timeouts.first_token) if first else left
        try:
            event = await asyncio.wait_for(iterator.__anext__(), wait)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ProviderFailed("timeout") from None
        first = False
        yield event


async def _opened(call: Awaitable[Any], timeouts: Timeouts, started: float) -> Any:
    """The stream's response, its headers within FIRST_TOKEN_TIMEOUT (a provider that hangs before
    answering fails over as fast as one that hangs mid-stream)."""
    left = timeouts.total - (asyncio.get_running_loop().time() - started)
    try:
        return await asyncio.wait_for(call, max(0.001, min(left, timeouts.first_token)))
    except TimeoutError:
        raise ProviderFailed("timeout") from None


class AnthropicProvider:
    name: ProviderName = "anthropic"

    def __init__(self, api_key: str, model: str, base_url: str | None, timeouts: Timeouts, *, own_key: bool):
        self.own_key = own_key
        self.model = model
        self.timeouts = timeouts
        import anthropic

        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=anthropic.Timeout(timeouts.total, connect=timeouts.connect),
        )

    async def answer(
        self, system: str, history: list[tuple[str, str]], question: str, tools: ToolBox, emit: Emit,
        max_rounds: int,
    ) -> ProviderAnswer:  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        specs = [
            {"name": s.name, "description": s.description, "input_schema": s.schema} for s in tools.specs
        ]
        messages: list[dict[str, Any]] = [{"role": role, "content": text} for role, text in history]
        messages.append({"role": "user", "content": question})
        tokens_in = tokens_out = 0
        try:
            for round_ in range(max_rounds + 1):
                offer = specs if round_ < max_rounds else []
                create: Any = self.client.messages.create  # the SDK's overloads want literal types
                stream = await _opened(create(
                    model=self.model, max_tokens=MAX_TOKENS, system=system, messages=messages,
                    stream=True, **({"tools": offer} if offer else {}),
                ), self.timeouts, started)  # fmt: skip
                blocks: dict[int, dict[str, Any]] = {}
                stop: str | None = None
                finished = False
                async with stream:
                    async for event in _events(stream, self.timeouts, started):
                        kind = event.type
                        if kind == "message_start":
                            tokens_in += event.message.usage.input_tokens
                        elif kind == "content_block_start":
                            block = event.content_block
                            if block.type == "tool_use":
                                blocks[event.index] = {"type": "tool_use", "id": block.id, "name": block.name,
                                                       "json": ""}  # fmt: skip
                            else:
                                blocks[event.index] = {"type": "text", "text": ""}
                        elif kind == "content_block_delta":
                            delta = event.delta
                            if delta.type == "text_delta":
                                blocks[event.index]["text"] += delta.text
                                await emit("delta", {"text": delta.text})
                            elif delta.type == "input_json_delta":
                                blocks[event.index]["json"] += delta.partial_json
                        elif kind == "message_delta":
                            stop = event.delta.stop_reason
                            tokens_out += event.usage.output_tokens
                        elif kind == "message_stop":
                            finished = True
                if not finished:
                    raise ProviderFailed("stream ended early")
                ordered = [blocks[i] for i in sorted(blocks)]
                calls = [b for b in ordered if b["type"] == "tool_use"]
                if stop != "tool_use" or not calls:
                    text = "".join(b["text"] for b in ordered if b["type"] == "text").strip()
                    if not text:
                        raise ProviderFailed("empty answer")
                    return ProviderAnswer(text, tokens_in, tokens_out)
                content: list[dict[str, Any]] = []
                results: list[dict[str, Any]] = []
                for block in ordered:
                    if block["type"] == "text":
                        if block["text"]:
                            content.append({"type": "text", "text": block["text"]})
                        continue
                    args = json.loads(block["json"] or "{}")
                    content.append(
                        {"type": "tool_use", "id": block["id"], "name": block["name"], "input": args}
                    )
                    await emit("tool", {"name": block["name"]})
                    result = await tools.call(block["name"], args)
                    results.append({"type": "tool_result", "tool_use_id": block["id"],
                                    "content": tools.encode(result)})  # fmt: skip
                messages.append({"role": "assistant", "content": content})
                messages.append({"role": "user", "content": results})
            raise ProviderFailed("too many tool rounds")
        except ProviderFailed:
            raise
        except Exception as error:  # every SDK, HTTP or stream error is a failover, with a safe reason
            raise ProviderFailed(_reason(error)) from None


class OpenAIProvider:
    name: ProviderName = "openai"

    def __init__(self, api_key: str, model: str, base_url: str | None, timeouts: Timeouts, *, own_key: bool):
        self.own_key = own_key
        self.model = model
        self.timeouts = timeouts
        import openai

        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=openai.Timeout(timeouts.total, connect=timeouts.connect),
        )

    async def answer(
        self, system: str, history: list[tuple[str, str]], question: str, tools: ToolBox, emit: Emit,
        max_rounds: int,
    ) -> ProviderAnswer:  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        specs = [{"type": "function", "function": {"name": s.name, "description": s.description,
                                                   "parameters": s.schema}} for s in tools.specs]  # fmt: skip
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        messages.extend({"role": role, "content": text} for role, text in history)
        messages.append({"role": "user", "content": question})
        tokens_in = tokens_out = 0
        try:
            for round_ in range(max_rounds + 1):
                offer = specs if round_ < max_rounds else []
                create: Any = self.client.chat.completions.create  # the SDK's overloads want literal types
                stream = await _opened(create(
                    model=self.model, messages=messages, stream=True,
                    stream_options={"include_usage": True}, max_completion_tokens=MAX_TOKENS,
                    **({"tools": offer} if offer else {}),
                ), self.timeouts, started)  # fmt: skip
                text = ""
                calls: dict[int, dict[str, str]] = {}
                finish: str | None = None
                async with stream:
                    async for chunk in _events(stream, self.timeouts, started):
                        if chunk.usage is not None:
                            tokens_in += chunk.usage.prompt_tokens
                            tokens_out += chunk.usage.completion_tokens
                        for choice in chunk.choices:
                            delta = choice.delta
                            if delta.content:
                                text += delta.content
                                await emit("delta", {"text": delta.content})
                            for call in delta.tool_calls or []:
                                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                                if call.id:
                                    slot["id"] = call.id
                                if call.function is not None:
                                    slot["name"] += call.function.name or ""
                                    slot["arguments"] += call.function.arguments or ""
                            if choice.finish_reason:
                                finish = choice.finish_reason
                if finish is None:
                    raise ProviderFailed("stream ended early")
                if finish != "tool_calls" or not calls:
                    if not text.strip():
                        raise ProviderFailed("empty answer")
                    return ProviderAnswer(text.strip(), tokens_in, tokens_out)
                ordered = [calls[i] for i in sorted(calls)]
                messages.append({"role": "assistant", "content": text or None, "tool_calls": [
                    {"id": c["id"], "type": "function",
                     "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in ordered]})  # fmt: skip
                for call_slot in ordered:
                    args = json.loads(call_slot["arguments"] or "{}")
                    await emit("tool", {"name": call_slot["name"]})
                    result = await tools.call(call_slot["name"], args)
                    messages.append(
                        {"role": "tool", "tool_call_id": call_slot["id"], "content": tools.encode(result)}
                    )
            raise ProviderFailed("too many tool rounds")
        except ProviderFailed:
            raise
        except Exception as error:  # every SDK, HTTP or stream error is a failover, with a safe reason
            raise ProviderFailed(_reason(error)) from None
