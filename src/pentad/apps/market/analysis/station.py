"""Station trading: which types to trade at one station, ranked by what they could earn a day
(docs/plans/market.md §3 "Analysis definitions").

A station trader places a buy order just above the best bids and a sell order just below the best asks,
and earns the spread minus the fees on both orders. Per type t at the station:

- daily volume `v`: the region's 7-day average from history (`market_type_volume`) when known, else the
  book's own recent activity: sum over the type's orders of ``(volume_total - volume_remain) / age in
  days`` (age at least one day, so a fresh order does not look like a flood);
- share = ``1 / (1 + orders on the thinner side)``: one more trader among those already there;
- `q` = expected units a day = ``v x share``, capped by the book's depth (the units on its thinner side)
  and by the capital filter (what one day's buying may cost); `q` may be below one unit (a weekly seller);
- buy = volume-weighted bid over the top ``ceil(q)`` units + one tick, sell = volume-weighted ask over the
  top ``ceil(q)`` units - one tick (a one-unit bait order does not set the price); the tick is the EVE price
  step, four significant digits: ``10^(floor(log10 p) - 3)``;
- per unit: ``sell x (1 - broker - tax) - buy x (1 + broker)``;
- relists: the competition's pace, ``relists_per_day = min(MAX_RELISTS, 24 x updates_last_hour / orders)``,
  each relisting both orders at ``FeeRates.relist_fee`` (at least 100 ISK each);
- daily profit = ``q x per unit - relists_per_day x (relist(buy x q) + relist(sell x q))``; margin = daily
  profit / (buy x (1 + broker) x q); the list is ranked by daily profit, so a 50 % margin on an item
  that trades once a week ranks below a steady 8 %.

Everything is exact Decimal arithmetic on the stored prices; ISK results are rounded to the cent.
`scan_orders` is pure; `station_scan` loads the station's current book with two queries and one each for
the history volumes and type names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository
from pentad.apps.market.analysis.depth import BookOrder, walk
from pentad.apps.market.analysis.fees import FeeRates
from pentad.apps.market.repository import BookOrderRow, BookStatRow

MAX_RELISTS = Decimal(24)
"""Relists a day at most (one an hour: nobody updates faster by hand)."""
SECONDS_PER_DAY = Decimal(86400)
CENT = Decimal("0.01")
UNIT = Decimal("0.0001")
"""Precision of expected units a day and of relists a day."""

VolumeSource = Literal["history", "book"]


def tick(price: Decimal) -> Decimal:
    """The price step at `price`: four significant digits (10^(floor(log10 p) - 3)); 0.01 ISK at least."""
    if price <= 0:
        return CENT
    exponent = price.adjusted() - 3  # adjusted(): the exponent of the leading digit
    return max(CENT, Decimal(1).scaleb(exponent))


@dataclass(frozen=True)
class ScanFilters:
    min_daily_volume: float = 0.0
    """Skip types whose daily volume `v` is below this."""
    min_margin: Decimal | None = None
    """Skip types whose margin (fraction, 0.05 = 5 %) is below this."""
    max_capital: Decimal | None = None
    """ISK a day's buying may cost at most: caps the units a day; types not affordable at one unit drop."""
    limit: int | None = None


@dataclass(frozen=True)
class StationTrade:
    type_id: int
    best_bid: Decimal
    best_ask: Decimal
    buy_price: Decimal
    """Where to place the buy order (volume-weighted bid + one tick)."""
    sell_price: Decimal
    """Where to place the sell order (volume-weighted ask - one tick)."""
    daily_volume: Decimal
    volume_source: VolumeSource
    bid_count: int
    ask_count: int
    updates_last_hour: int
    units_per_day: Decimal
    profit_per_unit: Decimal
    """Before relists."""
    relists_per_day: Decimal
    relist_cost_per_day: Decimal
    daily_profit: Decimal
    margin: Decimal
    capital: Decimal
    """What a day's buying costs (buy x (1 + broker) x units)."""


def _utc(moment: datetime) -> datetime:
    """An aware UTC moment (engines hand back naive UTC datetimes)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def book_activity(orders: Iterable[BookOrderRow], captured_at: datetime) -> Decimal:
    """Units a day the book's orders have traded: sum of (volume_total - volume_remain) / age in days,
    each age at least one day."""
    total = Decimal(0)
    for order in orders:
        traded = order.volume_total - order.volume_remain
        if traded <= 0:
            continue
        age = Decimal(int((_utc(captured_at) - _utc(order.issued)).total_seconds())) / SECONDS_PER_DAY
        total += Decimal(traded) / max(age, Decimal(1))
    return total


def _vw(orders: Sequence[BookOrder], units: int, side: Literal["buy", "sell"]) -> Decimal | None:
    fill = walk(orders, units, side)
    return None if fill.filled == 0 else fill.cost / fill.filled


def trade(
    stat: BookStatRow,
    orders: Sequence[BookOrderRow],
    rates: FeeRates,
    daily_volume: Decimal,
    volume_source: VolumeSource,
    max_capital: Decimal | None = None,
) -> StationTrade | None:
    """One type's station trade from its book statistics and orders at the station (both sides); None
    when the type cannot be traded there (a side is empty, no volume, nothing affordable)."""
    if stat.best_bid is None or stat.best_ask is None or daily_volume <= 0:
        return None
    asks = [BookOrder(o.order_id, o.price, o.volume_remain) for o in orders if not o.is_buy]
    bids = [BookOrder(o.order_id, o.price, o.volume_remain) for o in orders if o.is_buy]
    if not asks or not bids:
        return None
    thinner = min(stat.bid_count, stat.ask_count)
    depth = min(stat.bid_units, stat.ask_units)
    q = min(daily_volume / (1 + thinner), Decimal(depth))
    top = max(1, int(q.to_integral_value(rounding=ROUND_CEILING)))
    vw_bid, vw_ask = _vw(bids, top, "sell"), _vw(asks, top, "buy")
    if vw_bid is None or vw_ask is None:
        return None
    buy = (vw_bid + tick(vw_bid)).quantize(CENT, rounding=ROUND_HALF_UP)
    sell = (vw_ask - tick(vw_ask)).quantize(CENT, rounding=ROUND_HALF_UP)
    unit_cost = buy * (1 + rates.broker)
    if max_capital is not None:
        q = min(q, max_capital / unit_cost)
        if q < 1:
            return None
    q = q.quantize(UNIT, rounding=ROUND_HALF_UP)
    if q <= 0:
        return None
    per_unit = sell * (1 - rates.broker - rates.sales_tax) - unit_cost
    orders_total = stat.bid_count + stat.ask_count
    relists = min(MAX_RELISTS, Decimal(24 * stat.updates_last_hour) / max(orders_total, 1)).quantize(
        UNIT, rounding=ROUND_HALF_UP
    )
    relist_cost = Decimal(0)
    if relists > 0:
        relist_cost = relists * (rates.relist_fee(buy * q, buy * q) + rates.relist_fee(sell * q, sell * q))
    daily = q * per_unit - relist_cost
    capital = unit_cost * q
    return StationTrade(
        type_id=stat.type_id,
        best_bid=stat.best_bid,
        best_ask=stat.best_ask,
        buy_price=buy,
        sell_price=sell,
        daily_volume=daily_volume,
        volume_source=volume_source,
        bid_count=stat.bid_count,
        ask_count=stat.ask_count,
        updates_last_hour=stat.updates_last_hour,
        units_per_day=q,
        profit_per_unit=per_unit.quantize(CENT, rounding=ROUND_HALF_UP),
        relists_per_day=relists,
        relist_cost_per_day=relist_cost.quantize(CENT, rounding=ROUND_HALF_UP),
        daily_profit=daily.quantize(CENT, rounding=ROUND_HALF_UP),
        margin=(daily / capital).quantize(UNIT, rounding=ROUND_HALF_UP),
        capital=capital.quantize(CENT, rounding=ROUND_HALF_UP),
    )


def scan_orders(
    station_id: int,
    stats: Iterable[BookStatRow],
    orders: Iterable[BookOrderRow],
    rates: FeeRates,
    *,
    captured_at: datetime,
    history_volumes: Mapping[int, float] | None = None,
    filters: ScanFilters | None = None,
) -> list[StationTrade]:
    """Every type traded at `station_id`, best daily profit first (ties: lower type id first)."""
    filters = filters or ScanFilters()
    history_volumes = history_volumes or {}
    by_type: dict[int, list[BookOrderRow]] = {}
    for order in orders:
        if order.location_id == station_id:
            by_type.setdefault(order.type_id, []).append(order)
    found: list[StationTrade] = []
    for stat in stats:
        if stat.location_id != station_id or stat.best_bid is None or stat.best_ask is None:
            continue
        type_orders = by_type.get(stat.type_id, [])
        known = history_volumes.get(stat.type_id)
        source: VolumeSource
        if known is not None and known > 0:
            volume, source = Decimal(repr(float(known))), "history"
        else:
            volume, source = book_activity(type_orders, captured_at), "book"
        if float(volume) < filters.min_daily_volume or math.isclose(float(volume), 0.0):
            continue
        found_trade = trade(stat, type_orders, rates, volume, source, filters.max_capital)
        if found_trade is None:
            continue
        if filters.min_margin is not None and found_trade.margin < filters.min_margin:
            continue
        found.append(found_trade)
    found.sort(key=lambda item: (-item.daily_profit, item.type_id))
    return found if filters.limit is None else found[: filters.limit]


@dataclass(frozen=True)
class StationScan:
    station_id: int
    region_id: int
    snapshot_id: int
    captured_at: datetime
    trades: list[StationTrade]


async def station_scan(
    session: AsyncSession,
    station_id: int,
    region_id: int,
    rates: FeeRates,
    filters: ScanFilters | None = None,
) -> StationScan | None:
    """The station trading scan over the region's current snapshot at `station_id` (None when the region
    has no snapshot yet). `rates`: the character's fee rates there (fees.fee_rates_at)."""
    book = await repository.current_book(session, region_id, [station_id])
    if book is None:
        return None
    volumes = await repository.daily_volumes(session, region_id)
    trades = scan_orders(
        station_id,
        book.stats,
        book.orders,
        rates,
        captured_at=book.captured_at,
        history_volumes=volumes,
        filters=filters,
    )
    return StationScan(station_id, region_id, book.snapshot_id, book.captured_at, trades)
