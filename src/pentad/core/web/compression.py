"""Response compression at the edge: brotli (quality 4) or gzip (level 6), as the client's Accept-Encoding
prefers (q-values; brotli on a tie).

EdgeMiddleware (core/web/middleware.py) asks `preferred_encoding` once per request (a cached lookup) and, at
the response's start, `compressible`: a 2xx answer (not 204/206) with a text/*, JSON, JavaScript, CSS, XML
or SVG body of at least 1 KiB (or of unknown length), no Content-Encoding of its own, no `Cache-Control:
no-transform`, no Content-Range, from a route whose policy does not say `compress=False`. Such a response
gets `Vary: Accept-Encoding` whether or not it is compressed (a shared cache must not hand a compressed
copy to a client that cannot read it); a HEAD answer is never compressed. Never compressed:
`text/event-stream` (an event must reach the browser when it is sent, and the body is tiny) and WebSocket.

A body sent in one message is compressed in one go (off the event loop when it is large) and its
Content-Length fixed; a body sent in several (StreamingResponse, FileResponse) is compressed chunk by chunk
and flushed after each, so what the app sends reaches the client at once; Content-Length goes (chunked
transfer). A strong ETag becomes weak (the bytes differ from the identity representation's) and
Accept-Ranges goes. A one-message body under 1 KiB, held until it arrives, is sent as it was.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

import anyio.to_thread
import brotli
from starlette.types import Message, Send

MIN_BYTES: Final = 1024
BROTLI_QUALITY: Final = 4
BROTLI_STREAM_WINDOW: Final = 18
"""A streamed body's brotli window, 256 KiB (the default 4 MiB would be held per open stream)."""
GZIP_LEVEL: Final = 6
THREAD_BYTES: Final = 256 * 1024
"""Bodies (or chunks) larger than this are compressed in a worker thread, not on the event loop."""

_TYPES: Final = frozenset(
    {
        b"application/json",
        b"application/javascript",
        b"application/x-javascript",
        b"application/ecmascript",
        b"application/xml",
        b"application/xhtml+xml",
        b"image/svg+xml",
    }
)
_NOT_OVER_HEADERS: Final = frozenset({b"content-encoding", b"content-range"})
_NOT_COMPRESSED_STATUSES: Final = frozenset({204, 206, 304})
_ENCODINGS: Final = {"br": b"br", "gzip": b"gzip"}
_CACHE_SIZE: Final = 512
_preferred: dict[bytes, str | None] = {}


def preferred_encoding(accept_encoding: bytes) -> str | None:
    """The coding to answer an Accept-Encoding value with: "br", "gzip" or None (neither acceptable).
    Cached: browsers send a handful of distinct values."""
    try:
        return _preferred[accept_encoding]
    except KeyError:
        pass
    choice = _parse(accept_encoding)
    if len(_preferred) >= _CACHE_SIZE:
        _preferred.clear()
    _preferred[accept_encoding] = choice
    return choice


def _parse(accept_encoding: bytes) -> str | None:
    weights: dict[str, float] = {}
    for item in accept_encoding.decode("latin-1").split(","):
        coding, *parameters = item.split(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
                if not 0.0 <= weight <= 1.0:  # also NaN
                    weight = 0.0
        weights[coding] = weight
    anything = weights.get("*", 0.0)
    br = weights.get("br", anything)
    gzip = weights.get("gzip", weights.get("x-gzip", anything))
    if br <= 0.0 and gzip <= 0.0:
        return None
    return "br" if br >= gzip else "gzip"


def _compressible_type(content_type: bytes) -> bool:
    media_type = content_type.partition(b";")[0].strip().lower()
    if media_type.startswith(b"text/"):
        return media_type != b"text/event-stream"
    return media_type in _TYPES or media_type.endswith((b"+json", b"+xml"))


def compressible(status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response starting with `status` and `headers` is one to compress (see the module)."""
    if status < 200 or status >= 300 or status in _NOT_COMPRESSED_STATUSES:
        return False
    typed = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-type":
            if not _compressible_type(value):
                return False
            typed = True
        elif name == b"content-length":
            try:
                if int(value) < MIN_BYTES:
                    return False
            except ValueError:
                return False
        elif name in _NOT_OVER_HEADERS or (name == b"cache-control" and b"no-transform" in value.lower()):
            return False
    return typed


class _Stream:
    """Incremental compression with a flush after every chunk."""

    __slots__ = ("_brotli", "_gzip")

    def __init__(self, encoding: str) -> None:
        self._brotli = (
            brotli.Compressor(quality=BROTLI_QUALITY, lgwin=BROTLI_STREAM_WINDOW)
            if encoding == "br"
            else None
        )
        self._gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if encoding == "gzip" else None

    def chunk(self, data: bytes, *, last: bool) -> bytes:
        if self._brotli is not None:
            out = self._brotli.process(data) if data else b""
            # brotli-stubs 1.2.1 lack Compressor.flush, which brotli 1.2.1 has.
            return out + (self._brotli.finish() if last else self._brotli.flush())  # type: ignore[attr-defined]
        assert self._gzip is not None
        out = self._gzip.compress(data) if data else b""
        return out + self._gzip.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _whole(encoding: str, data: bytes) -> bytes:
    if encoding == "br":
        return brotli.compress(data, quality=BROTLI_QUALITY)
    return zlib.compress(data, GZIP_LEVEL, wbits=31)


async def _off_loop_if_large(function: Callable[[], bytes], size: int) -> bytes:
    if size > THREAD_BYTES:
        return await anyio.to_thread.run_sync(function)
    return function()


def _encoded_headers(
    headers: list[tuple[bytes, bytes]], encoding: str, length: int | None
) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length" or lower == b"accept-ranges":
            continue
        if lower == b"etag" and value.startswith(b'"'):
            value = b"W/" + value
        out.append((name, value))
    out.append((b"content-encoding", _ENCODINGS[encoding]))
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out


class ResponseCompression:
    """One compressible response on its way out: holds its start until the first body message tells
    whether it is one small body (sent as it was), one large body, or a stream."""

    __slots__ = ("_encoding", "_passthrough", "_send", "_start", "_stream")

    def __init__(self, send: Send, encoding: str, start: Message) -> None:
        self._send = send
        self._encoding = encoding
        self._start: Message | None = start
        self._stream: _Stream | None = None
        self._passthrough = False

    async def __call__(self, message: Message) -> None:
        send = self._send
        if self._passthrough:
            await send(message)
            return
        start = self._start
        if message["type"] != "http.response.body":
            # Not a body we can compress (a server extension such as pathsend): everything as it was.
            self._passthrough = True
            if start is not None:
                self._start = None
                await send(start)
            await send(message)
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        encoding = self._encoding
        if start is not None:
            self._start = None
            headers = list(start.get("headers", ()))
            if not more:
                self._passthrough = True
                if len(body) < MIN_BYTES:
                    await send(start)
                    await send(message)
                    return
                data = await _off_loop_if_large(lambda: _whole(encoding, body), len(body))
                start["headers"] = _encoded_headers(headers, encoding, len(data))
                await send(start)
                await send({"type": "http.response.body", "body": data, "more_body": False})
                return
            start["headers"] = _encoded_headers(headers, encoding, None)
            self._stream = _Stream(encoding)
            await send(start)
        stream = self._stream
        assert stream is not None
        if not body and more:
            return
        data = await _off_loop_if_large(lambda: stream.chunk(body, last=not more), len(body))
        if not more:
            self._passthrough = True
        await send({"type": "http.response.body", "body": data, "more_body": more})
