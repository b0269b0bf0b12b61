"""Rate limits as clients meet them: RateLimit headers, 429 with Retry-After, shared counts in Redis, and
requests still served when Redis is gone.

Limits here are per day: the sliding window forgives part of the previous window right after a window
boundary, and a boundary a day apart cannot fall inside one test.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI, Request

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.config import RateLimitSettings, SettingsError
from pentad.core.db.engine import Database
from pentad.core.errors import TooManyRequests
from pentad.core.platform import get_platform
from pentad.core.ratelimit import MemoryCounters, RateLimiter, RateLimitStatus, parse_limit
from tests.conftest import make_settings
from tests.core.conftest import RedisScratch

probe = APIRouter(prefix="/probe")


@probe.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


@probe.get("/scarce")
async def scarce(request: Request) -> dict[str, str]:
    """Spends a tighter limit than the per-address one, as login or the per-principal limit does."""
    await get_platform(request).limiter.enforce("2/day", "scarce", str(request.state.client_address))
    return {"spent": "yes"}


PROBE = AppSpec(name="probe", title="Probe", routers=[probe])


def _app(tmp_path: Path, database_url: str, database: Database, **ratelimit: object) -> FastAPI:
    settings = make_settings(tmp_path, database_url, ratelimit={"per_address": "3/day", **ratelimit})
    return create_app(settings, database=database, apps=[PROBE])


def _client(app: FastAPI, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 50000)), base_url="http://t"
    )


@pytest.fixture
async def limited(tmp_path: Path, database_url: str, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(tmp_path, database_url, database)) as client:
        yield client


def _unused_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port: int = probe_socket.getsockname()[1]
        return port


def _unique_key() -> str:
    return f"test-{uuid.uuid4().hex}"


# ------------------------------------------------------------------ per-address limit over HTTP


async def test_responses_count_down_the_per_address_limit(limited: httpx.AsyncClient) -> None:
    remaining = []
    for _ in range(3):
        response = await limited.get("/probe/ping")
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        assert int(response.headers["ratelimit-reset"]) >= 0
        remaining.append(response.headers["ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]


async def test_over_the_limit_the_client_gets_429_with_retry_after(limited: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await limited.get("/probe/ping")).status_code == 200
    response = await limited.get("/probe/ping")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-limit"] == "3"
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) >= 1
    assert response.headers["x-frame-options"] == "DENY"


async def test_each_address_has_its_own_count(tmp_path: Path, database_url: str, database: Database) -> None:
    app = _app(tmp_path, database_url, database, per_address="1/day")
    async with _client(app, peer="127.0.0.2") as first, _client(app, peer="127.0.0.3") as second:
        assert (await first.get("/probe/ping")).status_code == 200
        assert (await first.get("/probe/ping")).status_code == 429
        assert (await second.get("/probe/ping")).status_code == 200


async def test_an_ipv6_client_is_counted_per_64(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = _app(tmp_path, database_url, database, per_address="1/day")
    async with (
        _client(app, peer="2001:db8:1:2::1") as first,
        _client(app, peer="2001:db8:1:2:ffff::9") as same_network,
        _client(app, peer="2001:db8:1:3::1") as next_network,
    ):
        assert (await first.get("/probe/ping")).status_code == 200
        assert (await same_network.get("/probe/ping")).status_code == 429
        assert (await next_network.get("/probe/ping")).status_code == 200


async def test_health_checks_are_never_limited(tmp_path: Path, database_url: str, database: Database) -> None:
    async with _client(_app(tmp_path, database_url, database, per_address="1/day")) as client:
        for path in ("/healthz", "/healthz", "/readyz", "/readyz"):
            response = await client.get(path)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers


async def test_the_headers_describe_the_limit_closest_to_running_out(limited: httpx.AsyncClient) -> None:
    first = await limited.get("/probe/scarce")
    assert first.status_code == 200
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert (await limited.get("/probe/scarce")).status_code == 200
    refused = await limited.get("/probe/scarce")
    assert refused.status_code == 429
    assert refused.headers["ratelimit-limit"] == "2"
    assert int(refused.headers["retry-after"]) >= 1


async def test_disabled_limits_let_everything_through(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    async with _client(_app(tmp_path, database_url, database, enabled=False, per_address="1/day")) as client:
        for _ in range(3):
            response = await client.get("/probe/scarce")
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers


# ------------------------------------------------------------------ the limiter itself


async def test_memory_limiter_refuses_the_hit_after_the_limit() -> None:
    limiter = RateLimiter(RateLimitSettings())
    key = _unique_key()
    await limiter.enforce("2/day", "login-account", key)
    await limiter.enforce("2/day", "login-account", key)
    with pytest.raises(TooManyRequests) as refused:
        await limiter.enforce("2/day", "login-account", key)
    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert refused.value.headers["RateLimit-Remaining"] == "0"
    await limiter.enforce("2/day", "login-account", _unique_key())
    await limiter.close()


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "redis+unix:///tmp/redis.sock", "nonsense"])
def test_an_unsupported_storage_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="PENTAD_RATELIMIT__STORAGE_URL"):
        RateLimiter(RateLimitSettings(storage_url=url))


async def test_redis_limiter_refuses_the_hit_after_the_limit(test_redis: RedisScratch) -> None:
    limiter = RateLimiter(RateLimitSettings(storage_url=test_redis.url))
    key = test_redis.key()
    try:
        for _ in range(3):
            await limiter.enforce("3/day", "principal", key)
        with pytest.raises(TooManyRequests) as refused:
            await limiter.enforce("3/day", "principal", key)
        assert refused.value.headers["RateLimit-Limit"] == "3"
        assert int(refused.value.headers["Retry-After"]) >= 1
    finally:
        await limiter.close()


async def test_workers_sharing_redis_share_the_count(test_redis: RedisScratch) -> None:
    first = RateLimiter(RateLimitSettings(storage_url=test_redis.url))
    second = RateLimiter(RateLimitSettings(storage_url=test_redis.url))
    key = test_redis.key()
    try:
        await first.enforce("2/day", "login-address", key)
        await second.enforce("2/day", "login-address", key)
        with pytest.raises(TooManyRequests):
            await first.enforce("2/day", "login-address", key)
    finally:
        await first.close()
        await second.close()


async def test_per_address_limit_over_http_on_redis(
    tmp_path: Path, database_url: str, database: Database, test_redis: RedisScratch
) -> None:
    app = _app(tmp_path, database_url, database, storage_url=test_redis.url, per_address="2/day")
    try:
        async with _client(app, peer=test_redis.address()) as client:
            assert (await client.get("/probe/ping")).headers["ratelimit-remaining"] == "1"
            assert (await client.get("/probe/ping")).status_code == 200
            assert (await client.get("/probe/ping")).status_code == 429
    finally:
        await app.state.platform.limiter.close()


async def test_unreachable_redis_lets_requests_through_and_warns(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = _app(tmp_path, database_url, database, storage_url=f"redis://127.0.0.1:{_unused_port()}/0")
    with structlog.testing.capture_logs() as logs:
        async with _client(app) as client:
            for _ in range(5):
                response = await client.get("/probe/scarce")
                assert response.status_code == 200
                assert "ratelimit-limit" not in response.headers
    warnings = [entry for entry in logs if entry["event"] == "ratelimit_storage_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"


async def test_an_unreachable_redis_is_reported_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("pentad.core.ratelimit.monotonic", lambda: clock[0])
    limiter = RateLimiter(RateLimitSettings(storage_url=f"redis://127.0.0.1:{_unused_port()}/0"))
    with structlog.testing.capture_logs() as logs:
        for now in (1000.0, 1002.0, 1030.0, 1061.0):
            clock[0] = now
            await limiter.enforce("1/day", "principal", "someone")
            await limiter.enforce("1/day", "principal", "someone")
    await limiter.close()
    assert [entry["event"] for entry in logs] == ["ratelimit_storage_unavailable"] * 2


# ------------------------------------------------------------------ the memory counters, on a moved clock

MINUTE = 60.0
START = 1_000 * MINUTE  # the start of a window


def _hits(counters: MemoryCounters, limit: str, key: str, now: float, times: int) -> list[RateLimitStatus]:
    return [counters.hit(parse_limit(limit), (limit, key), now) for _ in range(times)]


def test_the_previous_window_counts_by_the_share_of_it_still_inside_the_sliding_window() -> None:
    counters = MemoryCounters()
    assert all(status.allowed for status in _hits(counters, "10/minute", "k", START + 30, 10))
    refused = counters.hit(parse_limit("10/minute"), ("10/minute", "k"), START + 59)
    assert not refused.allowed
    assert refused.reset_after == 1
    # Half-way through the next window, half of the previous window's ten hits still count.
    halfway = _hits(counters, "10/minute", "k", START + MINUTE + 30, 6)
    assert [status.allowed for status in halfway] == [True] * 5 + [False]
    assert halfway[4].remaining == 0
    assert 1 <= halfway[5].reset_after <= 6
    # Two windows later nothing of it is left.
    later = _hits(counters, "10/minute", "k", START + 3 * MINUTE, 10)
    assert all(status.allowed for status in later)
    assert later[-1].remaining == 0


def test_keys_and_limits_count_apart() -> None:
    counters = MemoryCounters()
    assert all(status.allowed for status in _hits(counters, "2/minute", "a", START, 2))
    assert not counters.hit(parse_limit("2/minute"), ("2/minute", "a"), START).allowed
    assert counters.hit(parse_limit("2/minute"), ("2/minute", "b"), START).allowed
    assert counters.hit(parse_limit("3/minute"), ("3/minute", "a"), START).allowed


def test_expired_keys_are_swept_while_other_keys_are_hit() -> None:
    counters = MemoryCounters()
    for index in range(10_000):
        counters.hit(parse_limit("5/minute"), ("5/minute", f"address-{index}"), START)
    assert len(counters) == 10_000
    # Two windows on, one busy key's hits sweep the idle keys away.
    for _ in range(10_000):
        counters.hit(parse_limit("100000/minute"), ("100000/minute", "busy"), START + 2 * MINUTE)
    assert len(counters) == 1
