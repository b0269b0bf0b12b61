"""Station trading scan: hand-built books, every figure worked out by hand in the comments.

Fee rates used (analysis/fees.py, NPC station, standings 0):
- no skills: broker 3 %, sales tax 7.5 %;
- Broker Relations 5 + Accounting 5 ("trained"): broker 3 % - 5 x 0.3 % = 1.5 %, tax 7.5 % x (1 - 0.55) =
  3.375 %, relist rate 0.5 x 1.5 % = 0.75 %.
Prices near 100 ISK have a tick of 10^(2-3) = 0.1 ISK: buy = bid + 0.10, sell = ask - 0.10.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pentad.apps.market.analysis.fees import FeeRates, FeeSkills, fee_rates
from pentad.apps.market.analysis.station import ScanFilters, StationTrade, scan_orders, station_scan, tick
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.models import MarketTypeVolume
from pentad.apps.market.repository import BookOrderRow, BookStatRow
from pentad.core.db.engine import Database

JITA, JITA_SYSTEM, FORGE = 60003760, 30000142, 10000002
CAPTURED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OLD = CAPTURED - timedelta(days=10)  # issued long ago: no update in the last hour, traded nothing
STEADY, WIDE, WEEKLY, BAIT, RELISTED, NO_HISTORY = 34, 35, 36, 37, 38, 39

UNTRAINED = fee_rates(FeeSkills())
TRAINED = fee_rates(FeeSkills(accounting=5, broker_relations=5))


def _order(
    order_id: int,
    type_id: int,
    is_buy: bool,
    price: str,
    remain: int,
    *,
    total: int | None = None,
    issued: datetime = OLD,
) -> BookOrderRow:
    return BookOrderRow(order_id, type_id, JITA, JITA_SYSTEM, is_buy, Decimal(price), remain,
                        remain if total is None else total, 1, "region", issued)  # fmt: skip


def _stats(orders: list[BookOrderRow], updates: int = 0) -> BookStatRow:
    bids = [o for o in orders if o.is_buy]
    asks = [o for o in orders if not o.is_buy]
    return BookStatRow(
        JITA, orders[0].type_id,
        max((o.price for o in bids), default=None), min((o.price for o in asks), default=None),
        len(bids), len(asks), sum(o.volume_remain for o in bids), sum(o.volume_remain for o in asks), updates,
    )  # fmt: skip


def _scan(
    books: list[list[BookOrderRow]],
    rates: FeeRates,
    volumes: dict[int, float],
    filters: ScanFilters | None = None,
    updates: dict[int, int] | None = None,
) -> list[StationTrade]:
    updates = updates or {}
    stats = [_stats(book, updates.get(book[0].type_id, 0)) for book in books]
    orders = [order for book in books for order in book]
    return scan_orders(
        JITA, stats, orders, rates, captured_at=CAPTURED, history_volumes=volumes, filters=filters
    )


# STEADY: bid 100.00 x 1000, ask 110.00 x 1000, 200 units a day. One order a side: share 1/2, q = 100.
STEADY_BOOK = [_order(1, STEADY, True, "100.00", 1000), _order(2, STEADY, False, "110.00", 1000)]
# WIDE: bid 100.00, ask 150.00, 2 units a day: q = 2 / 2 = 1.
WIDE_BOOK = [_order(3, WIDE, True, "100.00", 50), _order(4, WIDE, False, "150.00", 50)]
# WEEKLY: bid 100.00, ask 160.00, once a week: v = 0.142857, q = 0.0714285 -> 0.0714.
WEEKLY_BOOK = [_order(5, WEEKLY, True, "100.00", 50), _order(6, WEEKLY, False, "160.00", 50)]
VOLUMES = {STEADY: 200.0, WIDE: 2.0, WEEKLY: 0.142857}


def test_the_tick_is_four_significant_digits() -> None:
    assert tick(Decimal("100.00")) == Decimal("0.1")
    assert tick(Decimal("9.99")) == Decimal("0.01")
    assert tick(Decimal("1234567.00")) == Decimal("1000")
    assert tick(Decimal("0.50")) == Decimal("0.01")  # never below a cent


def test_fees_from_skills_change_the_ranking() -> None:
    # Untrained, per unit: sell x (1 - 3 % - 7.5 %) - buy x 1.03
    #   STEADY: 109.90 x 0.895 - 100.10 x 1.03 = 98.3605 - 103.103 = -4.7425; x 100 = -474.25 a day
    #   WIDE:   149.90 x 0.895 - 103.103 = 134.1605 - 103.103 = 31.0575; x 1 = 31.06 a day
    untrained = _scan([STEADY_BOOK, WIDE_BOOK], UNTRAINED, VOLUMES)
    assert [(t.type_id, t.daily_profit) for t in untrained] == [
        (WIDE, Decimal("31.06")),
        (STEADY, Decimal("-474.25")),
    ]
    # Trained, per unit: sell x (1 - 1.5 % - 3.375 %) - buy x 1.015
    #   STEADY: 109.90 x 0.95125 - 100.10 x 1.015 = 104.542375 - 101.6015 = 2.940875; x 100 = 294.09
    #   WIDE:   149.90 x 0.95125 - 101.6015 = 142.592375 - 101.6015 = 40.990875; x 1 = 40.99
    trained = _scan([STEADY_BOOK, WIDE_BOOK], TRAINED, VOLUMES)
    assert [(t.type_id, t.daily_profit) for t in trained] == [
        (STEADY, Decimal("294.09")),
        (WIDE, Decimal("40.99")),
    ]
    steady = trained[0]
    assert (steady.buy_price, steady.sell_price) == (Decimal("100.10"), Decimal("109.90"))
    assert (steady.units_per_day, steady.profit_per_unit, steady.volume_source) == (
        Decimal("100"),
        Decimal("2.94"),
        "history",
    )
    # margin = 294.0875 / (101.6015 x 100) = 0.028945... ; capital = 10160.15
    assert (steady.margin, steady.capital) == (Decimal("0.0289"), Decimal("10160.15"))


def test_a_rarely_traded_item_ranks_below_a_steady_one_despite_its_margin() -> None:
    # WEEKLY (trained): 159.90 x 0.95125 - 101.6015 = 152.104875 - 101.6015 = 50.503375 a unit;
    # q = 0.142857 / 2 = 0.0714 -> 0.0714 x 50.503375 = 3.6059... = 3.61 a day at a margin of
    # 3.6059 / (101.6015 x 0.0714) = 0.4971 (50 %), against STEADY's 294.09 a day at 2.89 %.
    trades = _scan([WEEKLY_BOOK, STEADY_BOOK], TRAINED, VOLUMES)
    assert [(t.type_id, t.daily_profit, t.margin) for t in trades] == [
        (STEADY, Decimal("294.09"), Decimal("0.0289")),
        (WEEKLY, Decimal("3.61"), Decimal("0.4971")),
    ]
    assert trades[1].units_per_day == Decimal("0.0714")


def test_a_thin_book_is_walked_so_a_bait_order_does_not_set_the_price() -> None:
    # Asks: 1 unit at 50.00 (bait) and 9 at 110.00; bids: 10 at 100.00. 1000 a day, thinner side 1 order:
    # q = 1000 / 2 = 500, capped by the depth min(10, 10) = 10 units.
    # Volume-weighted ask over 10 units = (50 + 9 x 110) / 10 = 104.00 -> sell 103.90 (not 49.90).
    # Per unit (trained): 103.90 x 0.95125 - 101.6015 = 98.834875 - 101.6015 = -2.766625; x 10 = -27.67.
    book = [
        _order(7, BAIT, False, "50.00", 1),
        _order(8, BAIT, False, "110.00", 9),
        _order(9, BAIT, True, "100.00", 10),
    ]
    (trade,) = _scan([book], TRAINED, {BAIT: 1000.0})
    assert (trade.units_per_day, trade.sell_price, trade.buy_price) == (
        Decimal("10"),
        Decimal("103.90"),
        Decimal("100.10"),
    )
    assert trade.best_ask == Decimal("50.00")
    assert trade.daily_profit == Decimal("-27.67")


def test_the_competitions_updates_cost_relists() -> None:
    # STEADY's book with 1 update in the last hour among 2 orders: 24 x 1 / 2 = 12 relists a day, each of
    # both orders: buy 100.10 x 100 x 0.75 % = 75.08 and sell 109.90 x 100 x 0.75 % = 82.43, each raised to
    # the 100 ISK minimum: 12 x 200 = 2400 a day. 294.0875 - 2400 = -2105.91.
    (trade,) = _scan([STEADY_BOOK], TRAINED, VOLUMES, updates={STEADY: 1})
    assert (trade.relists_per_day, trade.relist_cost_per_day) == (Decimal("12"), Decimal("2400.00"))
    assert trade.daily_profit == Decimal("-2105.91")


def test_without_history_the_books_activity_gives_the_volume() -> None:
    # Bid issued 2 days ago, 300 placed, 100 left: 200 / 2 = 100 a day; ask issued 12 h ago, 150 placed,
    # 100 left: 50 / max(0.5, 1) = 50 a day. v = 150, q = 150 / 2 = 75; 75 x 2.940875 = 220.565625.
    book = [
        _order(10, NO_HISTORY, True, "100.00", 100, total=300, issued=CAPTURED - timedelta(days=2)),
        _order(11, NO_HISTORY, False, "110.00", 100, total=150, issued=CAPTURED - timedelta(hours=12)),
    ]
    (trade,) = _scan([book], TRAINED, {})
    assert (trade.volume_source, trade.daily_volume, trade.units_per_day) == (
        "book",
        Decimal(150),
        Decimal(75),
    )
    assert trade.daily_profit == Decimal("220.57")


def test_filters_volume_margin_and_capital() -> None:
    books = [STEADY_BOOK, WIDE_BOOK, WEEKLY_BOOK]
    # WEEKLY trades 0.142857 a day < 1.
    assert [t.type_id for t in _scan(books, TRAINED, VOLUMES, ScanFilters(min_daily_volume=1))] == [
        STEADY,
        WIDE,
    ]
    # STEADY's margin 2.89 % < 3 %; WIDE's is 40.990875 / 101.6015 = 40 %.
    assert [t.type_id for t in _scan(books, TRAINED, VOLUMES, ScanFilters(min_margin=Decimal("0.03")))] == [
        WIDE, WEEKLY
    ]  # fmt: skip
    # 500 ISK a day buys 500 / 101.6015 = 4.9212 STEADY units: 4.9212 x 2.940875 = 14.4726 -> 14.47;
    # WIDE's one unit (101.60) fits and earns 40.99; WEEKLY's 0.0714 units cannot be bought (< 1 unit).
    capped = _scan(books, TRAINED, VOLUMES, ScanFilters(max_capital=Decimal(500)))
    assert [(t.type_id, t.units_per_day, t.daily_profit) for t in capped] == [
        (WIDE, Decimal(1), Decimal("40.99")),
        (STEADY, Decimal("4.9212"), Decimal("14.47")),
    ]
    # Not one unit is affordable with 100 ISK (each costs 101.60).
    assert _scan(books, TRAINED, VOLUMES, ScanFilters(max_capital=Decimal(100))) == []
    assert [t.type_id for t in _scan(books, TRAINED, VOLUMES, ScanFilters(limit=1))] == [STEADY]


def test_one_sided_books_and_other_stations_are_left_out() -> None:
    only_bids = [_order(12, 40, True, "10.00", 5)]
    elsewhere = BookStatRow(60008494, STEADY, Decimal(1), Decimal(2), 1, 1, 1, 1, 0)
    stats = [_stats(only_bids), elsewhere]
    assert scan_orders(JITA, stats, only_bids, TRAINED, captured_at=CAPTURED, history_volumes={40: 9.0}) == []


def _stored(order_id: int, type_id: int, is_buy: bool, price: float, remain: int) -> Order:
    return Order(order_id, type_id, JITA, JITA_SYSTEM, is_buy, price, remain, remain, 1, "region", OLD, 90, 1)


async def test_the_scan_reads_the_current_snapshot_and_history_volumes(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        assert await station_scan(session, JITA, FORGE, TRAINED) is None  # no snapshot yet
    orders = [
        _stored(1, STEADY, True, 100.00, 1000),
        _stored(2, STEADY, False, 110.00, 1000),
        _stored(3, WEEKLY, True, 100.00, 50),
        _stored(4, WEEKLY, False, 160.00, 50),
        # No history: the book's activity, as in test_without_history_the_books_activity_gives_the_volume.
        Order(
            6,
            NO_HISTORY,
            JITA,
            JITA_SYSTEM,
            True,
            100.00,
            100,
            300,
            1,
            "region",
            CAPTURED - timedelta(days=2),
            90,
            1,
        ),
        Order(
            7,
            NO_HISTORY,
            JITA,
            JITA_SYSTEM,
            False,
            110.00,
            100,
            150,
            1,
            "region",
            CAPTURED - timedelta(hours=12),
            90,
            1,
        ),
        # Elsewhere in the region: not part of Jita's scan.
        Order(5, STEADY, 60003761, JITA_SYSTEM, False, 1.00, 5, 5, 1, "region", OLD, 90, 1),
    ]
    async with static_db.transaction() as session:
        await store.store_snapshot(
            session, region_id=FORGE, captured_at=CAPTURED, last_modified=None, expires_at=None, pages=1,
            etags={}, orders=orders, stats=book_stats(orders, CAPTURED),
        )  # fmt: skip
        session.add(
            MarketTypeVolume(region_id=FORGE, type_id=STEADY, avg_volume_7d=200.0, avg_volume_30d=0.0)
        )
        session.add(
            MarketTypeVolume(region_id=FORGE, type_id=WEEKLY, avg_volume_7d=0.142857, avg_volume_30d=0.0)
        )
    async with static_db.transaction(writes=False) as session:
        scan = await station_scan(session, JITA, FORGE, TRAINED)
    assert scan is not None
    assert scan.captured_at.replace(tzinfo=UTC) == CAPTURED
    # As in the hand-worked tests above: 294.09, 220.57 and 3.61 a day.
    assert [(t.type_id, t.daily_profit, t.best_ask) for t in scan.trades] == [
        (STEADY, Decimal("294.09"), Decimal("110.00")),
        (NO_HISTORY, Decimal("220.57"), Decimal("110.00")),
        (WEEKLY, Decimal("3.61"), Decimal("160.00")),
    ]


@pytest.mark.parametrize("bad", [Decimal(-1), Decimal(0)])
def test_a_capital_that_buys_nothing_leaves_an_empty_list(bad: Decimal) -> None:
    assert _scan([STEADY_BOOK], TRAINED, VOLUMES, ScanFilters(max_capital=bad)) == []
