"""The ESI client against the fake ESI: identification, Expires and ETags, retries, the rate limit, the
error limit and the lanes."""

from __future__ import annotations

from collections import deque

import pytest

from pentad.apps.market.esi.client import CacheState
from pentad.apps.market.esi.errors import (
    EsiBudgetExhausted,
    EsiErrorLimited,
    EsiMalformed,
    EsiRateLimited,
    EsiRequestFailed,
    EsiUnavailable,
)
from pentad.apps.market.esi.governor import INGEST, Governor, Lane
from tests.apps.market.esi_support import CONTACT, FakeEsiServer
from tests.fakes.market.esi import ORDERS_GROUP, make_orders

REGION = 10000002
ORDERS = f"/markets/{REGION}/orders/"
PAGE_1 = {"order_type": "all", "page": 1}


def _book(esi: FakeEsiServer, count: int = 10) -> None:
    esi.fake.set_book(REGION, make_orders(REGION, count=count), page_size=count)


async def test_identifies_itself_with_contact_and_compatibility_date(esi: FakeEsiServer) -> None:
    _book(esi)
    async with esi.client() as client:
        answer = await client.get(ORDERS, params=PAGE_1)
    assert answer.status == 200
    assert len(answer.data) == 10
    seen = esi.fake.requests[-1]
    assert seen.user_agent is not None
    assert seen.user_agent.startswith("Pentad-market/")
    assert f"({CONTACT})" in seen.user_agent
    assert seen.compatibility_date == "2025-12-16"


async def test_nothing_is_asked_before_expires_then_an_unchanged_book_is_a_304(esi: FakeEsiServer) -> None:
    _book(esi)
    async with esi.client() as client:
        first = await client.get(ORDERS, params=PAGE_1)
        assert first.etag
        assert first.expires_at
        assert first.last_modified
        again = await client.get(ORDERS, params=PAGE_1, state=first.cache_state)
        assert again.not_modified
        assert not again.fetched
        assert again.data is None
        assert len(esi.fake.requests) == 1, "asked again before Expires"

        esi.fake.advance(301)
        after = await client.get(ORDERS, params=PAGE_1, state=first.cache_state)
    assert after.not_modified
    assert after.fetched
    assert after.status == 304
    assert esi.fake.requests[-1].if_none_match == first.etag
    assert after.etag == first.etag
    assert after.last_modified == first.last_modified
    assert after.expires_at is not None
    assert after.expires_at > first.expires_at
    assert len(esi.fake.requests) == 2


async def test_a_changed_resource_answers_200_with_the_new_etag(esi: FakeEsiServer) -> None:
    _book(esi)
    async with esi.client() as client:
        first = await client.get(ORDERS, params=PAGE_1)
        esi.fake.regenerate(REGION)
        changed = await client.get(ORDERS, params=PAGE_1, state=CacheState(first.etag))
    assert changed.status == 200
    assert not changed.not_modified
    assert changed.etag != first.etag
    assert changed.data is not None


async def test_a_304_costs_one_token_a_200_two(esi: FakeEsiServer) -> None:
    _book(esi)
    governor = Governor(clock=lambda: esi.fake.now().timestamp())
    async with esi.client(governor) as client:
        first = await client.get(ORDERS, params=PAGE_1)
        await client.get(ORDERS, params=PAGE_1, state=CacheState(first.etag))
    spends = [spend.tokens for spend in governor.groups[ORDERS_GROUP].spends]
    assert spends == [2, 1]
    assert governor.groups[ORDERS_GROUP].remaining == esi.fake.rate_limit - 3


async def test_5xx_is_retried_with_growing_backoff(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.inject("status", status=502, times=2)
    async with esi.client() as client:
        answer = await client.get(ORDERS, params=PAGE_1)
    assert answer.status == 200
    assert [seen.status for seen in esi.fake.requests] == [502, 502, 200]
    assert esi.sleeps == [0.5, 1.0]


async def test_5xx_on_every_attempt_is_unavailable_with_a_retry_time(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.inject("status", status=503, times=10)
    async with esi.client(max_retries=2) as client:
        with pytest.raises(EsiUnavailable) as raised:
            await client.get(ORDERS, params=PAGE_1)
    assert len(esi.fake.requests) == 3
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 0


async def test_a_malformed_body_is_retried_then_refused(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.inject("malformed", times=1)
    async with esi.client() as client:
        answer = await client.get(ORDERS, params=PAGE_1)
        assert answer.data is not None
        assert len(answer.data) == 10
        esi.fake.inject("malformed", times=10)
        with pytest.raises(EsiMalformed):
            await client.get(ORDERS, params=PAGE_1)
    assert [seen.status for seen in esi.fake.requests] == [200] * 6


async def test_a_client_error_is_not_retried(esi: FakeEsiServer) -> None:
    async with esi.client() as client:
        with pytest.raises(EsiRequestFailed) as raised:
            await client.get("/markets/99/orders/", params=PAGE_1)
    assert raised.value.status == 404
    assert raised.value.retry_after is None
    assert len(esi.fake.requests) == 1


async def test_429_blocks_the_group_until_retry_after(esi: FakeEsiServer) -> None:
    _book(esi)
    # Someone else on our bucket spent it a minute ago: it comes back in 14 minutes.
    spent_at = esi.fake.now().timestamp() - 60
    esi.fake.spends[ORDERS_GROUP] = deque([(spent_at, esi.fake.rate_limit)])
    async with esi.client() as client:
        with pytest.raises(EsiRateLimited) as raised:
            await client.get(ORDERS, params=PAGE_1)
        assert raised.value.retry_after is not None
        assert 830 < raised.value.retry_after <= 841
        with pytest.raises(EsiRateLimited):
            await client.get(ORDERS, params=PAGE_1)
    assert [seen.status for seen in esi.fake.requests] == [429], "asked again while blocked"


async def test_a_short_429_is_waited_out_in_place(esi: FakeEsiServer) -> None:
    _book(esi)
    spent_at = esi.fake.now().timestamp() - 897
    esi.fake.spends[ORDERS_GROUP] = deque([(spent_at, esi.fake.rate_limit)])
    async with esi.client() as client:
        answer = await client.get(ORDERS, params=PAGE_1)
    assert answer.status == 200
    assert [seen.status for seen in esi.fake.requests] == [429, 200]
    assert esi.sleeps
    assert 1 <= esi.sleeps[0] <= 5


async def test_420_stops_every_route_until_the_error_reset(esi: FakeEsiServer) -> None:
    _book(esi)
    now = esi.fake.now().timestamp()
    esi.fake.errors.extend([now] * esi.fake.error_limit)
    async with esi.client(max_wait=0) as client:
        with pytest.raises(EsiErrorLimited) as raised:
            await client.get(ORDERS, params=PAGE_1)
        assert raised.value.retry_after is not None
        assert 1 <= raised.value.retry_after <= 60
        with pytest.raises(EsiErrorLimited):
            await client.get("/status/")
    assert [seen.status for seen in esi.fake.requests] == [420]


async def test_the_error_floor_stops_before_a_420(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.legacy_orders = True
    now = esi.fake.now().timestamp()
    esi.fake.errors.extend([now] * (esi.fake.error_limit - 20))
    governor = Governor(error_floor=20, clock=lambda: esi.fake.now().timestamp())
    async with esi.client(governor, max_wait=0) as client:
        answer = await client.get(ORDERS, params=PAGE_1)
        assert answer.status == 200
        assert governor.error_remain == 20
        with pytest.raises(EsiErrorLimited):
            await client.get(ORDERS, params=PAGE_1)
    assert len(esi.fake.requests) == 1


async def test_a_user_lane_stops_at_the_reserve_while_ingest_goes_on(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.rate_limit = 40
    governor = Governor(reserve_fraction=0.5, ingest_floor=0.05, user_share=1.0,
                        clock=lambda: esi.fake.now().timestamp())  # fmt: skip
    user = Lane.for_user("u1")
    async with esi.client(governor, max_wait=0) as client:
        statuses = []
        for _ in range(12):
            try:
                statuses.append((await client.get(ORDERS, params=PAGE_1, lane=user)).status)
            except EsiBudgetExhausted:
                statuses.append(0)
        assert statuses.count(200) == 10
        assert statuses[-1] == 0
        # 20 of 40 left: the user lane kept half for ingest, which may go down to 5 % (2 tokens).
        for _ in range(9):
            assert (await client.get(ORDERS, params=PAGE_1, lane=INGEST)).status == 200
        with pytest.raises(EsiRateLimited):
            await client.get(ORDERS, params=PAGE_1, lane=INGEST)
    assert len(esi.fake.requests) == 19
    assert all(seen.status == 200 for seen in esi.fake.requests), "a lane ran into a 429"


async def test_one_user_cannot_spend_another_users_share(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.rate_limit = 100
    governor = Governor(reserve_fraction=0.2, user_share=0.1, clock=lambda: esi.fake.now().timestamp())
    greedy, other = Lane.for_user("greedy"), Lane.for_user("other")
    async with esi.client(governor, max_wait=0) as client:
        await client.get(ORDERS, params=PAGE_1, lane=INGEST)  # learns the group
        for _ in range(5):
            await client.get(ORDERS, params=PAGE_1, lane=greedy)
        with pytest.raises(EsiBudgetExhausted) as raised:
            await client.get(ORDERS, params=PAGE_1, lane=greedy)
        assert raised.value.retry_after is not None
        assert raised.value.retry_after > 800
        assert (await client.get(ORDERS, params=PAGE_1, lane=other)).status == 200
        esi.fake.advance(901)
        assert (await client.get(ORDERS, params=PAGE_1, lane=greedy)).status == 200


async def test_a_request_that_hangs_times_out_and_is_retried(esi: FakeEsiServer) -> None:
    _book(esi)
    esi.fake.inject("hang", seconds=1.0, times=1)
    async with esi.client(timeout=0.2) as client:
        answer = await client.get(ORDERS, params=PAGE_1)
    assert answer.status == 200
    assert len(esi.sleeps) == 1
