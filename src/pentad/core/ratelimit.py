"""Rate limits: sliding-window counters, in process memory or in Redis.

`RateLimiter.enforce(limit, *key)` counts one hit and raises TooManyRequests when the key is over its
limit. Memory storage counts per process, so with several workers each worker allows the full limit;
use Redis (`PENTAD_RATELIMIT__STORAGE_URL=redis://…`) to share the counts. When Redis cannot be reached the
limiter lets requests through and logs a warning at most once a minute: an outage of the limiter must not
become an outage of the platform.

The counter is the sliding-window counter of the `limits` library (whose parser reads the limit strings):
windows of the limit's length aligned to the clock, and the count that decides is the current window's
hits plus the previous window's, weighted by how much of the previous window still lies inside the sliding
one. A refused hit does not count. Each key holds three numbers; a hit costs O(1) in memory (expired keys
go lazily when touched, and a few are swept per hit, so memory follows the keys in use) and one round trip
(one Lua script) in Redis.

RateLimitMiddleware applies each route's per-address limit (IPv6 per /64): the class its policy declares
(core/policy.py) or the default. It sends RateLimit-Limit, -Remaining and -Reset on every response of a
limited request, describing whichever limit the request came closest to exhausting: any `enforce` during
the request counts (the per-principal limit, the login limits), found through a context variable.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from contextvars import ContextVar, Token
from dataclasses import dataclass
from functools import lru_cache
from time import monotonic  # imported by name so tests can move this clock without moving asyncio's

import redis.asyncio
import structlog
from limits import parse
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pentad.core.config import RateLimitSettings, SettingsError
from pentad.core.errors import TooManyRequests, problem_response
from pentad.core.policy import RATE_GATE_STATE_KEY, RoutePolicies
from pentad.core.security import scope_client_address

logger = structlog.get_logger("pentad.ratelimit")

KEY_PREFIX = "pentad:ratelimit"
STORAGE_TIMEOUT_SECONDS = 0.5
STORAGE_RETRY_SECONDS = 1.0
"""After a storage failure, requests pass unchecked this long before Redis is tried again, so that an
unreachable Redis costs one timeout per second rather than one per request."""
WARNING_INTERVAL_SECONDS = 60.0
SWEEP_EVERY = 32
SWEEP_BATCH = 64
"""Every SWEEP_EVERY hits, the memory counters look at the SWEEP_BATCH keys least recently looked at and
drop the expired ones: two keys per hit, more than the one key a hit can add, so expired keys never pile
up, at a bounded cost per hit."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A parsed limit: `amount` hits per `window` seconds."""

    amount: int
    window: int
    text: str


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """Where one key stands against one limit after a hit."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int
    """Seconds until the window has room again."""

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """headers() as ASGI response headers (lower-case names)."""
        headers = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_after),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % max(1, self.reset_after)))
        return headers

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_after))
        return headers


class RateLimitReport:
    """The limit the current request came closest to exhausting, for its response headers."""

    __slots__ = ("tightest",)

    def __init__(self) -> None:
        self.tightest: RateLimitStatus | None = None

    def record(self, status: RateLimitStatus) -> None:
        if self.tightest is None or status.remaining < self.tightest.remaining:
            self.tightest = status


_current_report: ContextVar[RateLimitReport | None] = ContextVar("pentad_ratelimit_report", default=None)


def reset_report(token: Token[RateLimitReport | None]) -> None:
    """End a request's report (RateLimitMiddleware.start returned `token`)."""
    _current_report.reset(token)


@lru_cache(maxsize=256)
def parse_limit(limit: str) -> Limit:
    """`"10/minute"`, `"10/15minutes"` or `"10 per hour"` as a Limit."""
    item = parse(limit)
    return Limit(amount=item.amount, window=item.get_expiry(), text=limit)


def _status(limit: Limit, *, allowed: bool, weighted: float, previous: float, left: float) -> RateLimitStatus:
    """The status after a hit: `weighted` is the sliding count, `previous` the previous window's hits and
    `left` the seconds until the current window ends (the previous window's weight is left / window)."""
    reset_in = left
    if previous:
        # The sliding count drops by one each time another 1/previous of the window has passed.
        step = limit.window / previous
        reset_in = min(reset_in, left % step or step)
    return RateLimitStatus(
        allowed=allowed,
        limit=limit.amount,
        remaining=max(0, limit.amount - math.floor(weighted)),
        reset_after=max(0, math.ceil(reset_in)),
    )


class MemoryCounters:
    """Sliding-window counters in this process: per (limit, key) [window number, hits in it, hits in the one
    before, window length], in an OrderedDict whose order is only used by the sweep."""

    def __init__(self) -> None:
        self._counters: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
        self._hits = 0

    def __len__(self) -> int:
        return len(self._counters)

    def hit(self, limit: Limit, key: tuple[str, ...], now: float) -> RateLimitStatus:
        window = limit.window
        number = int(now // window)
        counter = self._counters.get(key)
        if counter is None or counter[0] < number - 1:
            counter = [number, 0, 0, window]
            self._counters[key] = counter
        elif counter[0] == number - 1:
            counter[0], counter[1], counter[2] = number, 0, counter[1]
        left = (number + 1) * window - now
        previous = counter[2]
        weighted = previous * left / window + counter[1]
        allowed = math.floor(weighted) + 1 <= limit.amount
        if allowed:
            counter[1] += 1
            weighted += 1
        self._hits += 1
        if self._hits % SWEEP_EVERY == 0:
            self.sweep(now)
        return _status(limit, allowed=allowed, weighted=weighted, previous=previous, left=left)

    def sweep(self, now: float, batch: int = SWEEP_BATCH) -> None:
        """Look at up to `batch` keys, least recently swept first: drop those whose two windows are over."""
        counters = self._counters
        for _ in range(min(batch, len(counters))):
            key, counter = counters.popitem(last=False)
            if (counter[0] + 2) * counter[3] > now:
                counters[key] = counter


# One round trip per hit: the same arithmetic as MemoryCounters.hit, on Redis' clock, so every process
# agrees on the windows. The key is a hash {w: window number, c: hits in it, p: hits in the one before}
# that expires when the window after the current one ends. Returns {allowed, remaining, reset ms}.
HIT_SCRIPT = """
local amount = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local number = math.floor(now / window)
local stored = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local current, previous = 0, 0
local at = tonumber(stored[1])
if at == number then
  current, previous = tonumber(stored[2]), tonumber(stored[3])
elseif at == number - 1 then
  previous = tonumber(stored[2])
end
local left = (number + 1) * window - now
local weighted = previous * left / window + current
local allowed = 0
if math.floor(weighted) + 1 <= amount then
  allowed = 1
  current = current + 1
  weighted = weighted + 1
  redis.call('HSET', KEYS[1], 'w', number, 'c', current, 'p', previous)
  redis.call('PEXPIRE', KEYS[1], left + window)
end
local reset = left
if previous > 0 then
  local step = window / previous
  local drop = left % step
  if drop == 0 then drop = step end
  reset = math.min(reset, drop)
end
return {allowed, math.max(0, amount - math.floor(weighted)), math.ceil(reset)}
"""


class RedisCounters:
    """Sliding-window counters in Redis, shared by every process that uses the same Redis."""

    def __init__(self, url: str) -> None:
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=STORAGE_TIMEOUT_SECONDS, socket_timeout=STORAGE_TIMEOUT_SECONDS
        )
        self._script = self._redis.register_script(HIT_SCRIPT)

    async def hit(self, limit: Limit, key: tuple[str, ...]) -> RateLimitStatus:
        redis_key = f"{KEY_PREFIX}:{limit.amount}/{limit.window}:{'/'.join(key)}"
        allowed, remaining, reset_ms = await self._script(keys=[redis_key], args=[limit.amount, limit.window])
        return RateLimitStatus(
            allowed=bool(allowed),
            limit=limit.amount,
            remaining=int(remaining),
            reset_after=math.ceil(int(reset_ms) / 1000),
        )

    async def close(self) -> None:
        # types-redis predates aclose() (redis-py 5); close() is deprecated.
        await self._redis.aclose()  # type: ignore[attr-defined]


def _redis_url(storage_url: str) -> str | None:
    """The Redis URL of the storage setting, or None for memory storage."""
    scheme = storage_url.partition("://")[0]
    if storage_url == "memory://":
        return None
    if scheme in ("redis", "rediss"):
        return storage_url
    raise SettingsError(
        "invalid setting PENTAD_RATELIMIT__STORAGE_URL: use memory:// or a redis:// or rediss:// URL"
    )


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        redis_url = _redis_url(settings.storage_url)
        self._memory = MemoryCounters() if redis_url is None else None
        self._redis = RedisCounters(redis_url) if redis_url is not None else None
        self._retry_storage_at = 0.0
        self._last_warning_at: float | None = None

    async def enforce(self, limit: str, *key: str) -> None:
        """Count one hit of `key` against `limit` ("10/minute"); raise TooManyRequests when over.

        During a request behind RateLimitMiddleware the outcome also feeds the response's RateLimit-*
        headers.
        """
        if not self.settings.enabled:
            return
        parsed = parse_limit(limit)
        if self._memory is not None:
            status: RateLimitStatus | None = self._memory.hit(parsed, (limit, *key), time.time())
        else:
            status = await self._redis_hit(parsed, key)
        if status is None:
            return
        report = _current_report.get()
        if report is not None:
            report.record(status)
        if not status.allowed:
            raise TooManyRequests(
                f"Too many requests; try again in {max(1, status.reset_after)} seconds.",
                headers=status.headers(),
            )

    async def _redis_hit(self, limit: Limit, key: tuple[str, ...]) -> RateLimitStatus | None:
        """Count one hit; None when Redis is unavailable and the hit could not be counted."""
        assert self._redis is not None
        if monotonic() < self._retry_storage_at:
            return None
        try:
            return await self._redis.hit(limit, key)
        except (RedisError, OSError) as exc:
            self._storage_failed(exc)
            return None

    def _storage_failed(self, exc: Exception) -> None:
        now = monotonic()
        self._retry_storage_at = now + STORAGE_RETRY_SECONDS
        if self._last_warning_at is None or now - self._last_warning_at >= WARNING_INTERVAL_SECONDS:
            self._last_warning_at = now
            logger.warning("ratelimit_storage_unavailable", error=str(exc), allowing_requests=True)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()


def address_subject(address: str) -> str:
    """What a per-address limit counts: the address, or for IPv6 its /64, since one host is usually given
    a whole /64 and could otherwise hop to a fresh address for every request."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    except ValueError:
        return address


class RateLimitMiddleware:
    """Spends each HTTP request's (and WebSocket handshake's) route limit per client address, and reports
    the tightest limit (a refused handshake is answered 429, where the server can answer it with HTTP).

    The limit is the route's declared rate-limit class (core/policy.py; UNLIMITED for health checks and
    static files), or `PENTAD_RATELIMIT__PER_ADDRESS` for routes that declare none and requests no route
    takes. It is spent when the router has picked the route, through the gate this middleware registers in
    `scope["state"]`, so no path is matched twice.
    """

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, policies: RoutePolicies) -> None:
        self.app = app
        self.limiter = limiter
        self.policies = policies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.register(scope)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        report = RateLimitReport()
        token = self.start(scope, report)
        try:

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start" and report.tightest is not None:
                    existing = list(message.get("headers", ()))
                    self.add(report, existing, {name.lower() for name, _ in existing})
                    message["headers"] = existing
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            _current_report.reset(token)

    def start(self, scope: Scope, report: RateLimitReport) -> Token[RateLimitReport | None]:
        """Register the gate in an HTTP scope and make `report` the request's; reset the returned token
        when the request is done (core/web/middleware.py's EdgeMiddleware calls this instead of running
        the middleware as a layer of its own)."""
        self.register(scope)
        return _current_report.set(report)

    def register(self, scope: Scope) -> None:
        """Register the gate that spends the route's limit once the router has picked it."""
        scope.setdefault("state", {})[RATE_GATE_STATE_KEY] = self._admit

    @staticmethod
    def add(report: RateLimitReport, headers: list[tuple[bytes, bytes]], present: set[bytes]) -> None:
        """Append the tightest limit's RateLimit-* headers to a response's, unless the response set them;
        `present` (the response's lower-case header names) gets them too."""
        if report.tightest is None:
            return
        for header in report.tightest.raw_headers():
            if header[0] not in present:
                headers.append(header)
                present.add(header[0])

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        policy = self.policies.for_scope(scope)
        if policy.rate_limit is None:
            return True
        try:
            await self.limiter.enforce(
                policy.rate_limit, policy.rate_key, address_subject(scope_client_address(scope))
            )
        except TooManyRequests as exc:
            if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
                # A server that cannot answer the handshake with HTTP refuses it (1013: try again later).
                await send({"type": "websocket.close", "code": 1013, "reason": exc.message[:120]})
                return False
            response = problem_response(
                exc.status,
                exc.code,
                exc.message,
                request_id=scope.get("state", {}).get("request_id"),
                headers=exc.headers,
            )
            await response(scope, receive, send)
            return False
        return True
