"""Per-type book statistics of one snapshot, computed at ingest from the parsed orders (pure, no I/O).

For every (location, type) of the book: the best bid (highest buy price) and best ask (lowest sell price),
how many buy and sell orders there are, the units they offer, and how many of them were issued or
modified in the hour before the snapshot (ESI re-dates `issued` when an order's price changes, so this
counts the competition's updates: how often someone undercut). Scans read these rows, not the orders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

UPDATE_WINDOW = timedelta(hours=1)


class Order(NamedTuple):
    """One order of a region's book, as stored (ESI's field names; `page`: the ESI page it came on)."""

    order_id: int
    type_id: int
    location_id: int
    system_id: int
    is_buy: bool
    price: float
    volume_remain: int
    volume_total: int
    min_volume: int
    range: str
    issued: datetime
    duration: int
    page: int


@dataclass(slots=True)
class BookStats:
    location_id: int
    type_id: int
    best_bid: float | None = None
    best_ask: float | None = None
    bid_count: int = 0
    ask_count: int = 0
    bid_units: int = 0
    ask_units: int = 0
    updates_last_hour: int = 0


def book_stats(orders: Iterable[Order], captured_at: datetime) -> list[BookStats]:
    """The statistics of every (location, type) that has an order, sorted by location then type."""
    since = captured_at - UPDATE_WINDOW
    by_key: dict[tuple[int, int], BookStats] = {}
    for order in orders:
        key = (order.location_id, order.type_id)
        stats = by_key.get(key)
        if stats is None:
            stats = by_key[key] = BookStats(order.location_id, order.type_id)
        if order.is_buy:
            stats.bid_count += 1
            stats.bid_units += order.volume_remain
            if stats.best_bid is None or order.price > stats.best_bid:
                stats.best_bid = order.price
        else:
            stats.ask_count += 1
            stats.ask_units += order.volume_remain
            if stats.best_ask is None or order.price < stats.best_ask:
                stats.best_ask = order.price
        if order.issued >= since:
            stats.updates_last_hour += 1
    return [by_key[key] for key in sorted(by_key)]
