"""Paginated fetches against the fake ESI: one consistent generation, concurrency, per-page 304s,
inconsistent pages restarting, and no fetch right before Expires."""

from __future__ import annotations

import pytest

from pentad.apps.market.esi.errors import EsiInconsistentPages
from pentad.apps.market.esi.pages import PreviousPages, fetch_pages
from tests.apps.market.esi_support import FakeEsiServer
from tests.fakes.market.esi import make_orders

REGION = 10000043
ORDERS = f"/markets/{REGION}/orders/"
PARAMS = {"order_type": "all"}


def _ids(result_data: dict[int, object]) -> list[int]:
    return [order["order_id"] for page in sorted(result_data) for order in result_data[page]]  # type: ignore[attr-defined]


async def test_every_page_of_one_generation_concurrently(esi: FakeEsiServer) -> None:
    book = esi.fake.generate_book(REGION, pages=6, page_size=20)
    async with esi.client(page_concurrency=3) as client:
        result = await fetch_pages(client, ORDERS, params=PARAMS)
    assert not result.not_modified
    assert result.pages == 6
    assert result.restarts == 0
    assert _ids(result.data) == [order["order_id"] for order in book.orders]
    assert result.etags == {page: book.etags[page - 1] for page in range(1, 7)}
    assert result.last_modified is not None
    assert result.expires_at is not None
    pages = [seen.page for seen in esi.fake.requests]
    assert pages[0] == 1
    assert sorted(pages) == [1, 2, 3, 4, 5, 6]


async def test_an_unchanged_book_is_not_asked_before_expires_and_costs_one_304_after(
    esi: FakeEsiServer,
) -> None:
    esi.fake.set_book(REGION, make_orders(REGION, count=60), page_size=20)
    async with esi.client() as client:
        first = await fetch_pages(client, ORDERS, params=PARAMS)
        previous = PreviousPages(first.etags, first.last_modified, first.expires_at)
        early = await fetch_pages(client, ORDERS, params=PARAMS, previous=previous)
        assert early.not_modified
        assert len(esi.fake.requests) == 3
        esi.fake.advance(301)
        later = await fetch_pages(client, ORDERS, params=PARAMS, previous=previous)
    assert later.not_modified
    assert later.pages == 3
    assert later.expires_at is not None
    assert first.expires_at is not None
    assert later.expires_at > first.expires_at
    assert [(seen.page, seen.status) for seen in esi.fake.requests[3:]] == [(1, 304)]


async def test_pages_unchanged_in_a_new_generation_answer_304(esi: FakeEsiServer) -> None:
    orders = make_orders(REGION, count=60)
    esi.fake.set_book(REGION, orders, page_size=20)
    async with esi.client() as client:
        first = await fetch_pages(client, ORDERS, params=PARAMS)
        changed = [dict(order) for order in orders]
        changed[45]["price"] += 1.0  # page 3 only
        esi.fake.set_book(REGION, changed, page_size=20)
        previous = PreviousPages(first.etags, first.last_modified, None)
        second = await fetch_pages(client, ORDERS, params=PARAMS, previous=previous)
    assert not second.not_modified
    assert second.unchanged_pages == [1, 2]
    page_3 = second.data[3]
    assert page_3 is not None
    assert page_3[5]["price"] == changed[45]["price"]
    assert second.last_modified is not None
    assert first.last_modified is not None
    assert second.last_modified > first.last_modified


async def test_a_regeneration_between_pages_restarts_the_fetch(esi: FakeEsiServer) -> None:
    esi.fake.generate_book(REGION, pages=5, page_size=10)
    esi.fake.inject("regenerate", region=REGION, after=2, times=1)
    async with esi.client(page_concurrency=1) as client:
        result = await fetch_pages(client, ORDERS, params=PARAMS)
    current = esi.fake.books[REGION]
    assert result.restarts == 1
    assert _ids(result.data) == [order["order_id"] for order in current.orders]
    assert [result.data[p] for p in sorted(result.data)] == [
        [dict(order) for order in current.orders[i : i + 10]] for i in range(0, 50, 10)
    ]


async def test_x_pages_changing_between_pages_restarts_the_fetch(esi: FakeEsiServer) -> None:
    esi.fake.generate_book(REGION, pages=4, page_size=10)
    esi.fake.inject("pages", page=3, pages=5, times=1)
    async with esi.client() as client:
        result = await fetch_pages(client, ORDERS, params=PARAMS)
    assert result.restarts == 1
    assert result.pages == 4


async def test_pages_that_never_agree_fail_after_the_restarts(esi: FakeEsiServer) -> None:
    esi.fake.generate_book(REGION, pages=3, page_size=10)
    esi.fake.inject("regenerate", region=REGION, page=2, times=100)
    async with esi.client(page_concurrency=1, inconsistent_restarts=2) as client:
        with pytest.raises(EsiInconsistentPages) as raised:
            await fetch_pages(client, ORDERS, params=PARAMS)
    assert raised.value.retry_after is not None
    assert [seen.page for seen in esi.fake.requests].count(1) == 3


async def test_a_book_about_to_expire_is_fetched_after_its_expiry(esi: FakeEsiServer) -> None:
    esi.fake.expires_in = 3
    esi.fake.generate_book(REGION, pages=2, page_size=10)
    esi.fake.expires_in = 300
    async with esi.client(expiry_margin=5) as client:
        result = await fetch_pages(client, ORDERS, params=PARAMS)
    assert esi.sleeps
    assert esi.sleeps[0] > 2
    current = esi.fake.books[REGION]
    assert result.last_modified is not None
    assert result.last_modified == current.last_modified
    assert _ids(result.data) == [order["order_id"] for order in current.orders]
    assert [seen.page for seen in esi.fake.requests] == [1, 1, 2]
