"""An asyncio client of the /ws protocol: subscribe with handlers, publish, presence, acknowledgements as
awaitables with timeouts, automatic reconnection with exponential backoff and jitter, resume from the last
sequence number seen on every topic, and token refresh on the same socket.

    async with RealtimeClient("ws://127.0.0.1:8000/ws", token_provider) as client:
        subscription = await client.subscribe("chat.channel.42", on_event, on_reset=refetch)
        await client.publish("chat.typing.42", {"typing": True})

Handlers run one at a time in the order events arrive; a handler that blocks for long stops the reading,
and the server then closes the socket as a slow consumer (the client reconnects and resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from pentad.core.realtime.protocol import CloseCode

logger = structlog.get_logger("pentad.realtime.client")

TokenSource = str | Callable[[], Awaitable[str]]
Handler = Callable[["Event"], Awaitable[None] | None]
TopicCallback = Callable[[str], Awaitable[None] | None]
PresenceCallback = Callable[[str, str, dict[str, Any]], Awaitable[None] | None]

FATAL_CODES = frozenset({CloseCode.BAD_MESSAGE})
"""Close codes after which reconnecting cannot help."""
CREDENTIAL_CODES = frozenset(
    {CloseCode.AUTH_FAILED, CloseCode.CREDENTIALS_EXPIRED, CloseCode.CREDENTIALS_REVOKED}
)
"""Close codes after which only a fresh token helps (so the client reconnects only with a token provider)."""
PONG = '{"op":"pong"}'


class RealtimeError(Exception):
    """A failed acknowledgement: `code` is one of protocol.ErrorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RealtimeClosed(Exception):
    """The client is closed, or gave up reconnecting; `code` is the last close code seen."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"realtime connection closed ({code}: {reason})")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Event:
    topic: str
    seq: int
    epoch: str
    ts: int
    data: dict[str, Any]


@dataclass
class Subscription:
    """A topic the client follows; `epoch` and `seq` are the last position seen (resume point)."""

    topic: str
    handler: Handler
    on_reset: TopicCallback | None = None
    on_presence: PresenceCallback | None = None
    epoch: str | None = None
    seq: int | None = None
    recovered: bool = False
    """Whether the last (re)subscription resumed without loss; when False, on_reset was called."""
    resets: int = field(default=0)


async def _call(callback: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


class RealtimeClient:
    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        reconnect: bool = True,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        ack_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        refresh_margin: float = 30.0,
    ) -> None:
        self.url = url
        self._token = token
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.refresh_margin = refresh_margin
        self.subscriptions: dict[str, Subscription] = {}
        self.connection_id: str | None = None
        self.principal: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.connects = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._silence_limit = 60.0

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Connect and authenticate (retrying as configured) within `connect_timeout`.

        Raises RealtimeClosed when refused for good or out of time."""
        self._closing = False
        self._runner = asyncio.create_task(self._run(), name="pentad-realtime-client")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait(
            {ready, self._runner},
            timeout=self.connect_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not self._ready.is_set():
            ready.cancel()
            await self.close()
            raise RealtimeClosed(self.close_code, self.close_reason or "could not connect")

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait([self._runner])
            self._runner = None

    async def __aenter__(self) -> RealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self) -> None:
        """Until the client is connected again (wrap it in asyncio.timeout)."""
        await self._ready.wait()

    # ------------------------------------------------------------------ operations

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        since: int | None = None,
        epoch: str | None = None,
        on_reset: TopicCallback | None = None,
        on_presence: PresenceCallback | None = None,
    ) -> Subscription:
        """Follow `topic`; with `since` (and its `epoch`) the events after it are replayed first.

        The returned subscription's `recovered` tells whether that worked (else fetch state over REST)."""
        subscription = Subscription(topic, handler, on_reset, on_presence, epoch=epoch, seq=since)
        self.subscriptions[topic] = subscription
        try:
            await self._subscribe(await self._connection(), subscription, initial=True)
        except BaseException:
            self.subscriptions.pop(topic, None)
            raise
        return subscription

    async def unsubscribe(self, topic: str) -> None:
        self.subscriptions.pop(topic, None)
        await self._request(await self._connection(), {"op": "unsubscribe", "topic": topic})

    async def publish(self, topic: str, data: dict[str, Any]) -> int:
        """Publish (where the topic allows clients to); returns the event's seq."""
        ws = await self._connection()
        result = await self._request(ws, {"op": "publish", "topic": topic, "data": data})
        return int(result["seq"])

    async def call(self, topic: str, method: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a server-side handler of the topic; its answer (raises RealtimeError `call_failed` etc.)."""
        payload = {"op": "call", "topic": topic, "method": method, "data": data or {}}
        return await self._request(await self._connection(), payload)

    async def presence(self, topic: str) -> list[dict[str, Any]]:
        result = await self._request(await self._connection(), {"op": "presence", "topic": topic})
        members: list[dict[str, Any]] = result["members"]
        return members

    async def ping(self) -> float:
        """Round-trip time of an acknowledged ping, seconds."""
        started = time.perf_counter()
        await self._request(await self._connection(), {"op": "ping"})
        return time.perf_counter() - started

    async def reauthenticate(self, token: str | None = None) -> None:
        """Send a fresh token on the open socket (the token provider's, unless one is given)."""
        if token is not None:
            self._token = token
        await self._authenticate(await self._connection())

    # ------------------------------------------------------------------ internals

    async def _connection(self) -> ClientConnection:
        if self._closing:
            raise RealtimeClosed(self.close_code, "the client was closed")
        async with asyncio.timeout(self.ack_timeout):
            await self._ready.wait()
        assert self._ws is not None
        return self._ws

    async def _request(self, ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await ws.send(orjson.dumps({**payload, "id": request_id}).decode())
            async with asyncio.timeout(self.ack_timeout):
                frame = await answer
        finally:
            self._pending.pop(request_id, None)
        if not frame["ok"]:
            raise RealtimeError(frame["error"]["code"], frame["error"]["message"])
        result: dict[str, Any] = frame.get("result") or {}
        return result

    async def _current_token(self) -> str:
        return self._token if isinstance(self._token, str) else await self._token()

    async def _authenticate(self, ws: ClientConnection) -> None:
        result = await self._request(ws, {"op": "auth", "token": await self._current_token()})
        self.connection_id = result["connection_id"]
        self.principal = result["principal"]
        self._silence_limit = 2 * result["heartbeat_interval"] + 5
        if self._refresher is not None:
            self._refresher.cancel()
        expires_at = result.get("expires_at")
        if expires_at is not None and not isinstance(self._token, str):
            lifetime = expires_at - time.time()
            delay = max(0.0, lifetime - min(self.refresh_margin, lifetime / 2))
            self._refresher = asyncio.create_task(self._refresh_later(ws, delay))

    async def _refresh_later(self, ws: ClientConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._authenticate(ws)
        except (RealtimeError, ConnectionClosed, TimeoutError) as exc:
            logger.warning("realtime_token_refresh_failed", error=repr(exc))

    async def _subscribe(self, ws: ClientConnection, subscription: Subscription, *, initial: bool) -> None:
        request: dict[str, Any] = {"op": "subscribe", "topic": subscription.topic}
        if subscription.seq is not None and subscription.epoch is not None:
            request.update(since=subscription.seq, epoch=subscription.epoch)
        result = await self._request(ws, request)
        subscription.recovered = bool(result["recovered"])
        if not subscription.recovered:
            subscription.epoch, subscription.seq = result["epoch"], result["seq"]
            if not initial and subscription.on_reset is not None:
                subscription.resets += 1
                await _call(subscription.on_reset, subscription.topic)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                async with connect(self.url, ping_interval=None, compression=None, max_queue=None) as ws:
                    await self._session(ws)
                    attempt = 0
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                logger.debug("realtime_connect_failed", error=repr(exc))
            except RealtimeError as exc:
                logger.warning("realtime_resubscribe_failed", error=str(exc))
            finally:
                self._ready.clear()
                self._ws = None
                self._fail_pending()
                if self._refresher is not None:
                    self._refresher.cancel()
            if self._closing or not self._should_reconnect():
                return
            ceiling = min(self.backoff_max, self.backoff_initial * 2**attempt)
            attempt += 1
            await asyncio.sleep(random.uniform(0, ceiling))

    def _should_reconnect(self) -> bool:
        if not self.reconnect or self.close_code in FATAL_CODES:
            return False
        return self.close_code not in CREDENTIAL_CODES or not isinstance(self._token, str)

    async def _session(self, ws: ClientConnection) -> None:
        """One socket: read in the background, authenticate, resubscribe (resuming), then serve."""
        self._ws = ws
        self.close_code, self.close_reason = None, ""
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._authenticate(ws)
            for subscription in list(self.subscriptions.values()):
                await self._resubscribe(ws, subscription)
            self.connects += 1
            self._ready.set()
            await reader
        except (ConnectionClosed, RealtimeClosed):
            await asyncio.wait([reader])
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _resubscribe(self, ws: ClientConnection, subscription: Subscription) -> None:
        try:
            await self._subscribe(ws, subscription, initial=False)
        except RealtimeError as exc:
            if exc.code == "unavailable":
                raise
            self.subscriptions.pop(subscription.topic, None)
            logger.warning("realtime_resubscribe_refused", topic=subscription.topic, error=str(exc))

    def _fail_pending(self) -> None:
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(RealtimeClosed(self.close_code, self.close_reason))
        self._pending.clear()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            while True:
                async with asyncio.timeout(self._silence_limit):
                    raw = await ws.recv()
                await self._dispatch(ws, orjson.loads(raw))
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                self.close_code, self.close_reason = exc.rcvd.code, exc.rcvd.reason
            else:
                self.close_code = 1006
        except TimeoutError:
            self.close_code, self.close_reason = 1006, "the server went silent"
            await ws.close()
        finally:
            self._fail_pending()

    async def _dispatch(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "event":
            await self._on_event(frame)
        elif op == "ack":
            answer = self._pending.get(frame["id"])
            if answer is not None and not answer.done():
                answer.set_result(frame)
        elif op == "ping":
            await ws.send(PONG)
        elif op in ("join", "leave"):
            subscription = self.subscriptions.get(frame["topic"])
            if subscription is not None and subscription.on_presence is not None:
                await _call(subscription.on_presence, op, frame["topic"], frame["member"])
        elif op == "reset":
            subscription = self.subscriptions.get(frame["topic"])
            if subscription is not None:
                subscription.epoch, subscription.seq = frame["epoch"], frame["seq"]
                subscription.recovered = False
                subscription.resets += 1
                if subscription.on_reset is not None:
                    await _call(subscription.on_reset, subscription.topic)
        elif op == "unsubscribed":
            self.subscriptions.pop(frame["topic"], None)
            logger.info("realtime_unsubscribed_by_server", topic=frame["topic"], reason=frame["reason"])

    async def _on_event(self, frame: dict[str, Any]) -> None:
        subscription = self.subscriptions.get(frame["topic"])
        if subscription is None:
            return
        seq, epoch = frame["seq"], frame["epoch"]
        if epoch == subscription.epoch and subscription.seq is not None and seq <= subscription.seq:
            return
        subscription.epoch, subscription.seq = epoch, seq
        await _call(subscription.handler, Event(frame["topic"], seq, epoch, frame["ts"], frame["data"]))
