"""JSON-RPC 2.0 framing between the panel and a plugin: one UTF-8 JSON object per line.

Both sides send requests (`id` set: an answer is expected) and answer the other's. Errors use the standard
codes plus the panel's: CAPABILITY_DENIED when a plugin calls a method its granted capabilities do not
allow, FAILED when a handler raised.
"""

from __future__ import annotations

import json
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
CAPABILITY_DENIED = -32001
FAILED = -32002

MAX_FRAME_BYTES = 1_048_576


class RpcError(Exception):
    """An error answer: `code` (see the constants) and `message`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def request(request_id: int | str | None, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if request_id is not None:
        message["id"] = request_id
    return encode(message)


def result(request_id: int | str | None, value: Any) -> bytes:
    return encode({"jsonrpc": "2.0", "id": request_id, "result": value})


def error(request_id: int | str | None, failure: RpcError) -> bytes:
    return encode({"jsonrpc": "2.0", "id": request_id, "error": failure.to_json()})


def decode(line: bytes) -> dict[str, Any]:
    """One frame as a JSON-RPC message; RpcError(PARSE_ERROR / INVALID_REQUEST) when it is not one."""
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise RpcError(PARSE_ERROR, f"not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "not a JSON-RPC 2.0 object")
    has_method = isinstance(message.get("method"), str)
    is_answer = "id" in message and ("result" in message or isinstance(message.get("error"), dict))
    if not has_method and not is_answer:
        raise RpcError(INVALID_REQUEST, "neither a request nor an answer")
    return message
