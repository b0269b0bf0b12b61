"""The Redis broker: fan-out across workers and nodes, history and sequence numbers kept in Redis.

One Redis channel per topic, so a node receives only the topics its clients subscribed to (it subscribes
on the first local subscriber and unsubscribes after the last). Publishing is one Lua script that
increments the topic's seq, appends the event to a capped stream and PUBLISHes it, atomically, so the
order every node sees is the seq order. The script builds the event frame itself: nodes forward it to
their clients as received, without decoding it.

Keys of a topic share a hash tag (`pentad:rt:{<topic>}:…`) so a Redis Cluster keeps them on one slot:
`meta` (hash: epoch, seq), `history` (stream, entry id `<seq>-0`, fields f = frame, t = Unix ms),
`presence` (zset: member id -> expiry ms), `refs` (hash: member id -> nodes holding it), `members`
(hash: member id -> JSON). Every key expires when the topic goes quiet. When Redis loses the keys (a
restart without persistence), the next publish or subscribe starts a new epoch, so a client resuming
from the old epoch learns that it must refetch (recovered = false).

If Redis goes away the broker reports unhealthy (`/readyz` says so), reconnects with backoff,
resubscribes every channel, and tells the hub, which replays or resets what its clients may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from typing import Any

import orjson
import redis.asyncio
import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from pentad.core.realtime.brokers import (
    PRESENCE_TTL,
    Broker,
    BrokerListener,
    BrokerUnavailable,
    History,
    new_epoch,
    presence_frame,
)
from pentad.core.realtime.protocol import Member
from pentad.core.realtime.redis_clients import redis_pair
from pentad.core.realtime.topics import TopicSpec

logger = structlog.get_logger("pentad.realtime")

KEY_PREFIX = "pentad:rt"
CONTROL_CHANNEL = f"{KEY_PREFIX}:control"
"""Every node listens here: `r {"principals": [...], "topic": ...}` asks each to recheck access."""
_CONTROL = CONTROL_CHANNEL.encode()
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
SUBSCRIBE_TIMEOUT = 5.0
PING_INTERVAL = 5.0
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0

_ENSURE_META = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

PUBLISH_SCRIPT = (
    """
-- KEYS: meta, history. ARGV: new epoch, channel, topic as JSON, data JSON, history size, ttl ms.
"""
    + _ENSURE_META
    + """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local frame = '{"op":"event","topic":' .. ARGV[3] .. ',"seq":' .. string.format('%d', seq)
  .. ',"epoch":"' .. epoch .. '","ts":' .. string.format('%d', now) .. ',"data":' .. ARGV[4] .. '}'
local size = tonumber(ARGV[5])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, string.format('%d-0', seq), 'f', frame, 't', now)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[2], string.format('e %d %s %d ', seq, epoch, now) .. frame)
return {seq, epoch}
"""
)

HISTORY_SCRIPT = (
    """
-- KEYS: meta, history. ARGV: new epoch, since (-1: none), client epoch, ttl ms.
-- Returns {epoch, seq, recovered (0/1), frame after since, ...}.
"""
    + _ENSURE_META
    + """
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local since = tonumber(ARGV[2])
if since < 0 or ARGV[3] ~= epoch or since > seq then return {epoch, seq, 0} end
if since == seq then return {epoch, seq, 1} end
local entries = redis.call('XRANGE', KEYS[2], '(' .. string.format('%d-0', since), '+')
local first = entries[1]
if first == nil or first[1] ~= string.format('%d-0', since + 1) then return {epoch, seq, 0} end
if tonumber(first[2][4]) < now - tonumber(ARGV[4]) then return {epoch, seq, 0} end
local result = {epoch, seq, 1}
for _, entry in ipairs(entries) do result[#result + 1] = entry[2][2] end
return result
"""
)

_CLOCK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

PRESENCE_JOIN_SCRIPT = (
    """
-- KEYS: presence, refs, members. ARGV: member id, member JSON, ttl ms, channel, join frame.
"""
    + _CLOCK
    + """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not expiry) or tonumber(expiry) < now then redis.call('HDEL', KEYS[2], ARGV[1]) end
local refs = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
if refs == 1 then redis.call('PUBLISH', ARGV[4], 'p ' .. ARGV[5]) end
return refs
"""
)

PRESENCE_LEAVE_SCRIPT = """
-- KEYS: presence, refs, members. ARGV: member id, channel, leave frame.
local refs = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if refs <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('PUBLISH', ARGV[2], 'p ' .. ARGV[3])
end
return refs
"""

PRESENCE_REFRESH_SCRIPT = (
    """
-- KEYS: presence, refs, members. ARGV: ttl ms, then member id and member JSON pairs.
-- Keeps this node's members alive, and restores those Redis lost (a restart) without announcing them.
"""
    + _CLOCK
    + """
for i = 2, #ARGV, 2 do
  local expiry = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if (not expiry) or tonumber(expiry) < now then
    redis.call('HSET', KEYS[2], ARGV[i], 1)
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
return 0
"""
)

PRESENCE_LIST_SCRIPT = (
    """
-- KEYS: presence, refs, members. Returns the JSON of every member whose entry has not expired.
"""
    + _CLOCK
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[3], unpack(ids))
"""
)


def channel_of(topic: str) -> str:
    return f"{KEY_PREFIX}:{{{topic}}}"


def _keys(topic: str, *names: str) -> list[str]:
    return [f"{KEY_PREFIX}:{{{topic}}}:{name}" for name in names]


def _ttl_ms(spec: TopicSpec) -> int:
    return max(1, int(spec.history_ttl * 1000))


class RedisBroker(Broker):
    def __init__(self, url: str) -> None:
        self._redis, self._subscriber = redis_pair(
            url, connect_timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
        )
        self._publish = self._redis.register_script(PUBLISH_SCRIPT)
        self._history = self._redis.register_script(HISTORY_SCRIPT)
        self._join = self._redis.register_script(PRESENCE_JOIN_SCRIPT)
        self._leave = self._redis.register_script(PRESENCE_LEAVE_SCRIPT)
        self._refresh = self._redis.register_script(PRESENCE_REFRESH_SCRIPT)
        self._list = self._redis.register_script(PRESENCE_LIST_SCRIPT)
        self._listener: BrokerListener | None = None
        self._topics: dict[bytes, str] = {}
        self._pubsub: PubSub | None = None
        self._ops: list[tuple[str, str]] = []
        self._ops_lock = asyncio.Lock()
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}
        self._healthy = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener
        self._task = asyncio.create_task(self._run(), name="pentad-realtime-redis")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._background):
            task.cancel()
        self._listener = None
        # types-redis predates aclose() (redis-py 5); close() is deprecated.
        await self._redis.aclose()  # type: ignore[attr-defined]
        await self._subscriber.aclose()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ publishing and history

    async def publish(self, topic: str, data_json: str, spec: TopicSpec) -> tuple[int, str]:
        args: list[str | int] = [
            new_epoch(),
            channel_of(topic),
            orjson.dumps(topic).decode(),
            data_json,
            spec.history_size,
            _ttl_ms(spec),
        ]
        try:
            seq, epoch = await self._publish(keys=_keys(topic, "meta", "history"), args=args)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return int(seq), epoch.decode()

    async def history(self, topic: str, since: int | None, epoch: str | None, spec: TopicSpec) -> History:
        if not self._healthy:
            raise BrokerUnavailable("Redis is unavailable")
        args: list[str | int] = [new_epoch(), -1 if since is None else since, epoch or "", _ttl_ms(spec)]
        try:
            reply = await self._history(keys=_keys(topic, "meta", "history"), args=args)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        current, seq, recovered = reply[0].decode(), int(reply[1]), bool(reply[2])
        start = since or 0
        frames = [(start + index, frame.decode()) for index, frame in enumerate(reply[3:], 1)]
        return History(current, seq, recovered, frames)

    async def recheck(self, principal_ids: list[str], topic: str | None) -> None:
        message = b"r " + orjson.dumps({"principals": principal_ids, "topic": topic})
        try:
            await self._redis.publish(CONTROL_CHANNEL, message)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc

    # ------------------------------------------------------------------ presence

    async def _presence_call(self, script: Any, topic: str, args: list[Any]) -> Any:
        try:
            return await script(keys=_keys(topic, "presence", "refs", "members"), args=args)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def presence_join(self, topic: str, member: Member) -> None:
        frame = presence_frame("join", topic, member)
        ttl = int(PRESENCE_TTL * 1000)
        args = [member.id, member.model_dump_json(), ttl, channel_of(topic), frame]
        await self._presence_call(self._join, topic, args)

    async def presence_leave(self, topic: str, member: Member) -> None:
        frame = presence_frame("leave", topic, member)
        await self._presence_call(self._leave, topic, [member.id, channel_of(topic), frame])

    async def presence_refresh(self, topic: str, members: list[Member]) -> None:
        if members:
            pairs = [value for member in members for value in (member.id, member.model_dump_json())]
            args = [int(PRESENCE_TTL * 1000), *pairs]
            await self._presence_call(self._refresh, topic, args)

    async def presence_list(self, topic: str) -> list[Member]:
        found = await self._presence_call(self._list, topic, [])
        return [Member.model_validate_json(item) for item in found if item is not None]

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(self, topic: str) -> None:
        if not self._healthy:
            raise BrokerUnavailable("Redis is unavailable")
        channel = channel_of(topic)
        self._topics[channel.encode()] = topic
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, deque()).append(confirmed)
        self._ops.append(("SUBSCRIBE", channel))
        await self._flush_ops()
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await confirmed
        except TimeoutError:
            raise BrokerUnavailable("Redis did not confirm the subscription") from None

    def unsubscribe(self, topic: str) -> None:
        channel = channel_of(topic)
        self._topics.pop(channel.encode(), None)
        self._ops.append(("UNSUBSCRIBE", channel))
        task = asyncio.create_task(self._flush_ops())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flush_ops(self) -> None:
        """Send queued (UN)SUBSCRIBE commands in the order they were asked for, whoever flushes."""
        async with self._ops_lock:
            pubsub = self._pubsub
            while self._ops:
                command, channel = self._ops.pop(0)
                if pubsub is None:
                    continue
                try:
                    await pubsub.execute_command(command, channel)
                except (RedisError, OSError) as exc:
                    # The reader sees the broken connection too and starts over from the wanted set.
                    logger.warning("realtime_redis_command_failed", command=command, error=repr(exc))

    def _fail_confirmations(self) -> None:
        for waiting in self._confirming.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(BrokerUnavailable("Redis connection lost"))
        self._confirming.clear()

    # ------------------------------------------------------------------ the subscriber connection

    async def _run(self) -> None:
        delay = BACKOFF_INITIAL
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                if self._healthy:
                    logger.warning("realtime_redis_lost", error=repr(exc))
                delay = BACKOFF_INITIAL if self._healthy else min(BACKOFF_MAX, delay * 2)
            finally:
                self._healthy = False
                self._pubsub = None
                self._fail_confirmations()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _listen(self, pubsub: PubSub) -> None:
        async with self._ops_lock:
            self._ops.clear()
            channels = [CONTROL_CHANNEL, *(channel_of(topic) for topic in self._topics.values())]
            await pubsub.execute_command("SUBSCRIBE", *channels)
            self._pubsub = pubsub
        awaiting = {channel.encode() for channel in channels}
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
                self._dispatch(message["channel"], message["data"])
            elif kind == "subscribe":
                channel = message["channel"]
                if awaiting:
                    awaiting.discard(channel)
                    if not awaiting:
                        self._healthy = True
                        logger.info("realtime_redis_ready")
                        if self._listener is not None:
                            self._listener.on_broker_up()
                    continue
                waiting = self._confirming.get(channel.decode())
                if waiting:
                    future = waiting.popleft()
                    if not future.done():
                        future.set_result(None)

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        listener = self._listener
        if channel == _CONTROL and listener is not None:
            if data[:2] == b"r ":
                request = orjson.loads(data[2:])
                listener.on_recheck([str(p) for p in request["principals"]], request["topic"])
            return
        topic = self._topics.get(channel)
        if topic is None or listener is None:
            return
        if data[:2] == b"e ":
            _, seq, epoch, stamp, frame = data.split(b" ", 4)
            listener.on_event(topic, int(seq), epoch.decode(), frame.decode(), int(stamp) / 1000)
        elif data[:2] == b"p ":
            listener.on_presence(topic, data[2:].decode())
