"""Walking an order book for a quantity; every number worked out by hand in the comments."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pentad.apps.market.analysis.depth import BookOrder, Take, walk
from pentad.apps.market.models import MarketOrder

D = Decimal

# Sell orders (what a buyer walks), given out of price order.
SELLS = [
    BookOrder(3, D("11.00"), 200),
    BookOrder(1, D("10.00"), 100),
    BookOrder(4, D("9.00"), 0),  # fully filled already: ignored
    BookOrder(2, D("10.50"), 50),
]
# Buy orders (what a seller walks).
BUYS = [
    BookOrder(11, D("9.00"), 100),
    BookOrder(12, D("9.50"), 1000, min_volume=500),  # best price, but only for sales of 500 units or more
    BookOrder(13, D("8.00"), 300),
    BookOrder(14, D("8.50"), 20, min_volume=50),  # 20 left of a 50-minimum order: takes its last 20
]


def test_buying_walks_the_sell_orders_cheapest_first() -> None:
    fill = walk(SELLS, 220, "buy")
    # 100 x 10.00 = 1,000.00; 50 x 10.50 = 525.00; 70 x 11.00 = 770.00 -> 2,295.00
    assert fill.takes == (Take(1, D("10.00"), 100), Take(2, D("10.50"), 50), Take(3, D("11.00"), 70))
    assert fill.cost == D("2295.00")
    assert fill.average == D("10.43")  # 2,295 / 220 = 10.4318... -> 10.43
    assert fill.marginal == D("11.00")
    assert (fill.filled, fill.complete, fill.short, fill.orders_consumed) == (220, True, 0, 3)


def test_a_quantity_that_ends_on_an_order_boundary_stops_there() -> None:
    fill = walk(SELLS, 150, "buy")
    assert fill.cost == D("1525.00")  # 100 x 10.00 + 50 x 10.50 = 1,000 + 525
    assert fill.average == D("10.17")  # 1,525 / 150 = 10.1666... -> 10.17
    assert fill.marginal == D("10.50")
    assert fill.orders_consumed == 2
    best_only = walk(SELLS, 1, "buy")
    assert (best_only.cost, best_only.average, best_only.marginal) == (D("10.00"), D("10.00"), D("10.00"))


def test_a_short_book_fills_what_it_has_and_says_so() -> None:
    fill = walk(SELLS, 400, "buy")
    # the book holds 100 + 50 + 200 = 350: 1,000 + 525 + 200 x 11.00 = 3,725.00
    assert (fill.filled, fill.short, fill.complete) == (350, 50, False)
    assert fill.cost == D("3725.00")
    assert fill.average == D("10.64")  # 3,725 / 350 = 10.642857... -> 10.64
    assert fill.marginal == D("11.00")


def test_an_empty_book_fills_nothing() -> None:
    fill = walk([], 10, "sell")
    assert (fill.filled, fill.short, fill.complete, fill.cost) == (0, 10, False, D(0))
    assert (fill.average, fill.marginal, fill.takes) == (None, None, ())


def test_selling_walks_the_buy_orders_highest_first_and_respects_minimum_volume() -> None:
    fill = walk(BUYS, 200, "sell")
    # 9.50 wants >= 500 units: skipped. 100 x 9.00 = 900.00 (100 left); 8.50 has 20 left of a
    # 50-minimum order, 100 >= 20: 20 x 8.50 = 170.00 (80 left); 80 x 8.00 = 640.00 -> 1,710.00
    assert fill.skipped == (12,)
    assert fill.takes == (Take(11, D("9.00"), 100), Take(14, D("8.50"), 20), Take(13, D("8.00"), 80))
    assert fill.cost == D("1710.00")
    assert fill.average == D("8.55")  # 1,710 / 200
    assert fill.marginal == D("8.00")
    assert fill.complete


def test_a_quantity_that_meets_the_minimum_takes_the_best_bid() -> None:
    fill = walk(BUYS, 600, "sell")
    assert fill.takes == (Take(12, D("9.50"), 600),)  # 600 >= 500: all at 9.50 = 5,700.00
    assert (fill.cost, fill.average, fill.skipped) == (D("5700.00"), D("9.50"), ())
    big = walk(BUYS, 1200, "sell")
    # 1,000 x 9.50 = 9,500; 100 x 9.00 = 900; 20 x 8.50 = 170; 80 x 8.00 = 640 -> 11,210.00
    assert big.cost == D("11210.00")
    assert big.average == D("9.34")  # 11,210 / 1,200 = 9.341666... -> 9.34
    assert (big.marginal, big.orders_consumed) == (D("8.00"), 4)


def test_the_minimum_is_checked_against_the_quantity_still_to_sell() -> None:
    # 1,110 units: 1,000 x 9.50 = 9,500; 100 x 9.00 = 900; 10 left, but the 8.50 order wants its last
    # 20 in one sale: skipped; 10 x 8.00 = 80 -> 10,480.00
    fill = walk(BUYS, 1110, "sell")
    assert fill.takes == (Take(12, D("9.50"), 1000), Take(11, D("9.00"), 100), Take(13, D("8.00"), 10))
    assert fill.skipped == (14,)
    assert fill.cost == D("10480.00")
    assert fill.average == D("9.44")  # 10,480 / 1,110 = 9.4414... -> 9.44
    only_minimums = walk([BookOrder(12, D("9.50"), 1000, min_volume=500)], 100, "sell")
    assert (only_minimums.filled, only_minimums.short, only_minimums.skipped) == (0, 100, (12,))


def test_orders_at_one_price_fill_in_the_order_given() -> None:
    book = [BookOrder(7, D("5.00"), 10), BookOrder(5, D("5.00"), 10), BookOrder(6, D("4.99"), 1)]
    fill = walk(book, 15, "buy")
    # 1 x 4.99, then the older 5.00 (id 7, given first) 10, then id 5 for 4 -> 4.99 + 50 + 20 = 74.99
    assert [take.order_id for take in fill.takes] == [6, 7, 5]
    assert fill.cost == D("74.99")
    assert fill.average == D("5.00")  # 74.99 / 15 = 4.99933... -> 5.00


def test_order_rows_from_the_database_walk_as_they_are() -> None:
    rows = [
        MarketOrder(order_id=21, price=D("100.00"), volume_remain=3, min_volume=1),
        MarketOrder(order_id=22, price=D("101.00"), volume_remain=3, min_volume=1),
    ]
    fill = walk(rows, 4, "buy")
    assert fill.cost == D("401.00")  # 3 x 100 + 1 x 101
    assert fill.average == D("100.25")


@pytest.mark.parametrize("quantity", [0, -5, 2.5, True])
def test_a_quantity_must_be_whole_units(quantity: object) -> None:
    with pytest.raises(ValueError, match="whole number of units"):
        walk(SELLS, quantity, "buy")  # type: ignore[arg-type]


def test_the_side_must_be_buy_or_sell() -> None:
    with pytest.raises(ValueError, match="side is 'buy' or 'sell'"):
        walk(SELLS, 1, "hold")  # type: ignore[arg-type]
