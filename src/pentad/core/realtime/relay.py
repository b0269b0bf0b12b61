"""The relay: addressed messages and request/reply to whichever process holds an address.

The hub fans topics out to browsers and keeps history; the relay carries point-to-point calls between the
platform's own processes. One process *holds* an address (`panel.node.<id>` while that agent's socket is
connected to it, `streams.media@<node>` while it runs the media service); any process sends to it, or asks
and waits for the answer:

    async with context.relay.hold(f"panel.node.{node_id}") as inbox:      # AddressHeld if taken
        async for message in inbox:                                       # LeaseLost: fenced off
            answer = await forward_to_agent(message.data)
            if message.reply is not None:                                 # None: sent with send()
                await message.reply(answer)

    answer = await context.relay.request(f"panel.node.{node_id}", call, timeout=5)   # NoHolder, RelayTimeout
    delivered = await context.relay.send(f"panel.node.{node_id}", note)             # False: no holder

Data is `bytes` or `str` and arrives as it was sent, up to `max_message_bytes` (MessageTooLarge before
anything is sent). An address has one holder cluster-wide; a second `hold` raises AddressHeld, or waits
up to `wait` seconds for the address to come free, or with `take_over=True` takes it from the holder,
whose inbox then raises LeaseLost.

Backends. In process (the default): one process, a dictionary of holders. Redis (when the platform has a
`redis://` URL, PENTAD_REDIS__URL or PENTAD_REALTIME__BROKER_URL): the holder takes a lease,
`SET <prefix>:{<address>}:holder <token> NX PX <lease>`, renewed every third of the lease, and listens on
the channel `<prefix>:inbox:<token>`; a sender reads the holder's token and publishes to that channel in
one script, so a message only ever reaches the current lease's holder (fencing), and "nobody listens"
(no lease, or its process gone) is known at once: NoHolder, no waiting for a timeout. Replies come back
on the asking process's own channel `<prefix>:reply:<process id>`, matched by request id. A holder that
dies stops renewing: the address is free when its lease expires (`lease_seconds`, 6 s by default). A
holder that cannot renew before its lease runs out (Redis unreachable, a stalled process) or finds it
taken over stops receiving: its inbox raises LeaseLost. One that finds its lease gone but the address
free (Redis restarted and lost it) takes it again and keeps holding. RelayUnavailable (503) when Redis
cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from pentad.core.errors import ServiceUnavailable
from pentad.core.realtime.redis_clients import redis_pair

logger = structlog.get_logger("pentad.relay")

RelayData = bytes | str
Reply = Callable[[RelayData], Awaitable[None]]

MAX_MESSAGE_BYTES = 1_048_576
"""The largest message or reply, bytes (a str counts its UTF-8 encoding)."""
INBOX_SIZE = 1024
"""Messages waiting in one holder's inbox; beyond it, requests fail at once (RelayUnavailable)."""
LEASE_SECONDS = 6.0
KEY_PREFIX = "pentad:relay"
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
PING_INTERVAL = 5.0
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0
_ADDRESS = re.compile(r"[A-Za-z0-9_.:@/-]{1,200}")
_GONE, _BUSY = b"gone", b"busy"


class RelayError(Exception):
    """Base of the relay's errors."""


class NoHolder(RelayError):
    """Nobody holds the address (or its holder left before reading the message)."""


class AddressHeld(RelayError):
    """Another holder has the address."""


class LeaseLost(RelayError):
    """This holder no longer holds its address: messages for it go elsewhere, or nowhere."""


class RelayTimeout(RelayError, TimeoutError):
    """The holder did not answer in time."""


class MessageTooLarge(RelayError, ValueError):
    """A message or reply is longer than the relay carries; nothing was sent."""


class RelayUnavailable(RelayError, ServiceUnavailable):
    """The relay cannot work right now (Redis unreachable, the holder's inbox full); nothing was sent."""

    code = "relay_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(f"The relay is unavailable right now ({detail}); try again shortly.")


@dataclass(frozen=True, slots=True)
class RelayMessage:
    """What a holder receives: `data` as sent, and `reply` (await it with the answer, once) when the
    sender waits for one (`request`), None when it does not (`send`)."""

    data: RelayData
    reply: Reply | None = None


def check_address(address: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"relay address {address!r}: 1-200 of letters, digits and _ . : @ / -")
    return address


def _size(data: RelayData) -> int:
    if isinstance(data, str):
        return len(data.encode())
    if isinstance(data, bytes):
        return len(data)
    raise TypeError("relay data is bytes or str")


class Inbox:
    """The messages for a held address, in arrival order (`async for message in inbox`).

    Iteration ends when the relay closes; it raises LeaseLost when the address was lost."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._queue: asyncio.Queue[RelayMessage | None] = asyncio.Queue(INBOX_SIZE)
        self._lost = False
        self._ended = False

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> RelayMessage:
        if self._lost:
            raise LeaseLost(f"the address {self.address!r} is no longer held here")
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        message = await self._queue.get()
        if message is None:
            if self._lost:
                raise LeaseLost(f"the address {self.address!r} is no longer held here")
            raise StopAsyncIteration
        return message

    @property
    def open(self) -> bool:
        """Whether messages are still received (not ended, not lost)."""
        return not (self._lost or self._ended)

    def deliver(self, message: RelayMessage) -> bool:
        """Queue a message; False when the inbox is full or no longer open."""
        if self._lost or self._ended:
            return False
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, *, lost: bool) -> list[RelayMessage]:
        """Stop receiving; the messages not yet read (their senders are told the holder left)."""
        self._lost = self._lost or lost
        self._ended = True
        unread = []
        while not self._queue.empty():
            message = self._queue.get_nowait()
            if message is not None:
                unread.append(message)
        self._queue.put_nowait(None)
        return unread


class Relay(ABC):
    """Addressed messages between processes (see the module text). Apps get it as `context.relay`."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes

    def _check_size(self, data: RelayData) -> None:
        if _size(data) > self.max_message_bytes:
            raise MessageTooLarge(f"relay messages are at most {self.max_message_bytes} bytes")

    @abstractmethod
    def hold(
        self, address: str, *, wait: float = 0.0, take_over: bool = False
    ) -> contextlib.AbstractAsyncContextManager[Inbox]:
        """Hold `address` while the block runs and receive its messages. AddressHeld when another holder
        has it and it did not come free within `wait` seconds; with `take_over`, the address is taken
        from its holder at once (the newest connection of an agent wins), whose inbox raises LeaseLost."""

    @abstractmethod
    async def send(self, address: str, data: RelayData) -> bool:
        """Deliver `data` to the holder of `address` without waiting for an answer; False if nobody holds
        it. A holder whose inbox is full drops it (False in process; a warning in its log through Redis)."""

    @abstractmethod
    async def request(self, address: str, data: RelayData, timeout: float) -> RelayData:  # noqa: ASYNC109
        """Deliver `data` to the holder of `address` and return its reply. NoHolder at once when nobody
        holds it, RelayTimeout after `timeout` seconds without an answer."""

    @abstractmethod
    async def close(self) -> None:
        """End every inbox of this process (releasing the addresses) and fail the requests waiting."""


async def _wait_for_free(
    attempt: Callable[[], Awaitable[bool]], address: str, wait: float, poll: float
) -> None:
    deadline = time.monotonic() + wait
    while not await attempt():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AddressHeld(f"the relay address {address!r} is held elsewhere")
        await asyncio.sleep(min(poll, remaining))


def _failure(reason: bytes) -> RelayError:
    if reason == _BUSY:
        return RelayUnavailable("the holder's inbox is full")
    return NoHolder("the holder left before reading the message")


async def _answer_unread(unread: list[RelayMessage], reason: bytes) -> None:
    """Tell the senders of requests a holder will never read that it left."""
    for message in unread:
        fail = getattr(message.reply, "fail", None)
        if fail is not None:
            await fail(reason)


# ------------------------------------------------------------------ one process


class MemoryRelay(Relay):
    """The relay of a single process."""

    POLL_SECONDS = 0.05

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        super().__init__(max_message_bytes)
        self._holders: dict[str, Inbox] = {}

    @asynccontextmanager
    async def hold(self, address: str, *, wait: float = 0.0, take_over: bool = False) -> AsyncIterator[Inbox]:
        check_address(address)
        inbox = Inbox(address)

        async def attempt() -> bool:
            holder = self._holders.get(address)
            if holder is not None:
                if not take_over:
                    return False
                await _answer_unread(holder.end(lost=True), _GONE)
            self._holders[address] = inbox
            return True

        await _wait_for_free(attempt, address, wait, self.POLL_SECONDS)
        try:
            yield inbox
        finally:
            if self._holders.get(address) is inbox:
                del self._holders[address]
            await _answer_unread(inbox.end(lost=False), _GONE)

    async def send(self, address: str, data: RelayData) -> bool:
        check_address(address)
        self._check_size(data)
        inbox = self._holders.get(address)
        return inbox is not None and inbox.deliver(RelayMessage(data))

    async def request(self, address: str, data: RelayData, timeout: float) -> RelayData:  # noqa: ASYNC109
        check_address(address)
        self._check_size(data)
        inbox = self._holders.get(address)
        if inbox is None:
            raise NoHolder(f"nobody holds the relay address {address!r}")
        answer: asyncio.Future[RelayData] = asyncio.get_running_loop().create_future()
        reply = _InProcessReply(answer, self)
        if not inbox.deliver(RelayMessage(data, reply)):
            raise RelayUnavailable(f"the inbox of {address!r} is full")
        try:
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise RelayTimeout(f"the holder of {address!r} did not answer within {timeout} s") from None

    async def close(self) -> None:
        holders, self._holders = self._holders, {}
        for inbox in holders.values():
            await _answer_unread(inbox.end(lost=False), _GONE)


class _InProcessReply:
    def __init__(self, answer: asyncio.Future[RelayData], relay: Relay) -> None:
        self.answer = answer
        self.relay = relay

    async def __call__(self, data: RelayData) -> None:
        self.relay._check_size(data)
        if not self.answer.done():
            self.answer.set_result(data)

    async def fail(self, reason: bytes) -> None:
        if not self.answer.done():
            self.answer.set_exception(_failure(reason))


# ------------------------------------------------------------------ Redis

ACQUIRE_SCRIPT = """
-- KEYS: holder. ARGV: token, lease ms. 1: taken, 0: held by another.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

RENEW_SCRIPT = """
-- KEYS: holder. ARGV: token, lease ms. 1: renewed, 0: the lease is not ours any more.
-- A missing key (Redis restarted without persistence) is taken again: nobody else holds it, and the
-- holder only renews within its lease.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

TAKE_SCRIPT = """
-- KEYS: holder. ARGV: token, lease ms, inbox channel prefix. Takes the lease whoever has it, and tells the
-- previous holder at once (it would learn at its next renewal anyway).
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if previous and previous ~= ARGV[1] then redis.call('PUBLISH', ARGV[3] .. previous, 'x') end
return 1
"""

RELEASE_SCRIPT = """
-- KEYS: holder. ARGV: token.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

SEND_SCRIPT = """
-- KEYS: holder. ARGV: inbox channel prefix, message.
-- -1: no lease; otherwise the processes that received it (0: the holder's process is gone).
local token = redis.call('GET', KEYS[1])
if not token then return -1 end
return redis.call('PUBLISH', ARGV[1] .. token, ARGV[2])
"""

# Frames. To a holder: b"m" kind reply-channel request-id payload (b"-" for a send: no reply wanted).
# To an asking process: b"r" kind request-id payload (a reply) or b"e" b"-" request-id reason (a failure).
# b"x" to a holder: another process took the address over (TAKE_SCRIPT).
# kind is b"t" for text, b"b" for bytes.
_TEXT, _BYTES, _NONE = b"t", b"b", b"-"
_TAKEN = b"x"


def _encode(data: RelayData) -> tuple[bytes, bytes]:
    return (_TEXT, data.encode()) if isinstance(data, str) else (_BYTES, data)


def _decode(kind: bytes, payload: bytes) -> RelayData:
    return payload.decode() if kind == _TEXT else payload


@dataclass
class _Holding:
    address: str
    token: str
    inbox: Inbox
    renewer: asyncio.Task[None] | None = None
    released: bool = False


class RedisRelay(Relay):
    """The relay across processes and nodes through Redis (see the module text)."""

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        prefix: str = KEY_PREFIX,
    ) -> None:
        super().__init__(max_message_bytes)
        self.lease_seconds = lease_seconds
        self.prefix = prefix
        self._redis, self._subscriber = redis_pair(
            url, connect_timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
        )
        self._acquire = self._redis.register_script(ACQUIRE_SCRIPT)
        self._renew = self._redis.register_script(RENEW_SCRIPT)
        self._release = self._redis.register_script(RELEASE_SCRIPT)
        self._take = self._redis.register_script(TAKE_SCRIPT)
        self._send = self._redis.register_script(SEND_SCRIPT)
        self._reply_channel = f"{prefix}:reply:{uuid.uuid4().hex}".encode()
        self._inbox_prefix = f"{prefix}:inbox:"
        self._inbox_bytes = self._inbox_prefix.encode()
        self._holdings: dict[bytes, _Holding] = {}
        self._pending: dict[bytes, asyncio.Future[RelayData]] = {}
        self._ids = itertools.count(1)
        self._pubsub: PubSub | None = None
        self._ops_lock = asyncio.Lock()
        self._confirming: dict[bytes, list[asyncio.Future[None]]] = {}
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._down = False
        self._closed = False

    def _holder_key(self, address: str) -> str:
        return f"{self.prefix}:{{{address}}}:holder"

    def _inbox_channel(self, token: str) -> bytes:
        return f"{self._inbox_prefix}{token}".encode()

    # ------------------------------------------------------------------ holding

    @asynccontextmanager
    async def hold(self, address: str, *, wait: float = 0.0, take_over: bool = False) -> AsyncIterator[Inbox]:
        check_address(address)
        await self._started()
        holding = _Holding(address, uuid.uuid4().hex, Inbox(address))
        channel = self._inbox_channel(holding.token)
        # Listen first, then take the lease: nothing sent to the new holder is published to nobody.
        self._holdings[channel] = holding
        try:
            await self._subscribe(channel)
            lease_ms = int(self.lease_seconds * 1000)

            sent = 0.0

            async def attempt() -> bool:
                nonlocal sent
                sent = time.monotonic()
                if take_over:
                    return bool(
                        await self._call(self._take, address, [holding.token, lease_ms, self._inbox_prefix])
                    )
                return bool(await self._call(self._acquire, address, [holding.token, lease_ms]))

            await _wait_for_free(attempt, address, wait, min(0.2, self.lease_seconds / 10))
        except BaseException:
            self._holdings.pop(channel, None)
            await self._unsubscribe(channel)
            raise
        holding.renewer = asyncio.create_task(self._keep(holding, sent), name=f"relay hold {address}")
        try:
            yield holding.inbox
        finally:
            await self._let_go(holding, channel)

    async def _let_go(self, holding: _Holding, channel: bytes) -> None:
        if holding.released:
            return
        holding.released = True
        if holding.renewer is not None:
            holding.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding.renewer
        self._holdings.pop(channel, None)
        unread = holding.inbox.end(lost=False)
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[self._holder_key(holding.address)], args=[holding.token])
        await self._unsubscribe(channel)
        await _answer_unread(unread, _GONE)

    async def _keep(self, holding: _Holding, started: float) -> None:
        """Renew the lease every third of it; fence the holder off once it may have expired (counted from
        when the last successful renewal was sent, which is no later than Redis counts it) or another
        process has it."""
        lease_ms = int(self.lease_seconds * 1000)
        interval = self.lease_seconds / 3
        deadline = started + self.lease_seconds
        key = self._holder_key(holding.address)
        while True:
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))
            sent = time.monotonic()
            if sent >= deadline:
                break
            try:
                async with asyncio.timeout(deadline - sent):
                    renewed = await self._renew(keys=[key], args=[holding.token, lease_ms])
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("relay_lease_not_renewed", address=holding.address, error=repr(exc))
                continue
            if not renewed:
                break
            deadline = sent + self.lease_seconds
        await self._lose(holding)

    async def _lose(self, holding: _Holding) -> None:
        """Fence a holder off: no more messages, its inbox raises LeaseLost."""
        channel = self._inbox_channel(holding.token)
        if self._holdings.pop(channel, None) is None:
            return
        logger.warning("relay_lease_lost", address=holding.address)
        await self._unsubscribe(channel)
        await _answer_unread(holding.inbox.end(lost=True), _GONE)

    # ------------------------------------------------------------------ sending

    async def send(self, address: str, data: RelayData) -> bool:
        check_address(address)
        self._check_size(data)
        if self._closed:
            raise RelayUnavailable("the relay is closed")
        kind, payload = _encode(data)
        frame = b" ".join((b"m" + kind, _NONE, _NONE, payload))
        received = await self._call(self._send, address, [self._inbox_prefix, frame])
        return int(received) > 0

    async def request(self, address: str, data: RelayData, timeout: float) -> RelayData:  # noqa: ASYNC109
        check_address(address)
        self._check_size(data)
        await self._started()
        request_id = str(next(self._ids)).encode()
        kind, payload = _encode(data)
        frame = b" ".join((b"m" + kind, self._reply_channel, request_id, payload))
        answer: asyncio.Future[RelayData] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            received = await self._call(self._send, address, [self._inbox_prefix, frame])
            if int(received) <= 0:
                raise NoHolder(f"nobody holds the relay address {address!r}")
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise RelayTimeout(f"the holder of {address!r} did not answer within {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _call(self, script: Any, address: str, args: list[bytes | str | int]) -> int:
        try:
            result = await script(keys=[self._holder_key(address)], args=args)
        except (RedisError, OSError) as exc:
            raise RelayUnavailable("Redis cannot be reached") from exc
        return int(result)

    # ------------------------------------------------------------------ the subscriber connection

    async def _started(self) -> None:
        """Start listening (on first use) and wait until the reply channel is subscribed."""
        if self._closed:
            raise RelayUnavailable("the relay is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pentad-relay-redis")
        if not self._ready.is_set():
            # Wait for the first attempt to connect; after a failed one, say so at once.
            if not self._down:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CONNECT_TIMEOUT + COMMAND_TIMEOUT):
                        await self._settled.wait()
            if not self._ready.is_set():
                raise RelayUnavailable("Redis cannot be reached")

    async def _subscribe(self, channel: bytes) -> None:
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, []).append(confirmed)
        async with self._ops_lock:
            pubsub = self._pubsub
            if pubsub is None:
                raise RelayUnavailable("Redis cannot be reached")
            try:
                await pubsub.execute_command("SUBSCRIBE", channel)
            except (RedisError, OSError) as exc:
                raise RelayUnavailable("Redis cannot be reached") from exc
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await confirmed
        except TimeoutError:
            raise RelayUnavailable("Redis did not confirm a subscription") from None

    async def _unsubscribe(self, channel: bytes) -> None:
        async with self._ops_lock:
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.execute_command("UNSUBSCRIBE", channel)

    async def _run(self) -> None:
        delay = BACKOFF_INITIAL
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                if self._ready.is_set():
                    logger.warning("relay_redis_lost", error=repr(exc))
                delay = BACKOFF_INITIAL if self._ready.is_set() else min(BACKOFF_MAX, delay * 2)
            finally:
                self._down = True
                self._settled.set()
                self._ready.clear()
                self._pubsub = None
                for waiting in self._confirming.values():
                    for future in waiting:
                        if not future.done():
                            future.set_exception(RelayUnavailable("Redis connection lost"))
                self._confirming.clear()
                for answer in self._pending.values():
                    if not answer.done():
                        answer.set_exception(RelayUnavailable("Redis connection lost"))
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _listen(self, pubsub: PubSub) -> None:
        async with self._ops_lock:
            channels = [self._reply_channel, *self._holdings]
            await pubsub.execute_command("SUBSCRIBE", *channels)
            self._pubsub = pubsub
        awaiting = set(channels)
        last_traffic = time.monotonic()
        ping_sent = False
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL)
            now = time.monotonic()
            if message is None:
                if ping_sent and now - last_traffic > 2 * PING_INTERVAL:
                    raise redis.ConnectionError("Redis stopped answering")
                await pubsub.ping()
                ping_sent = True
                continue
            last_traffic, ping_sent = now, False
            kind = message["type"]
            if kind == "message":
                try:
                    self._dispatch(message["channel"], message["data"])
                except ValueError:
                    logger.warning("relay_frame_malformed")
            elif kind == "subscribe":
                channel = message["channel"]
                if awaiting:
                    awaiting.discard(channel)
                    if not awaiting:
                        self._down = False
                        self._ready.set()
                        self._settled.set()
                    continue
                waiting = self._confirming.get(channel)
                if waiting:
                    future = waiting.pop(0)
                    if not future.done():
                        future.set_result(None)

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel == self._reply_channel:
            head, request_id, payload = data.split(b" ", 2)
            answer = self._pending.get(request_id)
            if answer is None or answer.done():
                return
            if head[:1] == b"r":
                answer.set_result(_decode(head[1:], payload))
            else:
                answer.set_exception(_failure(payload))
            return
        if not channel.startswith(self._inbox_bytes):
            return
        if data == _TAKEN:
            taken = self._holdings.get(channel)
            if taken is not None:
                if taken.renewer is not None:
                    taken.renewer.cancel()
                self._in_background(self._lose(taken))
            return
        head, reply_channel, request_id, payload = data.split(b" ", 3)
        reply = None if reply_channel == _NONE else _RedisReply(self, reply_channel, request_id)
        holding = self._holdings.get(channel)
        if holding is not None and holding.inbox.deliver(RelayMessage(_decode(head[1:], payload), reply)):
            return
        if reply is None:
            logger.warning("relay_message_dropped", address=holding.address if holding else None)
        else:
            # Arrived as this holder let go (or fenced off): the asker hears so now, not at its timeout.
            reason = _BUSY if holding is not None and holding.inbox.open else _GONE
            self._in_background(reply.fail(reason))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        self._closed = True
        for channel, holding in list(self._holdings.items()):
            await self._let_go(holding, channel)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(RelayUnavailable("the relay closed"))
        # types-redis predates aclose() (redis-py 5); close() is deprecated.
        await self._redis.aclose()  # type: ignore[attr-defined]
        await self._subscriber.aclose()  # type: ignore[attr-defined]


class _RedisReply:
    """Answers one request: published on the asking process's reply channel."""

    def __init__(self, relay: RedisRelay, channel: bytes, request_id: bytes) -> None:
        self.relay = relay
        self.channel = channel
        self.request_id = request_id

    async def __call__(self, data: RelayData) -> None:
        self.relay._check_size(data)
        kind, payload = _encode(data)
        await self._publish(b" ".join((b"r" + kind, self.request_id, payload)))

    async def fail(self, reason: bytes) -> None:
        with contextlib.suppress(RelayUnavailable):
            await self._publish(b" ".join((b"e" + _NONE, self.request_id, reason)))

    async def _publish(self, frame: bytes) -> None:
        try:
            await self.relay._redis.publish(self.channel, frame)
        except (RedisError, OSError) as exc:
            raise RelayUnavailable("Redis cannot be reached") from exc


def build_relay(url: str | None, *, workers: int = 1) -> Relay:
    """The Redis relay for a `redis://` or `rediss://` URL, else the in-process one (which cannot reach
    the holders of the other `workers`)."""
    if url and url.partition("://")[0] in ("redis", "rediss"):
        return RedisRelay(url)
    if workers > 1:
        logger.warning("relay_single_process", workers=workers, hint="set PENTAD_REDIS__URL")
    return MemoryRelay()
