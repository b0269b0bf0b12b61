"""The ESI governor on its own: token costs, limits read from headers, reservations of requests in flight,
tokens coming back after the window, and blocks shared between processes through the platform cache."""

from __future__ import annotations

import pytest

from pentad.apps.market.esi.errors import EsiErrorLimited, EsiRateLimited
from pentad.apps.market.esi.governor import INGEST, Governor, parse_limit, route_key, token_cost
from pentad.core.cache import MemoryCache

PATH = "/markets/10000002/orders/"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _headers(remaining: int, used: int = 2, limit: str = "100/15m") -> dict[str, str]:
    return {
        "x-ratelimit-group": "market",
        "x-ratelimit-limit": limit,
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-used": str(used),
    }


def test_token_costs_follow_esi() -> None:
    assert [token_cost(s) for s in (200, 304, 404, 420, 429, 500, 503)] == [2, 1, 5, 5, 0, 0, 0]


def test_limits_and_routes_read_as_esi_writes_them() -> None:
    assert parse_limit("150/15m") == (150, 900.0)
    assert parse_limit("3600/1h") == (3600, 3600.0)
    assert parse_limit("nonsense") is None
    assert parse_limit("0/15m") is None
    assert route_key("/markets/10000002/orders/") == "/markets/{id}/orders/"
    assert route_key("/characters/2112625428/wallet/journal/") == "/characters/{id}/wallet/journal/"


async def test_requests_in_flight_reserve_their_tokens() -> None:
    clock = Clock()
    governor = Governor(ingest_floor=0.05, clock=clock)
    first = await governor.admit(PATH, INGEST)
    await governor.record(first, PATH, 200, _headers(remaining=15))
    admitted = [await governor.admit(PATH, INGEST) for _ in range(5)]
    with pytest.raises(EsiRateLimited) as raised:
        await governor.admit(PATH, INGEST)
    # 15 left, 5 kept (5 % of 100): five concurrent requests of 2 tokens fit, the sixth waits.
    assert len(admitted) == 5
    assert raised.value.retry_after == pytest.approx(900.0)
    for admission in admitted:
        governor.release(admission)
    assert len([await governor.admit(PATH, INGEST) for _ in range(5)]) == 5


async def test_our_spends_come_back_after_the_window() -> None:
    clock = Clock()
    governor = Governor(clock=clock)
    admission = await governor.admit(PATH, INGEST)
    await governor.record(admission, PATH, 200, _headers(remaining=6))
    with pytest.raises(EsiRateLimited) as raised:
        await governor.admit(PATH, INGEST)
    assert raised.value.retry_after == pytest.approx(900.0)
    clock.now += 900
    assert (await governor.admit(PATH, INGEST)).reserved == 2


async def test_blocks_reach_every_process_through_the_cache() -> None:
    cache = MemoryCache(default_ttl=60, max_entries=100)
    clock = Clock()
    here, there = Governor(shared=cache, clock=clock), Governor(shared=cache, clock=clock)
    admission = await here.admit(PATH, INGEST)
    wait = await here.record(
        admission, PATH, 420, {"x-esi-error-limit-remain": "0", "x-esi-error-limit-reset": "37"}
    )
    assert wait == 37
    with pytest.raises(EsiErrorLimited) as raised:
        await there.admit("/status/", INGEST)
    assert raised.value.retry_after == pytest.approx(37)
    clock.now += 38
    assert (await there.admit("/status/", INGEST)).reserved == 0


async def test_a_429_without_group_headers_blocks_everything_for_retry_after() -> None:
    clock = Clock()
    governor = Governor(clock=clock)
    admission = await governor.admit(PATH, INGEST)
    assert await governor.record(admission, PATH, 429, {"retry-after": "12"}) == 12
    with pytest.raises(EsiRateLimited):
        await governor.admit("/status/", INGEST)
    clock.now += 12
    await governor.admit("/status/", INGEST)
