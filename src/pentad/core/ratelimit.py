"""Rate limits: sliding-window counters from the `limits` library, in process memory or in Redis.

`RateLimiter.enforce(limit, *key)` counts one hit and raises TooManyRequests when the key is over its
limit. Memory storage counts per process, so with several workers each worker allows the full limit;
use Redis (`PENTAD_RATELIMIT__STORAGE_URL=redis://…`) to share the counts. When Redis cannot be reached the
limiter lets requests through and logs a warning at most once a minute: an outage of the limiter must not
become an outage of the platform.

RateLimitMiddleware applies each route's per-address limit (IPv6 per /64): the class its policy declares
(core/policy.py) or the default. It sends RateLimit-Limit, -Remaining and -Reset on every response of a
limited request, describing whichever limit the request came closest to exhausting: any `enforce` during
the request counts (the per-principal limit, the login limits), found through a context variable.
"""

from __future__ import annotations

import ipaddress
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from time import monotonic  # imported by name so tests can move this clock without moving asyncio's

import redis.asyncio
import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
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


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """Where one key stands against one limit after a hit."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int
    """Seconds until the window has room again."""

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


@lru_cache(maxsize=256)
def parse_limit(limit: str) -> RateLimitItem:
    """`"10/minute"`, `"10/15minutes"` or `"10 per hour"` as a RateLimitItem."""
    return parse(limit)


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
        self._pool: redis.asyncio.ConnectionPool[redis.asyncio.Connection] | None = None
        storage: Storage
        redis_url = _redis_url(settings.storage_url)
        if redis_url is None:
            storage = MemoryStorage()
        else:
            # The pool is ours so that close() can release its connections; limits has no close.
            self._pool = redis.asyncio.ConnectionPool.from_url(
                redis_url,
                socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
                socket_timeout=STORAGE_TIMEOUT_SECONDS,
            )
            storage = RedisStorage(
                "async+" + redis_url,
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed through to redis-py
            )
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._retry_storage_at = 0.0
        self._last_warning_at: float | None = None

    async def enforce(self, limit: str, *key: str) -> None:
        """Count one hit of `key` against `limit` ("10/minute"); raise TooManyRequests when over.

        During a request behind RateLimitMiddleware the outcome also feeds the response's RateLimit-*
        headers.
        """
        if not self.settings.enabled:
            return
        status = await self._hit(parse_limit(limit), key)
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

    async def _hit(self, item: RateLimitItem, key: tuple[str, ...]) -> RateLimitStatus | None:
        """Count one hit; None when the storage is unavailable and the hit could not be counted."""
        if monotonic() < self._retry_storage_at:
            return None
        try:
            allowed = await self._strategy.hit(item, *key)
            stats = await self._strategy.get_window_stats(item, *key)
        except (StorageError, OSError) as exc:
            self._storage_failed(exc)
            return None
        return RateLimitStatus(
            allowed=allowed,
            limit=item.amount,
            remaining=stats.remaining,
            reset_after=max(0, math.ceil(stats.reset_time - time.time())),
        )

    def _storage_failed(self, exc: Exception) -> None:
        now = monotonic()
        self._retry_storage_at = now + STORAGE_RETRY_SECONDS
        if self._last_warning_at is None or now - self._last_warning_at >= WARNING_INTERVAL_SECONDS:
            self._last_warning_at = now
            logger.warning("ratelimit_storage_unavailable", error=str(exc), allowing_requests=True)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()


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
    """Spends each HTTP request's route limit per client address, and reports the tightest limit.

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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        report = RateLimitReport()
        token = _current_report.set(report)
        scope.setdefault("state", {})[RATE_GATE_STATE_KEY] = self._admit
        try:

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start" and report.tightest is not None:
                    existing = list(message.get("headers", ()))
                    present = {name.lower() for name, _ in existing}
                    for name, value in report.tightest.headers().items():
                        raw_name = name.lower().encode()
                        if raw_name not in present:
                            existing.append((raw_name, value.encode()))
                    message["headers"] = existing
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            _current_report.reset(token)

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        policy = self.policies.for_scope(scope)
        if policy.rate_limit is None:
            return True
        try:
            await self.limiter.enforce(
                policy.rate_limit, policy.rate_key, address_subject(scope_client_address(scope))
            )
        except TooManyRequests as exc:
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
