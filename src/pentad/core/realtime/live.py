"""Long-lived requests of apps: their own WebSocket routes and HTTP streams (chunked responses, SSE).

Such a request outlives the moment its credentials were checked, so the core keeps checking them as it
does for the hub's own sockets: `LiveCredentials` is re-verified when a service calls `recheck` for its
principal (on every node, through the broker), every PENTAD_REALTIME__REVALIDATE_INTERVAL seconds, and at
the token's expiry; when they no longer hold (revoked, expired, or the route's permissions lost) the
request ends: an `AppSocket` closes with `SocketCloseCode`, a stream wrapped by `LiveCredentials.stream`
stops.

Neither holds a database session: a socket's handler opens `socket.transaction()` per message or unit of
work, and a streaming body `platform.database.transaction()` per chunk it stores or reads (the request's
own transaction commits before the response starts, core/db/transaction.py).

The dependencies that make them are in core/auth/dependencies.py (`Authenticator.socket`,
`Authenticator.live`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pentad.core.auth import tokens
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService
from pentad.core.errors import AppError

if TYPE_CHECKING:
    from pentad.core.platform import Platform

logger = structlog.get_logger("pentad.realtime")

Chunk = TypeVar("Chunk")


class SocketCloseCode(IntEnum):
    """Why the core closed an app's WebSocket (the HTTP status it stands for, plus 4000)."""

    UNAUTHORIZED = 4401
    """No credentials, bad ones, or they expired or were revoked while the socket was open: new token."""
    FORBIDDEN = 4403
    """Valid credentials that the route does not take (kind, credential or a missing permission)."""
    TOO_MANY_REQUESTS = 4429
    """The principal spent its request limit: retry later."""


def token_expiry(platform: Platform, token: str) -> float | None:
    """Unix time a token expires if it says so; None for API keys and service tokens (revalidated)."""
    kind = tokens.token_kind(token)
    if kind in (tokens.API_KEY, tokens.SERVICE_TOKEN):
        return None
    if scheme := platform.credential_schemes.get(kind):
        return scheme.expiry(platform, token)
    claims = tokens.read_jwt(
        platform.signing_secret,
        token,
        issuer=platform.settings.auth.issuer,
        audience=tokens.ACCESS_AUDIENCE,
    )
    return float(claims["exp"]) if claims else None


class LiveCredentials:
    """A long-lived request's principal, re-checked while it lasts (see the module docstring).

    `check` is the route's Authenticator rule (kind, credential, permissions); it raises AppError when the
    principal no longer passes. `ended` is set once, with `end_code` and `end_reason`."""

    def __init__(
        self,
        platform: Platform,
        principal: Principal,
        credential: str,
        check: Callable[[Principal], None],
        *,
        cookie: bool = False,
    ) -> None:
        self.platform = platform
        self.principal = principal
        self.check = check
        self._credential = credential
        self._cookie = cookie
        self.expires_at = None if cookie else token_expiry(platform, credential)
        self.revalidate_at = time.monotonic() + platform.settings.realtime.revalidate_interval
        self.ended = asyncio.Event()
        self.end_code = 0
        self.end_reason = ""
        self._on_end: list[Callable[[int, str], None]] = []

    def end(self, code: SocketCloseCode, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_code, self.end_reason = int(code), reason
        self.ended.set()
        for callback in self._on_end:
            callback(int(code), reason)

    def expire(self) -> None:
        self.end(SocketCloseCode.UNAUTHORIZED, "credentials expired")

    def on_end(self, callback: Callable[[int, str], None]) -> None:
        self._on_end.append(callback)

    @contextlib.contextmanager
    def watching(self) -> Iterator[LiveCredentials]:
        """While inside, the hub re-checks these credentials (revalidation, expiry, `recheck`)."""
        hub = self.platform.hub
        hub.live_credentials.add(self)
        try:
            yield self
        finally:
            hub.live_credentials.discard(self)

    async def revalidate(self, *, fresh: bool) -> None:
        """Verify the credential again (bypassing the principal cache when `fresh`) and the route's rule."""
        platform = self.platform
        if fresh:
            platform.principals.forget(self.principal.id)
        try:
            async with platform.database.transaction(writes=False) as session:
                service = AuthService(session, platform)
                if self._cookie:
                    principal = await service.authenticate_cookie(self._credential)
                else:
                    principal = await service.authenticate_bearer(self._credential)
            self.check(principal)
        except InvalidToken:
            expired = self.expires_at is not None and time.time() >= self.expires_at
            self.end(
                SocketCloseCode.UNAUTHORIZED, "credentials expired" if expired else "credentials revoked"
            )
            return
        except AppError as exc:
            self.end(SocketCloseCode.FORBIDDEN, exc.message)
            return
        except Exception:
            logger.exception("live_credentials_revalidation_failed", principal=str(self.principal.id))
        else:
            self.principal = principal
        self.revalidate_at = time.monotonic() + platform.settings.realtime.revalidate_interval

    async def stream(self, body: AsyncIterable[Chunk]) -> AsyncIterator[Chunk]:
        """`body`'s chunks until it ends or these credentials do (the response then ends, cleanly):

        return StreamingResponse(live.stream(events()), media_type="text/event-stream")
        """
        iterator = aiter(body)
        ended = asyncio.ensure_future(self.ended.wait())
        step: asyncio.Future[Chunk] | None = None
        try:
            with self.watching():
                while True:
                    step = asyncio.ensure_future(anext(iterator))
                    await asyncio.wait((step, ended), return_when=asyncio.FIRST_COMPLETED)
                    if not step.done():
                        return
                    try:
                        chunk = step.result()
                    except StopAsyncIteration:
                        return
                    yield chunk
        finally:
            ended.cancel()
            if step is not None and not step.done():
                # The body is abandoned mid-chunk: cancelling its step ends it where it waits.
                step.cancel()
                await asyncio.wait((step,))
            closing = getattr(iterator, "aclose", None)
            if closing is not None:
                await closing()


class AppSocket:
    """An app's authenticated WebSocket: what `Depends(require(...).socket)` gives its handler.

    Reads and writes are Starlette's; once the credentials end (or the client leaves) every read and write
    raises WebSocketDisconnect, so a handler ends by its ordinary `except WebSocketDisconnect`. It holds no
    database session: open `socket.transaction()` per message or unit of work."""

    def __init__(self, websocket: WebSocket, live: LiveCredentials) -> None:
        self.websocket = websocket
        self.live = live
        self._closing: asyncio.Task[None] | None = None
        live.on_end(self._close_for)

    @property
    def principal(self) -> Principal:
        return self.live.principal

    def transaction(self, *, writes: bool = True) -> AbstractAsyncContextManager[AsyncSession]:
        """A session for one unit of work; commits on success, then runs its buffered publishes and jobs."""
        return self.live.platform.database.transaction(writes=writes)

    def _close_for(self, code: int, reason: str) -> None:
        self._closing = asyncio.ensure_future(self.close(code, reason))

    def _check_open(self) -> None:
        if self.live.ended.is_set():
            raise WebSocketDisconnect(self.live.end_code, self.live.end_reason)
        if self.websocket.application_state != WebSocketState.CONNECTED:
            raise WebSocketDisconnect(1000, "closed")

    async def _read(self, read: Callable[[], Any]) -> Any:
        self._check_open()
        try:
            return await read()
        except WebSocketDisconnect:
            if self.live.ended.is_set():
                raise WebSocketDisconnect(self.live.end_code, self.live.end_reason) from None
            raise

    async def receive_text(self) -> str:
        text: str = await self._read(self.websocket.receive_text)
        return text

    async def receive_bytes(self) -> bytes:
        data: bytes = await self._read(self.websocket.receive_bytes)
        return data

    async def receive_json(self) -> Any:
        return await self._read(self.websocket.receive_json)

    async def send_text(self, text: str) -> None:
        self._check_open()
        await self.websocket.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        self._check_open()
        await self.websocket.send_bytes(data)

    async def send_json(self, data: Any) -> None:
        self._check_open()
        await self.websocket.send_json(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent; a client that already left is not an error)."""
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        with contextlib.suppress(RuntimeError, OSError):
            await self.websocket.close(code, reason)
