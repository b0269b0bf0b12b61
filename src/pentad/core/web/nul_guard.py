"""Refuses request input holding the NUL character (U+0000), once, for every route of every app.

PostgreSQL cannot store U+0000 in text (asyncpg refuses it, so the request would end in a 500), and on
SQLite and MariaDB it would cut the string short in many clients. So no route ever sees one: a JSON body, a
form body, a query parameter or the URL path holding U+0000 is answered with 422 `validation_failed`
before the route runs (and before authentication), its `errors` naming each field with the type
`nul_character`. Nothing is stored.

Multipart bodies are not inspected: a file may hold any byte. A route that stores a multipart text part
removes control characters itself (chat's attachment names do).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pentad.core.errors import problem_response

NUL = "\x00"
NUL_ERROR_TYPE = "nul_character"
NUL_MESSAGE = "must not contain the NUL character (U+0000)"
MAX_REPORTED = 20
"""A body with thousands of NULs gets a short answer; the first ones are enough to find the rest."""

# A NUL reaches a decoded string only through one of these in the raw bytes. The raw NUL byte covers
# UTF-16 and UTF-32 JSON (json.loads accepts them) and a NUL sent unescaped.
_JSON_MARKERS = (b"\\u0000", b"\x00")
_FORM_MARKERS = (b"%00", b"\x00")

_JSON = "json"
_FORM = "form"


def _body_kind(scope: Scope) -> str | None:
    """Which body parser a route would use: JSON (FastAPI parses only JSON media types), a URL-encoded
    form, or none worth checking."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-type":
            media_type = value.partition(b";")[0].strip().lower()
            if media_type == b"application/json" or (
                media_type.startswith(b"application/") and media_type.endswith(b"+json")
            ):
                return _JSON
            return _FORM if media_type == b"application/x-www-form-urlencoded" else None
    return None


def _shown(name: str) -> str:
    return name.replace(NUL, "\\u0000")


def _json_locations(document: Any) -> Iterator[list[str | int]]:
    """Where a decoded JSON document holds U+0000, in a key or a string value (iterative: any depth)."""
    stack: list[tuple[Any, list[str | int]]] = [(document, ["body"])]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                yield loc
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                if NUL in key:
                    yield [*loc, _shown(key)]
                else:
                    stack.append((item, [*loc, key]))
        elif isinstance(value, list):
            stack.extend((item, [*loc, index]) for index, item in reversed(list(enumerate(value))))


def _pairs_locations(raw: bytes, where: str) -> Iterator[list[str | int]]:
    """Where URL-encoded pairs (a query string or a form body) hold U+0000, decoded as Starlette does."""
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if NUL in name or NUL in value:
            yield [where, _shown(name)]


def body_locations(body: bytes, kind: str) -> list[list[str | int]]:
    if kind == _JSON:
        if not any(marker in body for marker in _JSON_MARKERS):
            return []
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return []  # Not JSON: the route answers that (400 malformed_json).
        return list(_json_locations(document))
    if not any(marker in body for marker in _FORM_MARKERS):
        return []
    return list(_pairs_locations(body, "body"))


def url_locations(scope: Scope) -> list[list[str | int]]:
    found: list[list[str | int]] = []
    if NUL in scope["path"]:
        found.append(["path"])
    query: bytes = scope["query_string"]
    if any(marker in query for marker in _FORM_MARKERS):
        found.extend(_pairs_locations(query, "query"))
    return found


class NulGuardMiddleware:
    """Answers 422 to a request whose path, query or JSON/form body holds U+0000 (see the module doc).

    Only JSON and URL-encoded bodies are read ahead (the body size limit outside bounds them); the route
    then gets the same bytes. Other bodies, uploads among them, stream through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = url_locations(scope)
        if found:
            await _refuse(found, scope, receive, send)
            return
        kind = _body_kind(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # The client went away before it finished sending.
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        found = body_locations(body, kind)
        if found:
            await _refuse(found, scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(found: list[list[str | int]], scope: Scope, receive: Receive, send: Send) -> None:
    errors = [{"loc": loc, "msg": NUL_MESSAGE, "type": NUL_ERROR_TYPE} for loc in found[:MAX_REPORTED]]
    where = ".".join(str(part) for part in found[0])
    response = problem_response(
        422,
        "validation_failed",
        f"{where}: {NUL_MESSAGE}",
        request_id=scope.get("state", {}).get("request_id"),
        errors=errors,
    )
    await response(scope, receive, send)
