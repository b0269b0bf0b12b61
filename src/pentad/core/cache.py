"""Cache: JSON values with a time to live, in process memory (`memory://`) or in Redis (`redis://…`).

`get_or_set(key, ttl, loader)` guards against stampedes: one loader runs per key at a time. In one process,
callers of the same key queue on a per-key asyncio lock and the later ones find the value. On Redis,
processes also race for a short `SET NX PX` lock; the others poll for the value with growing pauses, for at
most PENTAD_CACHE__LOCK_TIMEOUT (the lock's own lifetime), then load it themselves, so a crashed or slow
holder delays its key but never blocks it.

Counters: `incr(key, by, ttl)` adds to an integer atomically across every process sharing the backend (on
Redis one Lua script: INCRBY, and PEXPIRE when the key is new) and returns the new value; the TTL counts
from the counter's creation, so `clicks:<campaign>:<day>` is a fixed window that later increments do not
extend. A counter reads back through `get` / `get_many` as a plain integer. `get_many(keys)` reads many
keys in one round trip (MGET).

Values go through JSON on both backends, so a value reads back the same wherever it was cached. An
unreachable Redis makes the cache a pass-through (reads miss, writes are dropped, a warning is logged at most
once a minute, Redis tried again a second later) rather than an outage of the platform; only delete and incr
raise (CacheUnavailable, 503), because an invalidation silently lost would keep serving stale data and an
increment silently lost would let a cap be exceeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic  # imported by name so tests can move this clock without moving asyncio's
from typing import Any

import orjson
import redis.asyncio
import structlog
from redis.exceptions import RedisError, ResponseError

from pentad.core.config import CacheSettings
from pentad.core.errors import ServiceUnavailable

KEY_PREFIX = "pentad:cache:"
REDIS_TIMEOUT_SECONDS = 0.5
FIRST_POLL_SECONDS = 0.01
LONGEST_POLL_SECONDS = 0.2
WARNING_INTERVAL_SECONDS = 60.0
RETRY_SECONDS = 1.0
"""After a Redis failure the cache passes through this long before trying Redis again, so that a Redis that
does not answer costs one timeout a second rather than several per call."""

Loader = Callable[[], Awaitable[Any]]

logger = structlog.get_logger("pentad.cache")


class CacheUnavailable(ServiceUnavailable):
    code = "cache_unavailable"

    def __init__(self) -> None:
        super().__init__("The cache is unavailable right now; try again shortly.")


@dataclass
class _Flight:
    """The per-key lock of get_or_set, and how many callers hold or await it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Cache(ABC):
    def __init__(self, *, default_ttl: float) -> None:
        self.default_ttl = default_ttl
        self._flights: dict[str, _Flight] = {}

    async def get(self, key: str) -> Any:
        """The cached value, or None when there is none (a cached JSON null reads the same)."""
        raw = await self._read(key)
        return None if raw is None else orjson.loads(raw)

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        """The cached values of `keys`, in their order (None where there is none)."""
        raws = await self._read_many(keys) if keys else []
        return [None if raw is None else orjson.loads(raw) for raw in raws]

    async def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Add `by` (may be negative) to the integer counter `key` and return its new value; a missing or
        expired key starts from 0 and lives `ttl` seconds (default PENTAD_CACHE__DEFAULT_TTL) from then,
        not extended by later increments. ValueError when the key holds something other than an integer;
        CacheUnavailable when Redis cannot be reached."""
        if isinstance(by, bool) or not isinstance(by, int):
            raise TypeError("a counter is incremented by an integer")
        return await self._incr(key, by, self._ttl(ttl))

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Cache a JSON-serialisable value for `ttl` seconds (default PENTAD_CACHE__DEFAULT_TTL)."""
        await self._write(key, orjson.dumps(value), self._ttl(ttl))

    async def get_or_set(self, key: str, ttl: float | None, loader: Loader) -> Any:
        """The cached value; on a miss, `await loader()`, cached for `ttl` seconds. One loader runs per key
        at a time: the callers that wait for it get its value. A loader's exception reaches its caller and
        caches nothing; the next caller in line loads again."""
        raw = await self._read(key)
        if raw is None:
            async with self._single_flight(key):
                raw = await self._read(key)
                if raw is None:
                    raw = await self._load(key, self._ttl(ttl), loader)
        return orjson.loads(raw)

    @contextlib.asynccontextmanager
    async def _single_flight(self, key: str) -> AsyncIterator[None]:
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
        flight.users += 1
        try:
            async with flight.lock:
                yield
        finally:
            flight.users -= 1
            if flight.users == 0:
                del self._flights[key]

    async def _load(self, key: str, ttl: float, loader: Loader) -> bytes:
        raw = orjson.dumps(await loader())
        await self._write(key, raw, ttl)
        return raw

    def _ttl(self, ttl: float | None) -> float:
        if ttl is None:
            return self.default_ttl
        if ttl <= 0:
            raise ValueError("a cache TTL must be positive")
        return ttl

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _read(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _read_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    @abstractmethod
    async def _incr(self, key: str, by: int, ttl: float) -> int: ...

    @abstractmethod
    async def _write(self, key: str, raw: bytes, ttl: float) -> None: ...


class MemoryCache(Cache):
    """One process's cache, holding at most `max_entries`: past that, the least recently written go."""

    def __init__(self, *, default_ttl: float, max_entries: int) -> None:
        super().__init__(default_ttl=default_ttl)
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def _read(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, raw = entry
        if expires_at <= monotonic():
            del self._entries[key]
            return None
        return raw

    async def _read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self._read(key) for key in keys]

    async def _write(self, key: str, raw: bytes, ttl: float) -> None:
        self._store(key, raw, monotonic() + ttl)

    def _store(self, key: str, raw: bytes, expires_at: float) -> None:
        self._entries[key] = (expires_at, raw)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def _incr(self, key: str, by: int, ttl: float) -> int:
        # No await between the read and the write: atomic within the process, as the backend is.
        now = monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            value, expires_at = by, now + ttl
        else:
            expires_at, raw = entry
            value = _counter(raw, key) + by
        self._store(key, str(value).encode(), expires_at)
        return value

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


def _counter(raw: bytes, key: str) -> int:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"the cache key {key!r} holds something other than a counter")
    return value


_INCR_SCRIPT = """
local value = redis.call("incrby", KEYS[1], ARGV[1])
if redis.call("pttl", KEYS[1]) < 0 then
    redis.call("pexpire", KEYS[1], ARGV[2])
end
return value
"""
"""One atomic step: add, and give a new counter (no expiry yet) its lifetime."""

_RELEASE_SCRIPT = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""
"""Deletes the lock only if it is still ours: after it expired, another process may hold it."""


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisCache(Cache):
    """A cache shared by every process using the same Redis and key prefix."""

    def __init__(
        self, url: str, *, default_ttl: float, lock_timeout: float, key_prefix: str = KEY_PREFIX
    ) -> None:
        super().__init__(default_ttl=default_ttl)
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._release = self._redis.register_script(_RELEASE_SCRIPT)
        self._increment = self._redis.register_script(_INCR_SCRIPT)
        self._lock_timeout = lock_timeout
        self._values = key_prefix + "v:"
        self._locks = key_prefix + "l:"
        self._last_warning_at: float | None = None
        self._retry_at = 0.0

    def _passing_through(self) -> bool:
        return monotonic() < self._retry_at

    async def _read(self, key: str) -> bytes | None:
        if self._passing_through():
            return None
        try:
            raw: bytes | None = await self._redis.get(self._values + key)
        except RedisError as exc:
            self._unavailable(exc)
            return None
        return raw

    async def _read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if self._passing_through():
            return [None] * len(keys)
        try:
            raws: list[bytes | None] = await self._redis.mget([self._values + key for key in keys])
        except RedisError as exc:
            self._unavailable(exc)
            return [None] * len(keys)
        return raws

    async def _incr(self, key: str, by: int, ttl: float) -> int:
        if self._passing_through():
            raise CacheUnavailable()
        try:
            value = await self._increment(keys=[self._values + key], args=[by, _milliseconds(ttl)])
        except ResponseError as exc:
            if "not an integer" in str(exc):
                raise ValueError(f"the cache key {key!r} holds something other than a counter") from None
            raise CacheUnavailable() from exc
        except RedisError as exc:
            self._unavailable(exc)
            raise CacheUnavailable() from exc
        return int(value)

    async def _write(self, key: str, raw: bytes, ttl: float) -> None:
        if self._passing_through():
            return
        try:
            await self._redis.set(self._values + key, raw, px=_milliseconds(ttl))
        except RedisError as exc:
            self._unavailable(exc)

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._values + key)
        except RedisError as exc:
            raise CacheUnavailable() from exc

    async def _load(self, key: str, ttl: float, loader: Loader) -> bytes:
        token = secrets.token_hex(16)
        deadline = monotonic() + self._lock_timeout
        pause = FIRST_POLL_SECONDS
        while not await self._lock(key, token):
            await asyncio.sleep(min(pause * random.uniform(0.5, 1.0), max(0.0, deadline - monotonic())))
            pause = min(pause * 2, LONGEST_POLL_SECONDS)
            raw = await self._read(key)
            if raw is not None:
                return raw
            if monotonic() >= deadline:
                logger.warning("cache_lock_wait_expired", key=key, lock_timeout=self._lock_timeout)
                return await super()._load(key, ttl, loader)
        try:
            raw = await self._read(key)
            return raw if raw is not None else await super()._load(key, ttl, loader)
        finally:
            await self._unlock(key, token)

    async def _lock(self, key: str, token: str) -> bool:
        """Whether this caller may load the key: it took the lock, or Redis is down and there is no lock."""
        if self._passing_through():
            return True
        try:
            taken = await self._redis.set(
                self._locks + key, token, nx=True, px=_milliseconds(self._lock_timeout)
            )
        except RedisError as exc:
            self._unavailable(exc)
            return True
        return bool(taken)

    async def _unlock(self, key: str, token: str) -> None:
        if self._passing_through():
            return
        try:
            await self._release(keys=[self._locks + key], args=[token])
        except RedisError as exc:
            self._unavailable(exc)  # the lock expires by itself

    def _unavailable(self, exc: Exception) -> None:
        now = monotonic()
        self._retry_at = now + RETRY_SECONDS
        if self._last_warning_at is None or now - self._last_warning_at >= WARNING_INTERVAL_SECONDS:
            self._last_warning_at = now
            logger.warning("cache_unavailable", error=str(exc), passing_through=True)

    async def close(self) -> None:
        await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose()


def build_cache(settings: CacheSettings) -> Cache:
    if settings.url == "memory://":
        return MemoryCache(default_ttl=settings.default_ttl, max_entries=settings.memory_max_entries)
    return RedisCache(settings.url, default_ttl=settings.default_ttl, lock_timeout=settings.lock_timeout)
