"""Response compression at the edge (core/web/compression.py) as a client sees it: brotli or gzip by the
request's Accept-Encoding, decoded by httpx; streamed bodies flushed chunk by chunk; what must never be
compressed (small bodies, Server-Sent Events, images, bodies already encoded, routes that opt out)."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.db.engine import Database
from pentad.core.policy import route_policy
from pentad.core.web.compression import preferred_encoding
from tests.conftest import make_settings

pytestmark = pytest.mark.one_engine

ROWS = [{"id": index, "name": f"row number {index}", "tags": ["alpha", "beta"]} for index in range(200)]
TEXT = "All work and no play makes Jack a dull boy.\n" * 100
CHUNKS = [f"chunk {index}: {'x' * 300}\n".encode() for index in range(4)]

router = APIRouter(prefix="/api/zip")


@router.get("/rows")
@route_policy(public="compression probe")
async def rows() -> list[dict[str, Any]]:
    return ROWS


@router.get("/small")
@route_policy(public="compression probe")
async def small() -> dict[str, str]:
    return {"small": "yes"}


@router.api_route("/text", methods=["GET", "HEAD"])
@route_policy(public="compression probe")
async def text() -> Response:
    return Response(TEXT, media_type="text/plain", headers={"ETag": '"t1"', "Accept-Ranges": "bytes"})


@router.get("/stream")
@route_policy(public="compression probe")
async def stream(request: Request) -> StreamingResponse:
    gate: asyncio.Queue[None] | None = getattr(request.app.state, "zip_gate", None)

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in CHUNKS:
            yield chunk
            if gate is not None:
                await gate.get()  # the next chunk only once the client has read this one

    return StreamingResponse(chunks(), media_type="application/x-ndjson+json")


@router.get("/events")
@route_policy(public="compression probe")
async def events() -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        yield f"data: {TEXT!r}\n\n".encode()

    return StreamingResponse(lines(), media_type="text/event-stream")


@router.get("/image")
@route_policy(public="compression probe")
async def image() -> Response:
    return Response(b"\x89PNG" + b"\0" * 4096, media_type="image/png")


@router.get("/encoded")
@route_policy(public="compression probe")
async def encoded() -> Response:
    return Response(
        zlib.compress(TEXT.encode(), wbits=31), media_type="text/plain", headers={"Content-Encoding": "gzip"}
    )


@router.get("/raw")
@route_policy(public="compression probe", compress=False)
async def raw() -> list[dict[str, Any]]:
    return ROWS


ZIP_APP = AppSpec(name="zipprobe", title="Compression probe", routers=[router])


@pytest.fixture
def app(tmp_path: Path, database_url: str, database: Database) -> FastAPI:
    return create_app(make_settings(tmp_path, database_url), database=database, apps=[ZIP_APP])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _fetch(client: httpx.AsyncClient, path: str, accept: str | None) -> tuple[httpx.Response, bytes]:
    """The response (decoded by httpx) and the bytes on the wire."""
    headers = {"Accept-Encoding": accept} if accept is not None else {"Accept-Encoding": ""}
    async with client.stream("GET", path, headers=headers) as response:
        wire = b"".join([chunk async for chunk in response.aiter_raw()])
    decoded = await client.get(path, headers=headers)
    return decoded, wire


def _vary(response: httpx.Response) -> set[str]:
    return {token.strip().lower() for token in response.headers.get("vary", "").split(",") if token.strip()}


# ------------------------------------------------------------------ choosing and decoding


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip", "gzip"),
        ("br;q=0.5, gzip;q=1.0", "gzip"),
        ("br;q=0.8, gzip;q=0.8", "br"),
        ("*", "br"),
        ("*;q=0.5, br;q=0", "gzip"),
        ("x-gzip", "gzip"),
        ("identity", None),
        ("br;q=0, gzip;q=0", None),
        ("br;q=nonsense, gzip;q=2", None),
        ("", None),
    ],
)
def test_the_encoding_follows_the_q_values(accept: str, expected: str | None) -> None:
    assert preferred_encoding(accept.encode()) == expected


@pytest.mark.parametrize(
    ("accept", "encoding"), [("gzip, deflate, br", "br"), ("gzip;q=1, br;q=0.1", "gzip")]
)
async def test_json_is_compressed_and_decodes_to_the_same_document(
    client: httpx.AsyncClient, accept: str, encoding: str
) -> None:
    decoded, wire = await _fetch(client, "/api/zip/rows", accept)
    assert decoded.status_code == 200
    assert decoded.headers["content-encoding"] == encoding
    assert decoded.json() == ROWS
    assert int(decoded.headers["content-length"]) == len(wire)
    assert len(wire) < len(json.dumps(ROWS)) / 4
    plain = brotli.decompress(wire) if encoding == "br" else zlib.decompress(wire, wbits=31)
    assert json.loads(plain) == ROWS
    assert "accept-encoding" in _vary(decoded)
    assert decoded.headers["x-content-type-options"] == "nosniff"  # the edge's other headers stay


async def test_without_accept_encoding_the_body_is_sent_as_it_is(client: httpx.AsyncClient) -> None:
    decoded, wire = await _fetch(client, "/api/zip/rows", None)
    assert "content-encoding" not in decoded.headers
    assert json.loads(wire) == ROWS
    assert int(decoded.headers["content-length"]) == len(wire)
    assert "accept-encoding" in _vary(decoded)  # a shared cache must not serve a compressed copy here


async def test_a_compressed_etag_turns_weak_and_ranges_go(client: httpx.AsyncClient) -> None:
    decoded, _ = await _fetch(client, "/api/zip/text", "br")
    assert decoded.text == TEXT
    assert decoded.headers["etag"] == 'W/"t1"'
    assert "accept-ranges" not in decoded.headers
    identity, _ = await _fetch(client, "/api/zip/text", None)
    assert (identity.headers["etag"], identity.headers["accept-ranges"]) == ('"t1"', "bytes")


async def test_head_is_never_compressed(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/zip/text", headers={"Accept-Encoding": "br"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(TEXT))


# ------------------------------------------------------------------ streams


@pytest.mark.parametrize("accept", ["br", "gzip"])
async def test_a_stream_is_compressed_and_decodes_whole(client: httpx.AsyncClient, accept: str) -> None:
    decoded, wire = await _fetch(client, "/api/zip/stream", accept)
    assert decoded.headers["content-encoding"] == accept
    assert "content-length" not in decoded.headers
    assert decoded.content == b"".join(CHUNKS)
    assert len(wire) < len(b"".join(CHUNKS))


@pytest.mark.parametrize("accept", ["br", "gzip"])
async def test_each_streamed_chunk_is_flushed_before_the_next_is_made(app: FastAPI, accept: str) -> None:
    """The route makes its next chunk only after the client decoded the previous one: a compressor that
    held data back would stall the stream (the timeout only guards the test run)."""
    gate: asyncio.Queue[None] = asyncio.Queue()
    app.state.zip_gate = gate
    decoder = brotli.Decompressor() if accept == "br" else zlib.decompressobj(wbits=31)
    decode = decoder.process if isinstance(decoder, brotli.Decompressor) else decoder.decompress
    received: list[bytes] = []
    start: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never hangs up
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["body"]:
            received.append(decode(message["body"]))
            gate.put_nowait(None)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/api/zip/stream", "raw_path": b"/api/zip/stream", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), (b"accept-encoding", accept.encode())],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    async with asyncio.timeout(10):
        await app(scope, receive, send)
    assert dict(start["headers"])[b"content-encoding"] == accept.encode()
    assert received[: len(CHUNKS)] == CHUNKS
    assert b"".join(received) == b"".join(CHUNKS)


# ------------------------------------------------------------------ left alone


@pytest.mark.parametrize(
    ("path", "vary"),
    [
        ("/api/zip/small", False),  # under 1 KiB: it never varies
        ("/api/zip/events", False),  # Server-Sent Events
        ("/api/zip/image", False),  # not text
        ("/api/zip/raw", False),  # the route opted out
    ],
)
async def test_what_is_never_compressed(client: httpx.AsyncClient, path: str, vary: bool) -> None:
    decoded, wire = await _fetch(client, path, "br, gzip")
    assert decoded.status_code == 200
    assert "content-encoding" not in decoded.headers
    assert wire == decoded.content
    assert ("accept-encoding" in _vary(decoded)) is vary
    if "content-length" in decoded.headers:
        assert int(decoded.headers["content-length"]) == len(wire)


async def test_a_body_already_encoded_passes_untouched(client: httpx.AsyncClient) -> None:
    decoded, wire = await _fetch(client, "/api/zip/encoded", "br")
    assert decoded.headers["content-encoding"] == "gzip"
    assert zlib.decompress(wire, wbits=31).decode() == TEXT
    assert decoded.text == TEXT
