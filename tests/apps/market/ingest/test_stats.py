"""Book statistics on a hand-built book, every figure computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pentad.apps.market.ingest.stats import BookStats, Order, book_stats

CAPTURED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
JITA, AMARR = 60003760, 60008494
TRITANIUM, PYERITE = 34, 35


def _order(
    order_id: int, type_id: int, location: int, is_buy: bool, price: float, remain: int, age_minutes: int
) -> Order:
    return Order(order_id, type_id, location, 30000142, is_buy, price, remain, remain * 2, 1, "station",
                 CAPTURED - timedelta(minutes=age_minutes), 90, 1)  # fmt: skip


def test_best_prices_counts_units_and_recent_updates_per_location_and_type() -> None:
    orders = [
        _order(1, TRITANIUM, JITA, True, 4.10, 1000, 5),
        _order(2, TRITANIUM, JITA, True, 4.25, 300, 61),
        _order(3, TRITANIUM, JITA, True, 3.99, 50, 59),
        _order(4, TRITANIUM, JITA, False, 4.50, 700, 600),
        _order(5, TRITANIUM, JITA, False, 4.31, 20, 60),
        _order(6, PYERITE, JITA, False, 9.00, 5, 10),
        _order(7, TRITANIUM, AMARR, True, 4.00, 10, 1440),
    ]
    assert book_stats(orders, CAPTURED) == [
        # 60 minutes old counts (issued at the window's start), 61 does not.
        BookStats(JITA, TRITANIUM, best_bid=4.25, best_ask=4.31, bid_count=3, ask_count=2,
                  bid_units=1350, ask_units=720, updates_last_hour=3),
        BookStats(JITA, PYERITE, best_bid=None, best_ask=9.00, bid_count=0, ask_count=1,
                  bid_units=0, ask_units=5, updates_last_hour=1),
        BookStats(AMARR, TRITANIUM, best_bid=4.00, best_ask=None, bid_count=1, ask_count=0,
                  bid_units=10, ask_units=0, updates_last_hour=0),
    ]  # fmt: skip


def test_an_empty_book_has_no_statistics() -> None:
    assert book_stats([], CAPTURED) == []
