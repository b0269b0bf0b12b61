"""GET /metrics for a process without a web app (`pentad worker`): the same series and the same rule as
`pentad serve`'s /metrics (a bearer credential holding `core.metrics.read`, checked against the database
like any other), on a small HTTP/1.1 listener of its own (PENTAD_JOBS__METRICS_PORT).

It answers one request per connection: GET or HEAD /metrics (a query string is ignored), 401 without a
credential or with a bad one, 403 without the permission, 404 for other paths, 405 for other methods,
400 for what is not HTTP. Request heads over 8 KiB or slower than 5 s are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from pentad.core.auth.dependencies import require
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.permissions import METRICS_READ
from pentad.core.auth.service import AuthService
from pentad.core.errors import AppError

if TYPE_CHECKING:
    from pentad.core.platform import Platform

logger = structlog.get_logger("pentad.metrics")

HEAD_LIMIT = 8192
HEAD_TIMEOUT = 5.0
SCRAPERS = require(METRICS_READ)


class MetricsPort:
    """`await start()`, then `close()`; `port` is the bound port (useful with port 0)."""

    def __init__(self, platform: Platform, host: str, port: int) -> None:
        self.platform = platform
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("metrics_port_listening", host=self.host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            status, body, method = await self._answer(head)
            content_type = CONTENT_TYPE_LATEST if status == 200 else "text/plain; charset=utf-8"
            lines = [
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}",
                "Cache-Control: no-store",
                "Connection: close",
            ]
            if status == 401:
                lines.append('WWW-Authenticate: Bearer realm="metrics"')
            if status == 405:
                lines.append("Allow: GET, HEAD")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[int, bytes, str]:
        try:
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
        except ValueError:
            return 400, b"Not an HTTP request.\n", ""
        if not version.startswith("HTTP/1."):
            return 400, b"Only HTTP/1.x is spoken here.\n", method
        if method not in ("GET", "HEAD"):
            return 405, b"Only GET and HEAD.\n", method
        if target.split("?", 1)[0] != "/metrics":
            return 404, b"Only /metrics is served here.\n", method
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return (
                401,
                b"Send a credential with core.metrics.read as `Authorization: Bearer <token>`.\n",
                method,
            )
        try:
            async with self.platform.database.transaction(writes=False) as session:
                principal = await AuthService(session, self.platform).authenticate_bearer(credential.strip())
            SCRAPERS.check(principal)
        except InvalidToken:
            return 401, b"Invalid credential.\n", method
        except AppError as error:
            return error.status, (error.message + "\n").encode(), method
        except Exception:
            logger.warning("metrics_port_failed", exc_info=True)
            return 500, b"The credential could not be checked; see the log.\n", method
        return 200, self.platform.metrics.render(), method
