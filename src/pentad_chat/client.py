"""ChatClient: one chat user's client, over the REST API (/api/chat) and the realtime socket (/ws).

    async with ChatClient("https://chat.example.com", token_provider=fetch_token) as chat:
        await chat.subscribe(channel_id)
        await chat.send(channel_id, "hello")
        async for event in chat.events("message.new"):
            print(event.message.text)

Delivery guarantees:
- Sends go through an offline queue, in order: one that fails for a reason that may pass (network error,
  server down, 5xx, 429 with its Retry-After) is retried with exponential backoff and jitter until the
  server acknowledges it. Every send carries a `client_id`, so a retry never posts twice.
- Every subscribed channel's events arrive in sequence order, each message change once. The client keeps
  the last channel sequence number it delivered; when one jumps (a gap) or after every reconnection, it
  asks `GET /channels/{id}/sync?since=<last>` what changed meanwhile and delivers that first, rebuilt as
  `message.*` events with `synced=True`. Events without a sequence number (typing, read receipts,
  presence, members, your own user topic) are delivered as they come and are not recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from pentad_chat._http import (
    ChatAPIError,
    ChatClosedError,
    ChatRealtimeError,
    HttpApi,
    TokenProvider,
    api_error,
    backoff_delay,
    base_urls,
)
from pentad_chat.models import (
    ChannelState,
    ChatEvent,
    ChatUser,
    ConnectionEvent,
    Member,
    Message,
    MessageEvent,
    MessagePage,
    ReactionEvent,
    SequencedEvent,
    SyncPage,
    parse_event,
)

logger = logging.getLogger("pentad_chat")

EventCallback = Callable[[ChatEvent], Awaitable[None] | None]
ChannelKind = Literal["public", "private", "direct", "group"]

NORMAL_CLOSURE = 1000
BAD_MESSAGE = 4000
AUTH_FAILED = 4001
CREDENTIALS_EXPIRED = 4003
CREDENTIALS_REVOKED = 4004
RENEWABLE_CODES = frozenset({AUTH_FAILED, CREDENTIALS_EXPIRED})
"""Close codes after which a fresh token from the provider may help (a fixed token cannot)."""
FATAL_CODES = frozenset({BAD_MESSAGE, CREDENTIALS_REVOKED})
"""Close codes after which reconnecting cannot help: the client closes for good."""
PONG = '{"op":"pong"}'
CLOSE_TIMEOUT = 2.0
"""How long close() waits for the server's closing handshake (it may be gone)."""
SYNC_PAGE_SIZE = 1000
"""What the client asks for; the server answers at most PENTAD_CHAT__HISTORY_PAGE_MAX per page."""
SEEN_LIMIT = 10_000
"""How many (message id, revision) pairs each channel remembers to drop repeats."""


class OutgoingMessage:
    """A message in the offline queue; await it for the stored Message (or the error that ended it)."""

    def __init__(self, channel_id: uuid.UUID, body: dict[str, Any]) -> None:
        self.channel_id = channel_id
        self.body = body
        self.attempts = 0
        """Requests made for it so far (more than one: it was retried)."""
        self._result: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    @property
    def client_id(self) -> str:
        return str(self.body["client_id"])

    @property
    def done(self) -> bool:
        return self._result.done()

    @property
    def acknowledged(self) -> bool:
        return self._result.done() and not self._result.cancelled() and self._result.exception() is None

    def __await__(self) -> Generator[Any, None, Message]:
        return asyncio.shield(self._result).__await__()

    def _resolve(self, message: Message) -> None:
        if not self._result.done():
            self._result.set_result(message)

    def _fail(self, error: BaseException) -> None:
        if not self._result.done():
            self._result.set_exception(error)
            # Retrieved here so that a caller who never awaits is not warned about it.
            self._result.exception()


class EventStream:
    """Events as an async iterator; it ends when the client is closed (or `close()` is called on it)."""

    def __init__(self, client: ChatClient, types: frozenset[str]) -> None:
        self._client = client
        self.types = types
        self._queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()
        self._ended = False

    def wants(self, event: ChatEvent) -> bool:
        return not self.types or event.type in self.types

    def put(self, event: ChatEvent | None) -> None:
        if not self._ended:
            self._queue.put_nowait(event)
            self._ended = event is None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ChatEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return event

    async def get(self) -> ChatEvent:
        """The next event (wrap it in asyncio.timeout to bound the wait); ChatClosedError at the end."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise ChatClosedError("The event stream has ended.") from None

    def close(self) -> None:
        self._client._streams.discard(self)
        self.put(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


class _SeenSet:
    """The most recent (message id, revision) pairs delivered, bounded."""

    def __init__(self, limit: int) -> None:
        self._keys: OrderedDict[tuple[uuid.UUID, int], None] = OrderedDict()
        self._limit = limit

    def add(self, message_id: uuid.UUID, revision: int) -> bool:
        """Remember the pair; False if it was already there."""
        key = (message_id, revision)
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._limit:
            self._keys.popitem(last=False)
        return True


@dataclass
class _Topic:
    """A realtime topic the client follows: the hub's (epoch, seq) position it has reached."""

    name: str
    epoch: str | None = None
    seq: int | None = None


@dataclass
class _Feed:
    """A subscribed channel: the last channel sequence number delivered, and the resume machinery."""

    channel_id: uuid.UUID
    last_seq: int
    topic: _Topic
    syncing: bool = False
    """Live events wait in `buffer` until the running sync has delivered what came before them."""
    buffer: list[SequencedEvent] = field(default_factory=list)
    sync_task: asyncio.Task[None] | None = None
    seen: _SeenSet = field(default_factory=lambda: _SeenSet(SEEN_LIMIT))


async def _call(callback: EventCallback, event: ChatEvent) -> None:
    result = callback(event)
    if inspect.isawaitable(result):
        await result


class _SocketGone(Exception):
    """The socket closed while a request waited for its acknowledgement."""


class ChatClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        refresh_margin: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`token`: a fixed `pcu_` user token; or `token_provider`: a callable (sync or async) returning
        one, called again when the token nears its expiry or is refused (give exactly one of them)."""
        root, self.ws_url = base_urls(base_url)
        self._api = HttpApi(
            root,
            token,
            token_provider,
            timeout=timeout,
            retries=3,
            backoff_initial=backoff_initial,
            backoff_max=min(backoff_max, 5.0),
            http_client=http_client,
        )
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.refresh_margin = refresh_margin
        self.user_id: uuid.UUID | None = None
        """Your chat user id, known once connected."""
        self.close_code: int | None = None
        """The last WebSocket close code seen."""
        self.connects = 0
        """How many sockets were established (more than one: the client reconnected)."""
        self._feeds: dict[uuid.UUID, _Feed] = {}
        self._user_topic: _Topic | None = None
        self._outbox: deque[OutgoingMessage] = deque()
        self._outbox_changed = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._streams: set[EventStream] = set()
        self._callbacks: dict[str, list[EventCallback]] = {}
        self._callback_queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._token_expires_at: float | None = None
        self._silence_limit = connect_timeout
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    async def connect(self, *, wait: bool = True) -> None:
        """Open the realtime connection (and keep it open, reconnecting with backoff, until close()).

        With `wait` (the default) returns once connected, or raises ChatClosedError after
        `connect_timeout` seconds or when refused for good; without it, connects in the background."""
        if self._runner is not None and not self._runner.done():
            return
        self._closed = False
        self.close_code = None
        self._ensure_workers()
        self._runner = asyncio.create_task(self._run(), name="pentad-chat-connection")
        if not wait:
            return
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait(
            {ready, self._runner}, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if not self._ready.is_set():
            ready.cancel()
            code = self.close_code
            await self.close()
            raise ChatClosedError(f"Could not connect to {self.ws_url} (close code {code}).")

    async def close(self) -> None:
        """Disconnect for good. Sends still queued fail with ChatClosedError, event streams end.

        The client remembers where each subscribed channel was: connect() again resumes from there."""
        self._closed = True
        was_running = self._runner is not None and not self._runner.done()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait([self._runner])
            self._runner = None
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait([self._sender])
            self._sender = None
        closed = ChatClosedError("The client was closed before the server acknowledged this message.")
        while self._outbox:
            self._outbox.popleft()._fail(closed)
        if was_running:
            self._emit(ConnectionEvent(state="closed", code=self.close_code))
        if self._dispatcher is not None:
            self._callback_queue.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await asyncio.wait([self._dispatcher])
            self._dispatcher.cancel()
            self._dispatcher = None
        for stream in list(self._streams):
            stream.close()
        await self._api.aclose()

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self) -> None:
        """Until the client is connected (again); wrap it in asyncio.timeout to bound the wait."""
        await self._ready.wait()

    # ------------------------------------------------------------ events

    def events(self, *types: str) -> EventStream:
        """Every event from now on (only those of `types`, if given), as an async iterator.

        Create it before connect() or subscribe() so that nothing they deliver is missed."""
        stream = EventStream(self, frozenset(types))
        self._streams.add(stream)
        return stream

    def on(self, event_type: str, callback: EventCallback) -> Callable[[], None]:
        """Call `callback` (sync or async) with every event of `event_type` ("*": all); returns the
        function that removes it. Callbacks run one at a time, in delivery order, off the socket's reader:
        a slow one delays the next, never the connection. Their exceptions are logged and swallowed."""
        self._callbacks.setdefault(event_type, []).append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.get(event_type, []).remove(callback)

        return remove

    def _emit(self, event: ChatEvent) -> None:
        for stream in list(self._streams):
            if stream.wants(event):
                stream.put(event)
        if self._callbacks.get(event.type) or self._callbacks.get("*"):
            self._callback_queue.put_nowait(event)

    async def _dispatch_callbacks(self) -> None:
        while (event := await self._callback_queue.get()) is not None:
            for callback in [*self._callbacks.get(event.type, ()), *self._callbacks.get("*", ())]:
                try:
                    await _call(callback, event)
                except Exception:
                    logger.exception("A chat event callback failed (event %s).", event.type)

    # ------------------------------------------------------------ subscriptions

    async def subscribe(self, channel_id: uuid.UUID | str, *, since: int | None = None) -> None:
        """Receive the channel's events. From `since` (a channel sequence number you have seen: what came
        after it is delivered first), else from now. A channel already subscribed is left as it is."""
        channel_id = uuid.UUID(str(channel_id))
        if channel_id in self._feeds:
            return
        if since is None:
            since = (await self.channel(channel_id)).last_seq
            if channel_id in self._feeds:
                return
        feed = _Feed(channel_id, since, _Topic(f"chat.channel.{channel_id}"))
        self._feeds[channel_id] = feed
        ws = self._ws
        if ws is None or not self._ready.is_set():
            return
        try:
            await self._subscribe_feed(ws, feed)
        except _SocketGone:
            return  # the next connection subscribes it
        except BaseException:
            self._feeds.pop(channel_id, None)
            raise
        self._start_sync(feed)

    async def unsubscribe(self, channel_id: uuid.UUID | str) -> None:
        feed = self._feeds.pop(uuid.UUID(str(channel_id)), None)
        if feed is None:
            return
        if feed.sync_task is not None:
            feed.sync_task.cancel()
        ws = self._ws
        if ws is not None and self._ready.is_set():
            with contextlib.suppress(ChatRealtimeError, _SocketGone, TimeoutError):
                await self._request(ws, {"op": "unsubscribe", "topic": feed.topic.name})

    def last_seq(self, channel_id: uuid.UUID | str) -> int | None:
        """The last sequence number delivered for a subscribed channel (resume from it with `since`)."""
        feed = self._feeds.get(uuid.UUID(str(channel_id)))
        return feed.last_seq if feed else None

    # ------------------------------------------------------------ sending (the offline queue)

    def enqueue(
        self,
        channel_id: uuid.UUID | str,
        text: str = "",
        *,
        client_id: str | None = None,
        type: str = "text",
        payload: dict[str, Any] | None = None,
        parent_id: uuid.UUID | str | None = None,
        attachment_ids: list[uuid.UUID | str] | None = None,
        mentioned_user_ids: list[uuid.UUID | str] | None = None,
    ) -> OutgoingMessage:
        """Queue a message and return at once; await the result for the stored Message.

        Messages go out one at a time in queue order; each is retried until acknowledged, or fails with
        ChatAPIError if the server refuses it for good (e.g. 403 muted), or ChatClosedError on close()."""
        if self._closed:
            raise ChatClosedError("The client is closed.")
        body = {
            "client_id": client_id or uuid.uuid4().hex,
            "text": text,
            "type": type,
            "payload": payload,
            "parent_id": str(parent_id) if parent_id else None,
            "attachment_ids": [str(a) for a in attachment_ids or ()],
            "mentioned_user_ids": [str(u) for u in mentioned_user_ids or ()],
        }
        outgoing = OutgoingMessage(uuid.UUID(str(channel_id)), body)
        self._outbox.append(outgoing)
        self._ensure_workers()
        self._outbox_changed.set()
        return outgoing

    async def send(
        self,
        channel_id: uuid.UUID | str,
        text: str = "",
        *,
        client_id: str | None = None,
        type: str = "text",
        payload: dict[str, Any] | None = None,
        parent_id: uuid.UUID | str | None = None,
        attachment_ids: list[uuid.UUID | str] | None = None,
        mentioned_user_ids: list[uuid.UUID | str] | None = None,
    ) -> Message:
        """Send a message and wait until the server has stored it (through the offline queue: while the
        server is unreachable this waits and retries)."""
        return await self.enqueue(
            channel_id,
            text,
            client_id=client_id,
            type=type,
            payload=payload,
            parent_id=parent_id,
            attachment_ids=attachment_ids,
            mentioned_user_ids=mentioned_user_ids,
        )

    @property
    def pending(self) -> list[OutgoingMessage]:
        """Messages queued and not yet acknowledged, oldest first."""
        return list(self._outbox)

    async def drain(self) -> None:
        """Until every queued message is acknowledged or failed (wrap it in asyncio.timeout to bound it)."""
        while self._outbox:
            with contextlib.suppress(Exception):
                await self._outbox[-1]

    def _ensure_workers(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_loop(), name="pentad-chat-outbox")
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch_callbacks(), name="pentad-chat-callbacks")

    async def _send_loop(self) -> None:
        attempt = 0
        while True:
            if not self._outbox:
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
                continue
            outgoing = self._outbox[0]
            outgoing.attempts += 1
            retry_after = await self._post(outgoing)
            if retry_after is None:
                self._outbox.popleft()
                attempt = 0
                continue
            delay = max(retry_after, backoff_delay(attempt, self.backoff_initial, self.backoff_max))
            attempt += 1
            # A reconnection wakes the queue early: the server is back.
            self._outbox_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._outbox_changed.wait()

    async def _post(self, outgoing: OutgoingMessage) -> float | None:
        """One attempt: None once the message is settled (stored, or refused for good), else the least
        time to wait before the next attempt."""
        try:
            await self._api.current_token()
        except Exception as exc:  # the application's token provider may fail in any way
            logger.warning("Could not get a chat token to send with: %r", exc)
            return 0.0
        path = f"/api/chat/channels/{outgoing.channel_id}/messages"
        try:
            response = await self._api.send("POST", path, json=outgoing.body)
        except httpx.TransportError as exc:
            logger.debug("Send %s failed, will retry: %r", outgoing.client_id, exc)
            return 0.0
        except Exception as exc:
            outgoing._fail(exc)
            return None
        if response.is_success:
            try:
                outgoing._resolve(Message.model_validate(response.json()))
            except ValueError as exc:
                outgoing._fail(exc)
            return None
        error = api_error(response)
        if error.retryable:
            return error.retry_after or 0.0
        outgoing._fail(error)
        return None

    # ------------------------------------------------------------ REST: you, users, channels

    async def me(self) -> ChatUser:
        return ChatUser.model_validate(await self._api.request("GET", "/api/chat/me", retry=True))

    async def users(self, query: str | None = None, *, limit: int = 50, offset: int = 0) -> list[ChatUser]:
        """Users of your tenant, optionally those whose name or handle contains `query`."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if query:
            params["q"] = query
        answer = await self._api.request("GET", "/api/chat/users", params=params, retry=True)
        return [ChatUser.model_validate(item) for item in answer]

    async def set_presence(self, status: Literal["online", "away", "offline"]) -> ChatUser:
        answer = await self._api.request("PUT", "/api/chat/me/presence", json={"status": status}, retry=True)
        return ChatUser.model_validate(answer)

    async def channels(self, *, include_archived: bool = False) -> list[ChannelState]:
        """Your channels, with unread counts."""
        params = {"include_archived": include_archived}
        answer = await self._api.request("GET", "/api/chat/channels", params=params, retry=True)
        return [ChannelState.model_validate(item) for item in answer]

    async def channel(self, channel_id: uuid.UUID | str) -> ChannelState:
        answer = await self._api.request("GET", f"/api/chat/channels/{channel_id}", retry=True)
        return ChannelState.model_validate(answer)

    async def create_channel(
        self,
        *,
        kind: ChannelKind = "public",
        name: str = "",
        topic: str = "",
        members: list[uuid.UUID | str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> ChannelState:
        """A channel you own, with `members` (chat user ids)."""
        body = {
            "kind": kind,
            "name": name,
            "topic": topic,
            "members": [str(m) for m in members or ()],
            "data": data or {},
        }
        answer = await self._api.request("POST", "/api/chat/channels", json=body, retry=kind == "direct")
        return ChannelState.model_validate(answer)

    async def direct(self, user_id: uuid.UUID | str) -> ChannelState:
        """The direct channel between you and `user_id` (created on first use)."""
        return await self.create_channel(kind="direct", members=[user_id])

    async def join(self, channel_id: uuid.UUID | str) -> ChannelState:
        answer = await self._api.request("POST", f"/api/chat/channels/{channel_id}/join", retry=True)
        return ChannelState.model_validate(answer)

    async def leave(self, channel_id: uuid.UUID | str) -> None:
        await self._api.request("POST", f"/api/chat/channels/{channel_id}/leave")

    async def members(
        self, channel_id: uuid.UUID | str, *, limit: int = 100, offset: int = 0
    ) -> list[Member]:
        """Members with their read receipts (`last_read_seq`, `last_delivered_seq`)."""
        params = {"limit": limit, "offset": offset}
        answer = await self._api.request(
            "GET", f"/api/chat/channels/{channel_id}/members", params=params, retry=True
        )
        return [Member.model_validate(item) for item in answer]

    # ------------------------------------------------------------ REST: messages

    async def history(
        self,
        channel_id: uuid.UUID | str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> MessagePage:
        """A page of messages, oldest first: the newest by default, `before`/`after` a sequence number."""
        params = _page_params(before, after, limit)
        answer = await self._api.request(
            "GET", f"/api/chat/channels/{channel_id}/messages", params=params, retry=True
        )
        return MessagePage.model_validate(answer)

    async def replies(
        self,
        message_id: uuid.UUID | str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> MessagePage:
        """A page of a thread's replies, oldest first."""
        params = _page_params(before, after, limit)
        answer = await self._api.request(
            "GET", f"/api/chat/messages/{message_id}/replies", params=params, retry=True
        )
        return MessagePage.model_validate(answer)

    async def sync(self, channel_id: uuid.UUID | str, since: int, *, limit: int = 200) -> SyncPage:
        """One page of what changed after `since`, oldest change first; while `has_more`, the next page is
        `sync(channel_id, page.next_since)` (the client does this itself for subscribed channels)."""
        params = {"since": since, "limit": limit}
        answer = await self._api.request(
            "GET", f"/api/chat/channels/{channel_id}/sync", params=params, retry=True
        )
        return SyncPage.model_validate(answer)

    async def message(self, message_id: uuid.UUID | str) -> Message:
        answer = await self._api.request("GET", f"/api/chat/messages/{message_id}", retry=True)
        return Message.model_validate(answer)

    async def edit(
        self, message_id: uuid.UUID | str, *, text: str | None = None, payload: dict[str, Any] | None = None
    ) -> Message:
        """Change your message's text and/or payload."""
        body = {"text": text, "payload": payload}
        answer = await self._api.request("PATCH", f"/api/chat/messages/{message_id}", json=body, retry=True)
        return Message.model_validate(answer)

    async def delete(self, message_id: uuid.UUID | str) -> Message:
        """Delete a message (yours, or any as a moderator): its tombstone keeps its place."""
        answer = await self._api.request("DELETE", f"/api/chat/messages/{message_id}", retry=True)
        return Message.model_validate(answer)

    async def react(self, message_id: uuid.UUID | str, emoji: str, *, add: bool = True) -> Message:
        """Add (or with `add=False` remove) your reaction `emoji` (an emoji or a short name)."""
        path = f"/api/chat/messages/{message_id}/reactions/{quote(emoji, safe='')}"
        answer = await self._api.request("PUT" if add else "DELETE", path, retry=True)
        return Message.model_validate(answer)

    async def pin(self, message_id: uuid.UUID | str, *, pinned: bool = True) -> Message:
        path = f"/api/chat/messages/{message_id}/pin"
        answer = await self._api.request("PUT" if pinned else "DELETE", path, retry=True)
        return Message.model_validate(answer)

    async def mark_read(self, channel_id: uuid.UUID | str, seq: int) -> ChannelState:
        """Everything up to and including `seq` is read (members see it as your read receipt)."""
        answer = await self._api.request(
            "POST", f"/api/chat/channels/{channel_id}/read", json={"seq": seq}, retry=True
        )
        return ChannelState.model_validate(answer)

    async def mark_delivered(self, channel_id: uuid.UUID | str, seq: int) -> ChannelState:
        answer = await self._api.request(
            "POST", f"/api/chat/channels/{channel_id}/delivered", json={"seq": seq}, retry=True
        )
        return ChannelState.model_validate(answer)

    async def typing(
        self, channel_id: uuid.UUID | str, *, active: bool = True, parent_id: uuid.UUID | str | None = None
    ) -> None:
        """Tell the channel you are typing (or stopped); not retried: it is stale by then."""
        body = {"active": active, "parent_id": str(parent_id) if parent_id else None}
        await self._api.request("POST", f"/api/chat/channels/{channel_id}/typing", json=body)

    # ------------------------------------------------------------ the connection

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            was_ready = False
            try:
                token = await self._socket_token()
            except Exception as exc:  # the application's token provider may fail in any way
                logger.warning("Could not get a chat token: %r", exc)
            else:
                try:
                    async with connect(
                        self.ws_url,
                        open_timeout=self.connect_timeout,
                        ping_interval=None,
                        close_timeout=CLOSE_TIMEOUT,
                        compression=None,
                        max_queue=None,
                    ) as ws:
                        was_ready = await self._session(ws, token)
                except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ChatRealtimeError) as exc:
                    logger.debug("Chat connection failed: %r", exc)
                except Exception:
                    # Whatever went wrong with this socket, the client must live on and reconnect.
                    logger.exception("The chat connection failed unexpectedly.")
                finally:
                    self._end_session()
            if was_ready:
                attempt = 0
                self._emit(ConnectionEvent(state="disconnected", code=self.close_code))
            if self.close_code in FATAL_CODES or (
                self.close_code in RENEWABLE_CODES and self._api.token_provider is None
            ):
                logger.warning("The chat server closed the connection for good (%s).", self.close_code)
                self._emit(ConnectionEvent(state="closed", code=self.close_code))
                return
            if self.close_code in RENEWABLE_CODES:
                self._token_expires_at = 0.0
            await asyncio.sleep(backoff_delay(attempt, self.backoff_initial, self.backoff_max))
            attempt += 1

    async def _socket_token(self) -> str:
        """The token for a new socket: the current one, or a fresh one when it is about to expire."""
        if self._api.token_provider is not None and (
            self._token_expires_at is not None and self._token_expires_at - time.time() < self.refresh_margin
        ):
            return await self._api.fresh_token()
        return await self._api.current_token()

    async def _session(self, ws: ClientConnection, token: str) -> bool:
        """One socket: authenticate, (re)subscribe, then sync and serve until it closes.

        True if it got as far as being connected."""
        self._ws = ws
        self.close_code = None
        self._silence_limit = self.connect_timeout
        reader = asyncio.create_task(self._read(ws))
        ready = False
        try:
            await self._authenticate(ws, token)
            assert self.user_id is not None
            if self._user_topic is None or self._user_topic.name != f"chat.user.{self.user_id}":
                self._user_topic = _Topic(f"chat.user.{self.user_id}")
            await self._subscribe_topic(ws, self._user_topic)
            subscribed: set[uuid.UUID] = set()
            # Until none is left: subscribe() may add channels meanwhile, and leaves them to this loop.
            while todo := [f for f in self._feeds.values() if f.channel_id not in subscribed]:
                for feed in todo:
                    subscribed.add(feed.channel_id)
                    try:
                        await self._subscribe_feed(ws, feed)
                    except ChatRealtimeError as exc:
                        if exc.code == "unavailable":
                            raise
                        self._drop_feed(feed, exc)
            self.connects += 1
            self._ready.set()
            ready = True
            self._emit(ConnectionEvent(state="connected"))
            self._outbox_changed.set()
            for feed in list(self._feeds.values()):
                self._start_sync(feed)
            await reader
        except (ConnectionClosed, _SocketGone):
            await asyncio.wait([reader])
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return ready

    def _end_session(self) -> None:
        self._ready.clear()
        self._ws = None
        self._fail_pending()
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        for feed in self._feeds.values():
            if feed.sync_task is not None:
                feed.sync_task.cancel()
                feed.sync_task = None

    async def _request(self, ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await ws.send(orjson.dumps({**payload, "id": request_id}).decode())
            async with asyncio.timeout(self.timeout):
                frame = await answer
        finally:
            self._pending.pop(request_id, None)
        if not frame.get("ok"):
            error = frame.get("error") or {}
            raise ChatRealtimeError(str(error.get("code")), str(error.get("message")))
        result: dict[str, Any] = frame.get("result") or {}
        return result

    def _fail_pending(self) -> None:
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(_SocketGone())
        self._pending.clear()

    async def _authenticate(self, ws: ClientConnection, token: str) -> None:
        result = await self._request(ws, {"op": "auth", "token": token})
        self.user_id = uuid.UUID(result["principal"]["id"])
        self._silence_limit = 2 * float(result["heartbeat_interval"]) + 5
        self._token_expires_at = result.get("expires_at")
        if self._refresher is not None and self._refresher is not asyncio.current_task():
            self._refresher.cancel()
        self._refresher = None
        if self._token_expires_at is not None and self._api.token_provider is not None:
            lifetime = self._token_expires_at - time.time()
            delay = max(0.0, lifetime - min(self.refresh_margin, lifetime / 2))
            self._refresher = asyncio.create_task(self._refresh_later(ws, delay))

    async def _refresh_later(self, ws: ClientConnection, delay: float) -> None:
        """Send a fresh token on the open socket before the current one expires."""
        await asyncio.sleep(delay)
        try:
            token = await self._api.fresh_token()
            await self._authenticate(ws, token)
        except (ChatRealtimeError, ChatAPIError, httpx.HTTPError, _SocketGone, TimeoutError) as exc:
            # The server closes the socket at expiry (4003) and the client reconnects with a new token.
            logger.warning("Could not refresh the chat token on the open socket: %r", exc)

    async def _subscribe_topic(self, ws: ClientConnection, topic: _Topic) -> None:
        request: dict[str, Any] = {"op": "subscribe", "topic": topic.name}
        if topic.seq is not None and topic.epoch is not None:
            request.update(since=topic.seq, epoch=topic.epoch)
        result = await self._request(ws, request)
        if not result["recovered"]:
            topic.epoch, topic.seq = result["epoch"], result["seq"]

    async def _subscribe_feed(self, ws: ClientConnection, feed: _Feed) -> None:
        # Live events wait from now until the sync after this subscription has caught up.
        feed.syncing = True
        await self._subscribe_topic(ws, feed.topic)

    def _drop_feed(self, feed: _Feed, reason: BaseException) -> None:
        logger.warning("Chat channel %s is no longer followed: %s", feed.channel_id, reason)
        self._feeds.pop(feed.channel_id, None)
        if feed.sync_task is not None and feed.sync_task is not asyncio.current_task():
            feed.sync_task.cancel()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            while True:
                async with asyncio.timeout(self._silence_limit):
                    raw = await ws.recv()
                try:
                    frame = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    logger.warning("Dropped a chat frame that is not JSON.")
                    continue
                if isinstance(frame, dict):
                    await self._on_frame(ws, frame)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        except TimeoutError:
            self.close_code = 1006
            logger.info("The chat server went silent; reconnecting.")
            await ws.close()
        finally:
            self._fail_pending()

    async def _on_frame(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "event":
            self._on_event(frame)
        elif op == "ack":
            answer = self._pending.get(frame.get("id", -1))
            if answer is not None and not answer.done():
                answer.set_result(frame)
        elif op == "ping":
            await ws.send(PONG)
        elif op == "reset":
            # The hub lost continuity (broker outage): the sync fills in what may be missing.
            feed = self._feed_of(frame["topic"])
            topic = feed.topic if feed else self._user_topic
            if topic is not None and topic.name == frame["topic"]:
                topic.epoch, topic.seq = frame["epoch"], frame["seq"]
            if feed is not None:
                self._start_sync(feed)
        elif op == "unsubscribed":
            feed = self._feed_of(frame["topic"])
            if feed is not None:
                self._drop_feed(feed, ChatRealtimeError(frame.get("reason", "forbidden"), "unsubscribed"))

    def _feed_of(self, topic: str) -> _Feed | None:
        prefix = "chat.channel."
        if not topic.startswith(prefix):
            return None
        try:
            feed = self._feeds.get(uuid.UUID(topic[len(prefix) :]))
        except ValueError:
            return None
        return feed if feed is not None and feed.topic.name == topic else None

    def _on_event(self, frame: dict[str, Any]) -> None:
        name = frame.get("topic", "")
        feed = self._feed_of(name)
        topic = feed.topic if feed is not None else self._user_topic
        if topic is None or topic.name != name:
            return
        seq, epoch = frame["seq"], frame["epoch"]
        if epoch == topic.epoch and topic.seq is not None and seq <= topic.seq:
            return
        topic.epoch, topic.seq = epoch, seq
        try:
            event = parse_event(frame["data"])
        except ValueError:
            logger.warning("Dropped a malformed chat event on %s.", name)
            return
        if feed is not None and isinstance(event, MessageEvent | ReactionEvent):
            self._on_sequenced(feed, event)
        else:
            self._emit(event)

    # ------------------------------------------------------------ order, gaps and resume

    def _on_sequenced(self, feed: _Feed, event: SequencedEvent) -> None:
        if feed.syncing:
            feed.buffer.append(event)
        elif event.seq <= feed.last_seq:
            return
        elif event.seq == feed.last_seq + 1:
            self._deliver(feed, event)
        else:
            feed.buffer.append(event)
            self._start_sync(feed)

    def _deliver(self, feed: _Feed, event: SequencedEvent) -> None:
        feed.last_seq = max(feed.last_seq, event.seq)
        fresh = feed.seen.add(event.message.id, event.message.revision)
        if isinstance(event, MessageEvent) and event.parent is not None:
            feed.seen.add(event.parent.id, event.parent.revision)
        if fresh:
            self._emit(event)

    def _start_sync(self, feed: _Feed) -> None:
        feed.syncing = True
        if feed.sync_task is None or feed.sync_task.done():
            feed.sync_task = asyncio.create_task(self._sync(feed), name=f"pentad-chat-sync-{feed.channel_id}")

    async def _sync(self, feed: _Feed) -> None:
        """Deliver what changed after `feed.last_seq`, then the live events that waited meanwhile."""
        attempt = 0
        while True:
            since = feed.last_seq
            cursor = since
            while True:
                try:
                    page = await self.sync(feed.channel_id, cursor, limit=SYNC_PAGE_SIZE)
                except ChatAPIError as exc:
                    if not exc.retryable:
                        self._drop_feed(feed, exc)
                        return
                    page = None
                except Exception as exc:
                    # Live events wait until this sync succeeds: it must not end for a passing failure.
                    logger.warning("Chat sync of %s failed, will retry: %r", feed.channel_id, exc)
                    page = None
                if page is None:
                    await asyncio.sleep(backoff_delay(attempt, self.backoff_initial, self.backoff_max))
                    attempt += 1
                    continue
                attempt = 0
                for message in page.messages:
                    self._deliver_synced(feed, message, since)
                # The server's cursor: pages neither overlap nor leave a gap (`last_seq` is the channel's
                # newest number, not the end of the page).
                cursor = max(cursor, page.next_since)
                if not page.has_more:
                    feed.last_seq = max(feed.last_seq, cursor)
                    break
            waiting, feed.buffer = sorted(feed.buffer, key=lambda event: event.seq), []
            for event in waiting:
                if event.seq <= feed.last_seq:
                    continue
                if event.seq == feed.last_seq + 1 and not feed.buffer:
                    self._deliver(feed, event)
                else:
                    feed.buffer.append(event)
            if not feed.buffer:
                feed.syncing = False
                return

    def _deliver_synced(self, feed: _Feed, message: Message, since: int) -> None:
        feed.last_seq = max(feed.last_seq, message.revision)
        if not feed.seen.add(message.id, message.revision):
            return
        kind: Literal["message.new", "message.updated", "message.deleted"]
        if message.deleted_at is not None:
            kind = "message.deleted"
        elif message.seq > since:
            kind = "message.new"
        else:
            kind = "message.updated"
        self._emit(
            MessageEvent(
                type=kind, channel_id=feed.channel_id, seq=message.revision, message=message, synced=True
            )
        )


def _page_params(before: int | None, after: int | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        params["before"] = before
    if after is not None:
        params["after"] = after
    return params
