"""HTTP plumbing of the streams SDK: bearer tokens (fixed or a provider's), problem+json errors, retries."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

TokenProvider = Callable[[], Awaitable[str] | str]
"""Returns a current token (sync or async); called again when the server refuses the one it gave."""

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class StreamsError(Exception):
    """Base class of the SDK's errors."""


class StreamsAPIError(StreamsError):
    """The server refused a request: its problem+json `status`, `code` and `detail`."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """A server-side or rate-limit failure: the same request may succeed later."""
        return self.status in RETRYABLE_STATUS


class StreamsClosedError(StreamsError):
    """The client (or an event stream) was closed before the operation completed."""


class StreamsRealtimeError(StreamsError):
    """The realtime hub refused an operation: `code` is the /ws protocol's error code (e.g. `forbidden`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with full jitter: a random delay below a ceiling that doubles per attempt."""
    return random.uniform(0, min(maximum, initial * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def api_error(response: httpx.Response) -> StreamsAPIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    return StreamsAPIError(
        response.status_code,
        str(body.get("code") or "http_error"),
        str(body.get("detail") or response.reason_phrase),
        request_id=body.get("request_id"),
        retry_after=_retry_after(response),
    )


def ws_url(base_url: str) -> str:
    """The hub's /ws URL of a server root (http → ws, https → wss)."""
    scheme, _, rest = base_url.rstrip("/").partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest}/ws"


class HttpApi:
    """Requests with a bearer token; idempotent ones are retried on transient failures."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        token_provider: TokenProvider | None,
        *,
        timeout: float,
        retries: int,
        backoff_initial: float,
        backoff_max: float,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        if (token is None) == (token_provider is None):
            raise ValueError("Give exactly one of token and token_provider.")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.token_provider = token_provider
        self.retries = retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._given_client = http_client
        self._own_client: httpx.AsyncClient | None = None
        self._refreshing: asyncio.Future[str] | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The given client, or one of our own (made again after aclose())."""
        if self._given_client is not None:
            return self._given_client
        if self._own_client is None:
            self._own_client = httpx.AsyncClient(timeout=self.timeout)
        return self._own_client

    async def aclose(self) -> None:
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None

    async def current_token(self) -> str:
        if self.token is None:
            return await self.fresh_token()
        return self.token

    async def fresh_token(self) -> str:
        """A new token from the provider (one call at a time, shared by concurrent callers)."""
        if self.token_provider is None:
            assert self.token is not None
            return self.token
        refreshing = self._refreshing
        if refreshing is None:
            refreshing = self._refreshing = asyncio.ensure_future(self._call_provider(self.token_provider))
        try:
            self.token = await asyncio.shield(refreshing)
        finally:
            if refreshing.done() and self._refreshing is refreshing:
                self._refreshing = None
        return self.token

    @staticmethod
    async def _call_provider(provider: TokenProvider) -> str:
        token = provider()
        return await token if inspect.isawaitable(token) else token

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        authorize: bool = True,
    ) -> httpx.Response:
        """One request (and one more with a fresh token if a provider can replace a refused one)."""
        if not authorize:
            return await self.http.request(method, self.base_url + path, json=json, params=params)
        token = await self.current_token()
        response = await self._send_once(method, path, token, json, params)
        if response.status_code == 401 and self.token_provider is not None:
            response = await self._send_once(method, path, await self.fresh_token(), json, params)
        return response

    async def _send_once(
        self, method: str, path: str, token: str, json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        return await self.http.request(
            method,
            self.base_url + path,
            json=json,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
        authorize: bool = True,
    ) -> httpx.Response:
        """A successful response; StreamsAPIError when refused.

        `retry`: the request is safe to repeat, so network errors, 5xx and 429 are retried with backoff."""
        attempt = 0
        while True:
            delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
            try:
                response = await self.send(method, path, json=json, params=params, authorize=authorize)
            except httpx.TransportError:
                if not retry or attempt >= self.retries:
                    raise
            else:
                if response.is_success:
                    return response
                error = api_error(response)
                if not (retry and error.retryable) or attempt >= self.retries:
                    raise error
                delay = max(delay, error.retry_after or 0.0)
            await asyncio.sleep(delay)
            attempt += 1

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
    ) -> Any:
        """The decoded JSON answer (None for 204); StreamsAPIError when refused."""
        response = await self.call(method, path, json=json, params=params, retry=retry)
        return response.json() if response.content else None
