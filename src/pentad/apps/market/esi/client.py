"""An async ESI client that is a good citizen (developers.eveonline.com, "Best Practices").

- Identifies itself: `User-Agent: Pentad-market/<version> (<contact>)` and `X-Compatibility-Date` (the
  API version we were written against; ESI answers in that shape).
- Never asks again before `Expires`: given what it remembered of a URL (`CacheState`), it answers "not
  modified" without sending anything until the cached copy expires, then asks with `If-None-Match` so an
  unchanged resource costs a 304 (1 token) instead of a 200 (2 tokens) and no body.
- Spends within budget: every request is admitted by the `Governor` (route-group windows, error limit,
  lanes) and its answer recorded there.
- Retries what is worth retrying (5xx, timeouts, connection errors, a 200 whose body does not parse) with
  exponential backoff and jitter, at most `max_retries` times; waits in place for a short 429/420 block
  (up to `max_wait`), and hands a longer one to the caller as an `EsiError` with `retry_after`.

Why plain httpx and not the core's GuardedClient: ESI's base URL is set by the admin, never by a user, so
there is no server-side request forgery to guard against, and a paginated book needs one pooled
keep-alive client shared by its concurrent page requests (GuardedClient opens a client per request). The
client still ignores proxy variables of the environment and follows no redirects.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
import orjson
import structlog

from pentad import __version__
from pentad.apps.market.esi.errors import (
    EsiError,
    EsiErrorLimited,
    EsiMalformed,
    EsiRateLimited,
    EsiRequestFailed,
    EsiUnavailable,
)
from pentad.apps.market.esi.governor import INGEST, Governor, Lane
from pentad.core.services import backoff_delay

logger = structlog.get_logger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Parse = Callable[[bytes], T]


@dataclass(frozen=True)
class EsiConfig:
    """How the client talks to ESI (from MarketSettings in the app; plain values here so the client stands
    on its own in tests and the bench)."""

    base_url: str
    contact: str
    compatibility_date: date
    timeout: float = 20.0
    max_retries: int = 4
    page_concurrency: int = 16
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_wait: float = 10.0
    """Longest wait for a 429/420 block or a budget reserve inside one call; longer: raise to the caller."""
    expiry_margin: float = 5.0
    """A paginated fetch that starts this close to `Expires` waits for the next generation instead."""
    inconsistent_restarts: int = 3

    @property
    def user_agent(self) -> str:
        return f"Pentad-market/{__version__} ({self.contact})"


@dataclass(frozen=True)
class CacheState:
    """What we remember of one URL from its last answer."""

    etag: str | None = None
    expires_at: datetime | None = None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class EsiResponse(Generic[T]):
    """One answer. `not_modified`: the remembered copy is still good (a 304, or `fetched` False: not even
    asked, because it had not expired); then `data` is None. `data`: the parsed body of a 200."""

    path: str
    status: int
    data: T | None
    etag: str | None
    expires_at: datetime | None
    last_modified: datetime | None
    pages: int | None
    not_modified: bool
    fetched: bool = True
    headers: httpx.Headers = field(default_factory=httpx.Headers, repr=False)

    @property
    def cache_state(self) -> CacheState:
        return CacheState(self.etag, self.expires_at, self.last_modified)


def parse_json(body: bytes) -> Any:
    """The body as JSON; ValueError (orjson.JSONDecodeError) when it is not."""
    return orjson.loads(body)


def http_date(value: str | None) -> datetime | None:
    """An HTTP date header as a UTC datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EsiClient:
    """One pooled connection to ESI with its budgets. Open with `async with EsiClient(...)`, or call
    `aclose()`."""

    def __init__(
        self,
        config: EsiConfig,
        governor: Governor | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = _utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.governor = governor or Governor()
        self.sleep = sleep
        self.now = now
        self.rand = rand
        self.requests_sent = 0
        self.http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(
                max_connections=config.page_concurrency, max_keepalive_connections=config.page_concurrency
            ),
            headers={
                "User-Agent": config.user_agent,
                "X-Compatibility-Date": config.compatibility_date.isoformat(),
                "Accept": "application/json",
            },
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> EsiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        state: CacheState | None = None,
        lane: Lane = INGEST,
        token: str | None = None,
        parse: Parse[T] = parse_json,
        ignore_expires: bool = False,
    ) -> EsiResponse[T]:
        """GET `path` (e.g. `/markets/10000002/orders/`). With `state` (what the last answer said), nothing
        is sent before its `Expires` (unless `ignore_expires`, for the pages of a book whose first page
        was just fetched) and the request carries `If-None-Match`. `parse` turns a 200's body into data; a
        body it refuses (ValueError, TypeError, KeyError) is retried like a 5xx, then EsiMalformed. Raises
        an EsiError when no answer can be had now."""
        now = self.now()
        if (
            state is not None
            and not ignore_expires
            and state.expires_at is not None
            and state.expires_at > now
        ):
            return EsiResponse(
                path, 304, None, state.etag, state.expires_at, state.last_modified, None,
                not_modified=True, fetched=False,
            )  # fmt: skip
        headers: dict[str, str] = {}
        if state is not None and state.etag:
            headers["If-None-Match"] = state.etag
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        failures = 0
        waited = 0.0
        last_problem = "no answer"
        while True:
            try:
                admission = await self.governor.admit(path, lane)
            except (EsiRateLimited, EsiErrorLimited) as error:
                waited = await self._wait_or_raise(error, waited)
                continue
            try:
                self.requests_sent += 1
                response = await self.http.get(path, params=params, headers=headers)
            except httpx.TransportError as error:
                self.governor.release(admission)
                last_problem = type(error).__name__
                failures += 1
            else:
                wait = await self.governor.record(admission, path, response.status_code, response.headers)
                status = response.status_code
                if status == 304:
                    return self._answer(path, response, None, state)
                if 200 <= status < 300:
                    try:
                        data = parse(response.content)
                    except (ValueError, TypeError, KeyError) as error:
                        last_problem = f"malformed body ({type(error).__name__})"
                        failures += 1
                        if failures > self.config.max_retries:
                            raise EsiMalformed(
                                f"ESI {path} answered a malformed body {failures} times",
                                retry_after=self._backoff(failures),
                            ) from None
                        await self.sleep(self._backoff(failures))
                        continue
                    return self._answer(path, response, data, state)
                if status in (420, 429):
                    error_type = EsiErrorLimited if status == 420 else EsiRateLimited
                    limited = error_type(f"ESI {path} answered {status}", retry_after=wait or 60.0)
                    waited = await self._wait_or_raise(limited, waited)
                    continue
                if status >= 500:
                    last_problem = f"HTTP {status}"
                    failures += 1
                else:
                    raise EsiRequestFailed(f"ESI {path} answered {status}", status=status)
            if failures > self.config.max_retries:
                raise EsiUnavailable(
                    f"ESI {path}: {last_problem} after {failures} attempts",
                    retry_after=self._backoff(failures),
                )
            logger.info("esi_retry", path=path, problem=last_problem, attempt=failures)
            await self.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures, self.config.backoff_base, self.config.backoff_max, self.rand)

    async def _wait_or_raise(self, error: EsiError, waited: float) -> float:
        delay = error.retry_after or 1.0
        if waited + delay > self.config.max_wait:
            raise error
        await self.sleep(delay)
        return waited + delay

    def _answer(
        self, path: str, response: httpx.Response, data: T | None, state: CacheState | None
    ) -> EsiResponse[T]:
        headers = response.headers
        not_modified = response.status_code == 304
        etag = headers.get("etag") or (state.etag if state is not None and not_modified else None)
        last_modified = http_date(headers.get("last-modified"))
        if last_modified is None and not_modified and state is not None:
            last_modified = state.last_modified
        pages_header = headers.get("x-pages")
        pages = int(pages_header) if pages_header and pages_header.isdigit() else None
        return EsiResponse(
            path=path,
            status=response.status_code,
            data=data,
            etag=etag,
            expires_at=self._expires(headers),
            last_modified=last_modified,
            pages=pages,
            not_modified=not_modified,
            headers=headers,
        )

    def _expires(self, headers: httpx.Headers) -> datetime | None:
        """When the answer expires. `Expires` relative to the answer's own `Date`, moved onto our clock, so
        a skewed local clock neither refetches early nor waits too long."""
        expires = http_date(headers.get("expires"))
        if expires is None:
            return None
        served = http_date(headers.get("date"))
        if served is None:
            return expires
        return self.now() + max(expires - served, timedelta())
