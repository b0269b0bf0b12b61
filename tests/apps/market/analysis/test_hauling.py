"""Hauling search: hand-built books over a hand-built stargate graph, every figure worked out by hand.

The graph (system, true security), as in test_routes:
  1 (1.0) === 2 (0.9) === 3 (0.2) === 4 (0.8) === 7 (0.44) === 8 (0.7)
                \\                      /
                 5 (0.45) === 6 (0.6)
Hubs: A at system 1, E at 2, B at 4, D at 8. A -> B: shortest 1-2-3-4 = 3 jumps, secure 1-2-5-6-4 = 4 jumps
(0.45 shows as 0.5). A -> D: shortest 5 jumps, none all-high-sec (7 is 0.44, shown 0.4).
Sales tax: 3.375 % trained (Accounting 5), 7.5 % untrained; buying from sell orders pays no broker fee.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pentad.apps.market import repository
from pentad.apps.market.analysis.fees import FeeRates, FeeSkills, fee_rates
from pentad.apps.market.analysis.hauling import (
    DEPTH,
    Haul,
    HaulLimits,
    HubPlace,
    LadderCache,
    bid_cover,
    book_ladders,
    covers,
    hauling_search,
    hub_places,
    search,
    snapshot_ladders,
)
from pentad.apps.market.analysis.routes import Preference, RouteGraph, load_graph
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.repository import BookOrderRow
from pentad.apps.market.settings import Hub
from pentad.core.db.engine import Database

SECURITY = {1: 1.0, 2: 0.9, 3: 0.2, 4: 0.8, 5: 0.45, 6: 0.6, 7: 0.44, 8: 0.7}
GATES = {1: [2], 2: [3, 5], 3: [4], 4: [7], 5: [6], 6: [4], 7: [8]}
A = HubPlace("a", 101, 1, 1)
E = HubPlace("e", 102, 2, 1)
B = HubPlace("b", 104, 4, 1)
D = HubPlace("d", 108, 8, 2)
T1, T2 = 1001, 1002
VOLUMES = {T1: 10.0, T2: 1.0}
ISSUED = datetime(2026, 3, 1, tzinfo=UTC)
TRAINED = fee_rates(FeeSkills(accounting=5))
UNTRAINED = fee_rates(FeeSkills())
ROOMY = HaulLimits(cargo_m3=10_000, collateral=Decimal(10**9))


@pytest.fixture(scope="module")
def graph() -> RouteGraph:
    return RouteGraph(GATES, SECURITY)


def _order(
    order_id: int, type_id: int, hub: HubPlace, is_buy: bool, price: str, remain: int, range_: str = "station"
) -> BookOrderRow:
    return BookOrderRow(order_id, type_id, hub.station_id, hub.system_id, is_buy, Decimal(price), remain,
                        remain, 1, range_, ISSUED)  # fmt: skip


# T1 at A: sells 100 @ 100.00, 50 @ 105.00, 100 @ 120.00.
T1_ASKS = [_order(1, T1, A, False, "100.00", 100), _order(2, T1, A, False, "105.00", 50),
           _order(3, T1, A, False, "120.00", 100)]  # fmt: skip


def _t1_bids(hub: HubPlace) -> list[BookOrderRow]:
    """Buys 120 @ 130.00 and 100 @ 110.00 at `hub`."""
    return [_order(11, T1, hub, True, "130.00", 120), _order(12, T1, hub, True, "110.00", 100)]


def _search(
    graph: RouteGraph,
    hubs: list[HubPlace],
    orders: list[BookOrderRow],
    rates: FeeRates = TRAINED,
    limits: HaulLimits = ROOMY,
    preference: Preference = "secure",
) -> list[Haul]:
    # Each hub's region book: here one region holds every order, as the repository returns them.
    books = {hub.key: orders for hub in hubs}
    return search(hubs, books, VOLUMES, graph, rates, limits, preference=preference)


def test_the_books_are_walked_while_a_unit_still_pays(graph: RouteGraph) -> None:
    # Bids after 3.375 % tax: 130 x 0.96625 = 125.6125, 110 x 0.96625 = 106.2875.
    # 100 @ 100 into 130 (20 of the 120 left), 20 @ 105 into 130, 30 @ 105 into 110 (105 < 106.2875);
    # then 120 vs 106.2875: stop. q = 150.
    # cost = 100 x 100 + 50 x 105 = 15250; revenue = 120 x 130 + 30 x 110 = 15600 + 3300 = 18900;
    # tax = 18900 x 3.375 % = 637.875 -> 637.88; profit = 18900 - 637.88 - 15250 = 3012.12.
    # Secure: 4 jumps -> 753.03 a jump; per m3 = 3012.12 / (150 x 10) = 2.00808 -> 2.01.
    (haul,) = _search(graph, [A, B], T1_ASKS + _t1_bids(B))
    assert (haul.source, haul.destination, haul.units, haul.limited_by) == ("a", "b", 150, "book")
    assert (haul.cost, haul.revenue, haul.tax, haul.profit) == (
        Decimal("15250.00"),
        Decimal("18900.00"),
        Decimal("637.88"),
        Decimal("3012.12"),
    )
    assert (haul.jumps, haul.profit_per_jump, haul.profit_per_m3) == (4, Decimal("753.03"), Decimal("2.01"))
    assert [take.order_id for take in haul.buy_fill.takes] == [1, 2]
    assert [take.order_id for take in haul.sell_fill.takes] == [11, 12]
    # Shortest, through the 0.2 system: 3 jumps -> 3012.12 / 3 = 1004.04.
    (shortest,) = _search(graph, [A, B], T1_ASKS + _t1_bids(B), preference="shortest")
    assert (shortest.jumps, shortest.profit_per_jump) == (3, Decimal("1004.04"))


def test_fees_from_skills_change_the_haul(graph: RouteGraph) -> None:
    # Untrained tax 7.5 %: 130 x 0.925 = 120.25, 110 x 0.925 = 101.75. 100 @ 100 and 20 @ 105 into 130;
    # 105 vs 101.75: stop. q = 120; cost = 10000 + 2100 = 12100; revenue = 120 x 130 = 15600;
    # tax = 1170.00; profit = 15600 - 1170 - 12100 = 2330.00 (vs 3012.12 trained).
    (haul,) = _search(graph, [A, B], T1_ASKS + _t1_bids(B), rates=UNTRAINED)
    assert (haul.units, haul.tax, haul.profit) == (120, Decimal("1170.00"), Decimal("2330.00"))


def test_cargo_and_collateral_limit_the_units(graph: RouteGraph) -> None:
    # 1000 m3 / 10 m3 = 100 units: cost 10000, revenue 13000, tax 438.75, profit 2561.25;
    # per jump 2561.25 / 4 = 640.3125 -> 640.31; per m3 2561.25 / 1000 = 2.56125 -> 2.56.
    hold = HaulLimits(cargo_m3=1000, collateral=Decimal(10**9))
    (by_cargo,) = _search(graph, [A, B], T1_ASKS + _t1_bids(B), limits=hold)
    assert (by_cargo.units, by_cargo.limited_by, by_cargo.profit) == (100, "cargo", Decimal("2561.25"))
    assert (by_cargo.profit_per_jump, by_cargo.profit_per_m3) == (Decimal("640.31"), Decimal("2.56"))
    # 12000 ISK: 100 @ 100 = 10000, then 2000 // 105 = 19 more: 119 units for 11995.
    # revenue 119 x 130 = 15470; tax 522.1125 -> 522.11; profit = 15470 - 522.11 - 11995 = 2952.89.
    purse = HaulLimits(cargo_m3=10_000, collateral=Decimal(12_000))
    (by_collateral,) = _search(graph, [A, B], T1_ASKS + _t1_bids(B), limits=purse)
    assert (by_collateral.units, by_collateral.limited_by) == (119, "collateral")
    assert (by_collateral.cost, by_collateral.profit) == (Decimal("11995.00"), Decimal("2952.89"))
    # Not even one unit fits: nothing.
    assert _search(graph, [A, B], T1_ASKS + _t1_bids(B), limits=HaulLimits(5, Decimal(10**9))) == []
    assert _search(graph, [A, B], T1_ASKS + _t1_bids(B), limits=HaulLimits(10_000, Decimal(99))) == []


def test_hauls_rank_by_profit_per_jump(graph: RouteGraph) -> None:
    # T2: 100 @ 50.00 at A, bought 100 @ 70.00 at E (1 jump): revenue 7000, tax 236.25,
    # profit = 7000 - 236.25 - 5000 = 1763.75 a jump; T1 to B earns more (3012.12) but 753.03 a jump.
    t2 = [_order(21, T2, A, False, "50.00", 100), _order(22, T2, E, True, "70.00", 100)]
    hauls = _search(graph, [A, E, B], T1_ASKS + _t1_bids(B) + t2)
    assert [(h.type_id, h.destination, h.profit, h.profit_per_jump) for h in hauls] == [
        (T2, "e", Decimal("1763.75"), Decimal("1763.75")),
        (T1, "b", Decimal("3012.12"), Decimal("753.03")),
    ]


def test_an_unreachable_secure_route_leaves_the_pair_out(graph: RouteGraph) -> None:
    orders = T1_ASKS + _t1_bids(D)
    assert _search(graph, [A, D], orders, preference="secure") == []
    # Through low-sec 7: 1-2-3-4-7-8, 5 jumps: 3012.12 / 5 = 602.424 -> 602.42.
    (haul,) = _search(graph, [A, D], orders, preference="shortest")
    assert (haul.jumps, haul.profit_per_jump) == (5, Decimal("602.42"))
    assert haul.route.lowest_security == 0.2
    # Prefer safer avoids the 0.2 system (1-2-5-6-4-7-8: 6 jumps, only 7 at 0.4): 3012.12 / 6 = 502.02.
    (safer,) = _search(graph, [A, D], orders, preference="safer")
    assert (safer.jumps, safer.route.lowest_security, safer.profit_per_jump) == (6, 0.4, Decimal("502.02"))


def test_a_buy_order_elsewhere_counts_when_its_range_covers_the_hub(graph: RouteGraph) -> None:
    at_3 = HubPlace("x", 103, 3, 1)
    assert covers(_order(1, T1, at_3, True, "1.00", 1, "1"), B, graph)  # 3 -> 4 is 1 jump
    assert not covers(_order(1, T1, at_3, True, "1.00", 1, "solarsystem"), B, graph)
    assert not covers(_order(1, T1, at_3, True, "1.00", 1, "station"), B, graph)
    assert covers(_order(1, T1, at_3, True, "1.00", 1, "region"), B, graph)
    assert not covers(_order(1, T1, HubPlace("y", 101, 1, 1), True, "1.00", 1, "2"), B, graph)  # 3 jumps
    # Sold at B into a region-wide buy order placed at system 3:
    ranged = [_order(11, T1, at_3, True, "130.00", 120, "region")]
    (haul,) = _search(graph, [A, B], T1_ASKS + ranged)
    # 100 @ 100 + 20 @ 105 = 12100 into 120 @ 130 = 15600; tax 526.50; profit 2973.50.
    assert (haul.units, haul.profit) == (120, Decimal("2973.50"))


def test_a_buy_order_whose_minimum_is_above_the_units_is_skipped(graph: RouteGraph) -> None:
    # The 130 bid wants at least 500 units a sale, more than the asks hold (250).
    bids = [
        BookOrderRow(
            11, T1, B.station_id, B.system_id, True, Decimal("130.00"), 600, 600, 500, "station", ISSUED
        ),
        _order(12, T1, B, True, "110.00", 100),
    ]
    # Profitable units (minimums aside): all 250 asks go into the 600 @ 130 (120 < 125.6125); the walk for
    # 250 skips the 130 bid (250 < its minimum 500) and sells 100 into 110: q = 100; cost 10000,
    # revenue 11000, tax 371.25, profit = 11000 - 371.25 - 10000 = 628.75.
    (haul,) = _search(graph, [A, B], T1_ASKS + bids)
    assert (haul.units, haul.profit, haul.sell_fill.skipped) == (100, Decimal("628.75"), (11,))


JITA = Hub("jita", 60003760, 10000002)
AMARR = Hub("amarr", 60008494, 10000043)
TRITANIUM = 34  # 0.01 m3


async def test_the_search_reads_both_hubs_current_books(static_db: Database) -> None:
    captured = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    old = captured - timedelta(days=1)
    jita = [Order(1, TRITANIUM, JITA.station_id, 30000142, False, 4.00, 1000, 1000, 1, "region", old, 90, 1)]
    amarr = [Order(2, TRITANIUM, AMARR.station_id, 30002187, True, 5.00, 600, 600, 1, "station", old, 90, 1)]
    async with static_db.transaction() as session:
        hubs = await hub_places(session, [JITA, AMARR])
        assert [(h.key, h.system_id) for h in hubs] == [("jita", 30000142), ("amarr", 30002187)]
        assert await hauling_search(session, hubs, TRAINED, ROOMY) == []  # no snapshots yet
        for region, orders in ((JITA.region_id, jita), (AMARR.region_id, amarr)):
            await store.store_snapshot(
                session, region_id=region, captured_at=captured, last_modified=None, expires_at=None, pages=1,
                etags={}, orders=orders, stats=book_stats(orders, captured),
            )  # fmt: skip
    async with static_db.transaction(writes=False) as session:
        # 5 m3 / 0.01 m3 = 500 units (of 600 wanted): cost 2000.00, revenue 2500.00,
        # tax 84.375 -> 84.38, profit 415.62; secure Jita -> Amarr is 15 jumps: 27.708 -> 27.71;
        # per m3 415.62 / 5 = 83.124 -> 83.12.
        (haul,) = await hauling_search(session, hubs, TRAINED, HaulLimits(5, Decimal(10**6)))
        (shortest,) = await hauling_search(
            session, hubs, TRAINED, HaulLimits(5, Decimal(10**6)), preference="shortest"
        )
    assert (haul.source, haul.destination, haul.units, haul.limited_by) == ("jita", "amarr", 500, "cargo")
    assert (haul.profit, haul.jumps, haul.profit_per_jump, haul.profit_per_m3) == (
        Decimal("415.62"),
        15,
        Decimal("27.71"),
        Decimal("83.12"),
    )
    # 5 jumps through low-sec: 415.62 / 5 = 83.124 -> 83.12.
    assert (shortest.jumps, shortest.profit_per_jump) == (5, Decimal("83.12"))


async def test_the_database_ranks_each_side_and_filters_ranged_buys(static_db: Database) -> None:
    """repository.hub_ladders: the top `depth` orders per side and type, in walking order; a buy order
    placed elsewhere counts at the hub only when its range reaches it (as `covers` decides)."""
    captured = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    old = captured - timedelta(days=1)
    async with static_db.transaction() as session:
        hubs = await hub_places(session, [JITA, AMARR])
        graph = await load_graph(session)
        amarr = hubs[1]
        region = await repository.region_system_ids(session, AMARR.region_id)
        by_distance: dict[int, int] = {}
        for system in region:
            jumps = graph.jumps(system, amarr.system_id, "shortest") if system in graph else None
            if jumps is not None:
                by_distance.setdefault(jumps, system)
        near, far = by_distance[1], by_distance[max(by_distance)]
        assert max(by_distance) > 1
        js, jsys = JITA.station_id, 30000142
        jita = [Order(1, TRITANIUM, js, jsys, False, 4.00, 1000, 1000, 1, "region", old, 90, 1),
                Order(2, TRITANIUM, js, jsys, False, 3.50, 10, 10, 1, "region", old, 90, 1),
                Order(3, TRITANIUM, js, jsys, False, 3.00, 0, 10, 1, "region", old, 90, 1)]  # fmt: skip
        ams = AMARR.station_id
        amarr_orders = [
            Order(10, TRITANIUM, ams, amarr.system_id, True, 5.00, 600, 600, 1, "station", old, 90, 1),
            Order(11, TRITANIUM, 1, near, True, 6.00, 100, 100, 1, "1", old, 90, 1),  # one jump, range 1: in
            Order(12, TRITANIUM, 2, far, True, 7.00, 100, 100, 1, "1", old, 90, 1),  # too far: out
            Order(13, TRITANIUM, 3, far, True, 5.50, 100, 100, 1, "region", old, 90, 1),  # the region: in
            Order(14, TRITANIUM, 4, far, True, 8.00, 100, 100, 1, "station", old, 90, 1),  # elsewhere: out
        ]  # fmt: skip
        for region_id, orders in ((JITA.region_id, jita), (AMARR.region_id, amarr_orders)):
            await store.store_snapshot(
                session, region_id=region_id, captured_at=captured, last_modified=None, expires_at=None,
                pages=1, etags={}, orders=orders, stats=book_stats(orders, captured),
            )  # fmt: skip
    async with static_db.transaction(writes=False) as session:
        cover = bid_cover(amarr, graph, region)
        ladders = await repository.hub_ladders(session, AMARR.region_id, cover, depth=10)
        assert ladders is not None
        assert [(o.order_id, o.price) for o in ladders.bids[TRITANIUM]] == [
            (11, Decimal("6.00")), (13, Decimal("5.50")), (10, Decimal("5.00"))]  # fmt: skip
        top = await repository.hub_ladders(session, AMARR.region_id, cover, depth=2)
        assert top is not None
        assert [o.order_id for o in top.bids[TRITANIUM]] == [11, 13]
        jita_ladders = await repository.hub_ladders(
            session, JITA.region_id, bid_cover(hubs[0], graph, []), depth=10
        )
        assert jita_ladders is not None
        # Cheapest first; an order with nothing left is still listed (the walk passes it by).
        assert [o.order_id for o in jita_ladders.asks[TRITANIUM]] == [3, 2, 1]
        # The search over those ladders agrees with the pure search over every row.
        (haul,) = await hauling_search(session, hubs, TRAINED, HaulLimits(5, Decimal(10**6)))
    # 500 units (5 m3 / 0.01): 10 @ 3.50 + 490 @ 4.00 = 1995.00 bought; sold 100 @ 6.00, 100 @ 5.50,
    # 300 @ 5.00 = 2650.00; tax 3.375 % = 89.4375 -> 89.44; profit 565.56.
    assert (haul.units, haul.cost, haul.revenue, haul.profit) == (
        500, Decimal("1995.00"), Decimal("2650.00"), Decimal("565.56"))  # fmt: skip
    assert [take.order_id for take in haul.sell_fill.takes] == [11, 13, 10]


async def test_kept_ladders_serve_their_snapshot_only(static_db: Database) -> None:
    """A LadderCache answers what reading the books answers, and a newer snapshot is read, not the kept
    ladders of the older one."""
    captured = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    old = captured - timedelta(days=1)
    jita = [Order(1, TRITANIUM, JITA.station_id, 30000142, False, 4.00, 1000, 1000, 1, "region", old, 90, 1)]
    amarr = [Order(2, TRITANIUM, AMARR.station_id, 30002187, True, 5.00, 600, 600, 1, "station", old, 90, 1)]
    dearer = [Order(3, TRITANIUM, AMARR.station_id, 30002187, True, 6.00, 600, 600, 1, "station", old, 90, 1)]
    cache = LadderCache()
    hold = HaulLimits(5, Decimal(10**6))

    async def stored(region: int, orders: list[Order], at: datetime) -> None:
        async with static_db.transaction() as session:
            await store.store_snapshot(
                session, region_id=region, captured_at=at, last_modified=None, expires_at=None, pages=1,
                etags={}, orders=orders, stats=book_stats(orders, at),
            )  # fmt: skip

    await stored(JITA.region_id, jita, captured)
    await stored(AMARR.region_id, amarr, captured)
    async with static_db.transaction(writes=False) as session:
        hubs = await hub_places(session, [JITA, AMARR])
        read = await hauling_search(session, hubs, TRAINED, hold)
        (kept,) = await hauling_search(session, hubs, TRAINED, hold, cache=cache)
        (again,) = await hauling_search(session, hubs, TRAINED, hold, cache=cache)
    assert read == [kept] == [again]
    assert kept.revenue == Decimal("2500.00")
    await stored(AMARR.region_id, dearer, captured + timedelta(minutes=5))
    async with static_db.transaction(writes=False) as session:
        (newer,) = await hauling_search(session, hubs, TRAINED, hold, cache=cache)
    # 500 units sold at 6.00 now: revenue 3000.00.
    assert newer.revenue == Decimal("3000.00")


async def test_ingest_stores_the_ladders_the_book_walk_gives(static_db: Database) -> None:
    """The ladders computed at ingest (snapshot_ladders, stored with the snapshot) equal the database's
    ranking of the stored book (hub_ladders) at each depth — ties oldest first, a zero price left out,
    ranged buys by their reach — and a search reading them answers what ranking the books answers; a
    search with another depth (or map) does not read them."""
    captured = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    old = captured - timedelta(days=1)
    async with static_db.transaction() as session:
        hubs = await hub_places(session, [JITA, AMARR])
        graph = await load_graph(session)
        amarr = hubs[1]
        region = await repository.region_system_ids(session, AMARR.region_id)
        near = next(s for s in region if s in graph and graph.jumps(s, amarr.system_id, "shortest") == 1)
        js, jsys, ams = JITA.station_id, 30000142, AMARR.station_id
        jita = [Order(1, TRITANIUM, js, jsys, False, 4.00, 1000, 1000, 1, "region", old, 90, 1)]
        amarr_orders = [
            Order(10, TRITANIUM, ams, amarr.system_id, True, 5.00, 600, 600, 1, "station", old, 90, 1),
            Order(11, TRITANIUM, 1, near, True, 6.00, 100, 100, 50, "1", old, 90, 1),
            Order(12, TRITANIUM, 2, near, True, 6.00, 100, 100, 1, "1", old - timedelta(hours=1), 90, 1),
            Order(13, TRITANIUM, 3, near, True, 7.00, 100, 100, 1, "station", old, 90, 1),  # elsewhere
            Order(14, TRITANIUM, ams, amarr.system_id, True, 0.0, 100, 100, 1, "station", old, 90, 1),
            Order(15, TRITANIUM, ams, amarr.system_id, False, 3.30, 5, 5, 1, "region", old, 90, 1),
            Order(16, TRITANIUM, ams, amarr.system_id, False, 3.25, 0, 5, 1, "region", old, 90, 1),
            Order(17, 35, ams, amarr.system_id, False, 9.99, 7, 7, 1, "region", old, 90, 1),
            Order(18, TRITANIUM, ams, amarr.system_id, False, 0.0, 5, 5, 1, "region", old, 90, 1),  # priced 0
        ]  # fmt: skip
        for region_id, orders in ((JITA.region_id, jita), (AMARR.region_id, amarr_orders)):
            ladders = await snapshot_ladders(session, [JITA, AMARR], region_id, orders)
            assert [hub.station_id for hub in ladders] == [
                JITA.station_id if region_id == JITA.region_id else ams
            ]
            await store.store_snapshot(
                session, region_id=region_id, captured_at=captured, last_modified=None, expires_at=None,
                pages=1, etags={}, orders=orders, stats=book_stats(orders, captured), ladders=ladders,
            )  # fmt: skip
    async with static_db.transaction(writes=False) as session:
        for hub, systems in (
            (amarr, region),
            (hubs[0], await repository.region_system_ids(session, JITA.region_id)),
        ):
            cover = bid_cover(hub, graph, systems)
            version = await repository.current_snapshot(session, hub.region_id)
            assert version is not None
            stored = await repository.stored_ladders(session, version, hub.station_id, cover.key(DEPTH))
            ranked = await repository.hub_ladders(session, hub.region_id, cover, DEPTH)
            assert stored is not None
            assert ranked is not None
            assert (stored.asks, stored.bids) == (ranked.asks, ranked.bids)
            book = amarr_orders if hub is amarr else jita
            for depth in (1, 2):
                top = await repository.hub_ladders(session, hub.region_id, cover, depth)
                assert top is not None
                assert book_ladders(book, cover, depth) == (top.asks, top.bids)
            # Stored for DEPTH only: another depth is ranked by the database.
            assert await repository.stored_ladders(session, version, hub.station_id, cover.key(2)) is None
        amarr_cover = bid_cover(amarr, graph, region)
        version = await repository.current_snapshot(session, AMARR.region_id)
        assert version is not None
        stored = await repository.stored_ladders(session, version, ams, amarr_cover.key(DEPTH))
        assert stored is not None
        # Highest first, equal prices oldest first (12 before 11); 13 is elsewhere; 14 and 18 are priced 0.
        assert [(o.order_id, o.cents, o.min_volume) for o in stored.bids[TRITANIUM]] == [
            (12, 600, 1), (11, 600, 50), (10, 500, 1)]  # fmt: skip
        assert [o.order_id for o in stored.asks[TRITANIUM]] == [16, 15]
        read = await hauling_search(session, hubs, TRAINED, HaulLimits(5, Decimal(10**6)))
        ranked_only = await hauling_search(
            session, hubs, TRAINED, HaulLimits(5, Decimal(10**6)), depth=DEPTH + 1
        )
    assert read == ranked_only
    # 500 units bought at Jita for 2000.00, sold 100 @ 6.00 (12), then 11 (minimum 50 of 400 left) 100 @
    # 6.00 and 300 @ 5.00: 2700.00; tax 3.375 % = 91.125 -> 91.13; profit 608.87.
    (haul,) = read
    assert (haul.units, haul.revenue, haul.profit) == (500, Decimal("2700.00"), Decimal("608.87"))
