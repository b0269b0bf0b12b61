"""The /ws endpoint: admission, authentication, the client operations and their acknowledgements.

A bare ASGI app rather than a Starlette WebSocket handler: the hot path hands prebuilt ASGI messages to
`send` with nothing in between. One coroutine per socket reads and handles the client's frames in order;
the hub's writer task sends; the hub's maintenance task pings, times out and schedules revalidation.

Sockets that have not authenticated yet cost the server without anyone answering for them, so they are
counted, per client address and in all, and the handshake of one more beyond either limit is refused.
(The frame size limit is the protocol layer's: `pentad serve` gives uvicorn `ws_max_size`.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson
import structlog
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService
from pentad.core.errors import AppError
from pentad.core.platform import Platform
from pentad.core.policy import UNLIMITED, route_policy
from pentad.core.realtime.brokers import BrokerUnavailable
from pentad.core.realtime.hub import Connection, Hub
from pentad.core.realtime.live import token_expiry
from pentad.core.realtime.protocol import (
    AuthRequest,
    AuthResult,
    CallRequest,
    ClientFrame,
    CloseCode,
    ErrorCode,
    PingRequest,
    Pong,
    PresenceRequest,
    PresenceResult,
    PrincipalInfo,
    PublishRequest,
    PublishResult,
    SubscribeRequest,
    Unsubscribed,
    UnsubscribeRequest,
    ack_frame,
    client_frame_adapter,
    encode,
    error_frame,
)
from pentad.core.realtime.topics import TopicAccess, TopicAction, TopicCall, TopicMatch
from pentad.core.realtime.wsserver import frame_writer
from pentad.core.security import scope_client_address

logger = structlog.get_logger("pentad.realtime")

PONG_TEXT = '{"op":"pong"}'
_PONG = Pong(op="pong")


class RequestError(Exception):
    """A client operation failed; answered with a failed acknowledgement."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _request_id(text: str) -> int | None:
    """The `id` of a frame that failed validation, to address the error to it."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and type(data.get("id")) is int and 0 <= data["id"] < 2**53:
        return int(data["id"])
    return None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "frame"
    return f"{where}: {first['msg']}"


class Unauthenticated:
    """How many sockets wait for their first `auth`, per client address and in all."""

    def __init__(self, total: int, per_address: int) -> None:
        self.limit = total
        self.per_address_limit = per_address
        self.total = 0
        self.by_address: Counter[str] = Counter()

    def refusal(self, address: str) -> tuple[int, str, str] | None:
        """(HTTP status, problem code, message) if one more socket from `address` is too many."""
        if self.by_address[address] >= self.per_address_limit:
            return 429, "too_many_unauthenticated", "Too many sockets from your address await `auth`."
        if self.total >= self.limit:
            return 503, "server_busy", "Too many sockets await `auth`; retry shortly."
        return None

    def enter(self, address: str) -> PendingAuth:
        self.total += 1
        self.by_address[address] += 1
        return PendingAuth(self, address)


class PendingAuth:
    """One socket counted as unauthenticated until it authenticates or ends (`leave`, idempotent)."""

    __slots__ = ("address", "counts")

    def __init__(self, counts: Unauthenticated, address: str) -> None:
        self.counts: Unauthenticated | None = counts
        self.address = address

    def leave(self) -> None:
        counts, self.counts = self.counts, None
        if counts is None:
            return
        counts.total -= 1
        counts.by_address[self.address] -= 1
        if counts.by_address[self.address] <= 0:
            del counts.by_address[self.address]


@route_policy(
    public="the hub's protocol authenticates with its first frame (docs/realtime.md)", rate_limit=UNLIMITED
)
class RealtimeEndpoint:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.hub: Hub = platform.hub
        self.settings = platform.settings.realtime
        self.hub.revalidate = self.revalidate
        self.hub.may_still_read = self.may_still_read
        self.unauthenticated = Unauthenticated(
            self.settings.max_unauthenticated, self.settings.max_unauthenticated_per_address
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        address = scope_client_address(scope)
        refusal = self.unauthenticated.refusal(address)
        if refusal is not None:
            logger.warning("realtime_socket_refused", client=address, code=refusal[1])
            await _refuse(scope, send, *refusal)
            return
        pending = self.unauthenticated.enter(address)
        try:
            await send({"type": "websocket.accept"})
            connection = self.hub.connect(send, frame_writer(scope.get("extensions")))
            try:
                await self._serve(connection, receive, pending)
            except asyncio.CancelledError:
                # The hub abandons a connection whose close frame cannot be delivered; that ends here.
                if not connection.abandoned:
                    raise
            except Exception:
                logger.exception("realtime_connection_failed", connection=connection.id)
                connection.close(CloseCode.INTERNAL_ERROR, "server error")
            finally:
                await self.hub.disconnect(connection)
        finally:
            pending.leave()

    # ------------------------------------------------------------------ reading

    async def _serve(self, connection: Connection, receive: Receive, pending: PendingAuth) -> None:
        try:
            async with asyncio.timeout(self.settings.auth_timeout):
                message = await receive()
        except TimeoutError:
            connection.close(CloseCode.AUTH_TIMEOUT, "no auth frame in time")
            await _drain(receive)
            return
        if message["type"] == "websocket.disconnect":
            return
        first = self._parse(connection, message)
        if not isinstance(first, AuthRequest):
            connection.close(CloseCode.AUTH_FAILED, "the first frame must be auth")
        elif await self._authenticate(connection, first):
            pending.leave()
            while (message := await receive())["type"] != "websocket.disconnect":
                if not connection.closed:
                    frame = self._parse(connection, message)
                    if frame is not None:
                        await self._handle(connection, frame)
            return
        await _drain(receive)

    def _parse(self, connection: Connection, message: Message) -> ClientFrame | None:
        """The client frame, or None after answering (or closing for) a bad one."""
        connection.last_seen = time.monotonic()
        text: str | None = message.get("text")
        if text is None:
            try:
                text = bytes(message.get("bytes") or b"").decode()
            except UnicodeDecodeError:
                connection.close(CloseCode.BAD_MESSAGE, "frames are UTF-8 JSON")
                return None
        if text == PONG_TEXT:
            return _PONG
        if len(text) > self.settings.max_message_bytes:
            connection.close(CloseCode.BAD_MESSAGE, "frame too large")
            return None
        try:
            return client_frame_adapter.validate_json(text)
        except ValidationError as exc:
            request_id = _request_id(text)
            if request_id is None:
                connection.close(CloseCode.BAD_MESSAGE, "not a valid frame")
            else:
                connection.send_text(error_frame(request_id, ErrorCode.BAD_REQUEST, _describe(exc)))
            return None

    async def _handle(self, connection: Connection, frame: ClientFrame) -> None:
        if isinstance(frame, Pong):
            return
        if isinstance(frame, AuthRequest):
            await self._authenticate(connection, frame)
            return
        try:
            if isinstance(frame, SubscribeRequest):
                await self._subscribe(connection, frame)
            elif isinstance(frame, UnsubscribeRequest):
                if frame.topic not in connection.topics:
                    raise RequestError(ErrorCode.NOT_SUBSCRIBED, "You are not subscribed to this topic.")
                await self.hub.unsubscribe(connection, frame.topic)
                connection.send_text(ack_frame(frame.id))
            elif isinstance(frame, PublishRequest):
                await self._publish(connection, frame)
            elif isinstance(frame, PresenceRequest):
                await self._presence(connection, frame)
            elif isinstance(frame, CallRequest):
                await self._call(connection, frame)
            elif isinstance(frame, PingRequest):
                connection.send_text(ack_frame(frame.id))
        except RequestError as exc:
            connection.send_text(error_frame(frame.id, exc.code, exc.message))
        except BrokerUnavailable:
            message = "The realtime broker is unavailable; try again shortly."
            connection.send_text(error_frame(frame.id, ErrorCode.UNAVAILABLE, message))

    # ------------------------------------------------------------------ authentication

    async def _check_token(self, token: str) -> tuple[Principal, float | None]:
        async with self.platform.database.transaction(writes=False) as session:
            principal = await AuthService(session, self.platform).authenticate_bearer(token)
        return principal, token_expiry(self.platform, token)

    async def _authenticate(self, connection: Connection, frame: AuthRequest) -> bool:
        """Authenticate (first frame) or re-authenticate; False when the connection is being closed."""
        first = connection.principal is None
        try:
            principal, expires_at = await self._check_token(frame.token)
        except InvalidToken:
            if first:
                connection.close(CloseCode.AUTH_FAILED, "invalid credentials")
                return False
            message = "The token is invalid, expired or revoked; the connection keeps its credentials."
            connection.send_text(error_frame(frame.id, ErrorCode.AUTH_FAILED, message))
            return True
        current = connection.principal
        if current is not None and (current.kind, current.id) != (principal.kind, principal.id):
            message = "A connection cannot change who it is; open a new one."
            connection.send_text(error_frame(frame.id, ErrorCode.PRINCIPAL_CHANGED, message))
            return True
        connection.principal = principal
        connection.token = frame.token
        connection.expires_at = expires_at
        connection.revalidate_at = time.monotonic() + self.settings.revalidate_interval
        result = AuthResult(
            principal=PrincipalInfo(id=str(principal.id), kind=principal.kind),
            connection_id=connection.id,
            expires_at=expires_at,
            heartbeat_interval=self.settings.heartbeat_interval,
            idle_timeout=self.settings.idle_timeout,
        )
        connection.send_text(ack_frame(frame.id, result))
        return True

    async def revalidate(self, connection: Connection, fresh: bool = False) -> None:  # noqa: FBT001, FBT002
        """Close the socket if its credentials were revoked; end subscriptions it may no longer read.

        `fresh`: the principal's access just changed (Hub.recheck), so its cached credentials are dropped
        on this node first."""
        token = connection.token
        interval = self.settings.revalidate_interval
        if fresh and connection.principal is not None:
            self.platform.principals.forget(connection.principal.id)
        try:
            principal, _ = await self._check_token(token)
        except InvalidToken:
            if connection.token != token:
                connection.revalidate_at = time.monotonic()
                return
            expired = connection.expires_at is not None and time.time() >= connection.expires_at
            if expired:
                connection.close(CloseCode.CREDENTIALS_EXPIRED, "credentials expired")
            else:
                connection.close(CloseCode.CREDENTIALS_REVOKED, "credentials revoked")
            return
        except Exception:
            logger.exception("realtime_revalidation_failed", connection=connection.id)
            connection.revalidate_at = time.monotonic() + interval
            return
        if connection.closed:
            return
        if connection.token == token:
            connection.principal = principal
        for topic in list(connection.topics):
            if not await self.may_still_read(connection, topic):
                await self.hub.unsubscribe(connection, topic)
                connection.send_text(encode(Unsubscribed(topic=topic, reason="forbidden")))
        connection.revalidate_at = time.monotonic() + interval

    async def may_still_read(self, connection: Connection, topic: str) -> bool:
        """Whether the connection's principal may (still) subscribe to `topic`."""
        match = self.hub.registry.match(topic)
        return match is not None and await self._allowed(connection, match, topic, "subscribe")

    # ------------------------------------------------------------------ operations

    def _match(self, topic: str) -> TopicMatch:
        match = self.hub.registry.match(topic)
        if match is None:
            raise RequestError(ErrorCode.UNKNOWN_TOPIC, f"There is no topic {topic!r}.")
        return match

    async def _allowed(
        self, connection: Connection, match: TopicMatch, topic: str, action: TopicAction
    ) -> bool:
        """The topic's required permission, then its authorize callback (deny by default: an error denies)."""
        principal = connection.principal
        assert principal is not None
        if not principal.has(match.spec.requires):
            return False
        async with self.platform.database.transaction(writes=False) as session:
            access = TopicAccess(principal, topic, match.params, action, session, self.platform)
            try:
                return await match.spec.authorize(access) is True
            except Exception:
                logger.exception("realtime_authorize_failed", topic=topic, action=action)
                return False

    async def _require(
        self, connection: Connection, match: TopicMatch, topic: str, action: TopicAction
    ) -> None:
        if not await self._allowed(connection, match, topic, action):
            raise RequestError(ErrorCode.FORBIDDEN, f"You may not {action} on this topic.")

    async def _subscribe(self, connection: Connection, request: SubscribeRequest) -> None:
        match = self._match(request.topic)
        if request.topic in connection.topics:
            raise RequestError(ErrorCode.ALREADY_SUBSCRIBED, "You are already subscribed to this topic.")
        if len(connection.topics) >= self.settings.max_subscriptions:
            raise RequestError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS, "This connection has too many subscriptions."
            )
        await self._require(connection, match, request.topic, "subscribe")
        await self.hub.subscribe(
            connection, request.id, request.topic, match.spec, request.since, request.epoch
        )

    async def _publish(self, connection: Connection, request: PublishRequest) -> None:
        match = self._match(request.topic)
        if not match.spec.client_publish:
            raise RequestError(ErrorCode.PUBLISH_NOT_ALLOWED, "Clients may not publish on this topic.")
        await self._require(connection, match, request.topic, "publish")
        data_json = orjson.dumps(request.data).decode()
        seq, epoch = await self.hub.publish_json(request.topic, match.spec, data_json)
        connection.send_text(ack_frame(request.id, PublishResult(seq=seq, epoch=epoch)))

    async def _presence(self, connection: Connection, request: PresenceRequest) -> None:
        match = self._match(request.topic)
        if not match.spec.presence:
            raise RequestError(ErrorCode.PRESENCE_NOT_ENABLED, "This topic has no presence.")
        await self._require(connection, match, request.topic, "presence")
        members = await self.hub.presence(request.topic)
        connection.send_text(ack_frame(request.id, PresenceResult(members=members)))

    async def _call(self, connection: Connection, request: CallRequest) -> None:
        """Run the family's handler in a writing transaction; its answer goes to this connection only."""
        match = self._match(request.topic)
        handler = match.spec.calls.get(request.method)
        if handler is None:
            raise RequestError(ErrorCode.UNKNOWN_METHOD, f"This topic has no method {request.method!r}.")
        await self._require(connection, match, request.topic, "call")
        principal = connection.principal
        assert principal is not None
        call = (request.topic, match.params, request.method, request.data)
        try:
            async with self.platform.database.transaction() as session:
                result = await handler(TopicCall(principal, *call, session, self.platform, connection.id))
        except AppError as exc:
            raise RequestError(ErrorCode.CALL_FAILED, exc.message) from None
        except BrokerUnavailable:
            raise
        except Exception:
            logger.exception("realtime_call_failed", topic=request.topic, method=request.method)
            raise RequestError(ErrorCode.CALL_FAILED, "The server failed to answer this call.") from None
        connection.send_text(ack_frame(request.id, result))


async def _drain(receive: Receive) -> None:
    """Read until the socket is gone (after the server asked to close it)."""
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Refuse the handshake: an HTTP problem where the server can answer one, else a plain refusal."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1013, "reason": message})
        return
    body = orjson.dumps({"type": "about:blank", "title": message, "status": status, "code": code})
    headers = [(b"content-type", b"application/problem+json"), (b"retry-after", b"1")]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
