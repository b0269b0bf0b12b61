"""Hauling: buy at one hub, carry it, sell at another (docs/plans/market.md §3 "Analysis definitions").

For every ordered pair of hubs (A, B) with a route under the chosen preference (routes.py; a pair with
none, e.g. no all-high-sec route under `secure`, is left out) and every type sold at A and bought at B:

- the units worth moving: the sell orders at A (cheapest first) against the buy orders covering B
  (highest first), unit by unit while ``ask < bid x (1 - tax)``; then capped by the cargo hold
  (``floor(cargo_m3 / packaged volume)``) and the collateral (the most units whose walked cost at A stays
  within it);
- cost = ``depth.walk(asks at A, q, "buy")`` (taking sell orders: no broker fee), revenue =
  ``depth.walk(bids covering B, q, "sell")`` (a buy order whose minimum volume is above what is left is
  skipped; if B cannot take all `q`, `q` shrinks to what it takes), profit = revenue - sales tax - cost;
- per jump = profit / max(jumps, 1) (the ranking), per m3 = profit / (q x packaged volume).

A buy order covers station B when it is at B, or its range is `region` (same region), `solarsystem` (same
system), or a number of jumps at least the shortest route from its system to B's. Ships carry packaged
volume; a type without a volume takes no cargo room.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository
from pentad.apps.market.analysis.depth import BookOrder, Fill, Level, walk_sorted
from pentad.apps.market.analysis.fees import FeeRates
from pentad.apps.market.analysis.routes import Preference, Route, RouteGraph, load_graph
from pentad.apps.market.ingest.stats import Order
from pentad.apps.market.repository import BidCover, BookOrderRow, HubLadders, Ladders, StoredLadders
from pentad.apps.market.settings import Hub
from pentad.core.context import AppContext, ResourceSpec

CENT = Decimal("0.01")


@dataclass(frozen=True)
class HubPlace:
    """A hub as hauling needs it."""

    key: str
    station_id: int
    system_id: int
    region_id: int


@dataclass(frozen=True)
class HaulLimits:
    cargo_m3: float
    """The hold's capacity in m3 (packaged volumes)."""
    collateral: Decimal
    """ISK that may be spent at the source (and put up as courier collateral)."""


@dataclass(frozen=True)
class Haul:
    type_id: int
    source: str
    destination: str
    route: Route
    units: int
    cost: Decimal
    revenue: Decimal
    """Received from B's buy orders, before tax."""
    tax: Decimal
    profit: Decimal
    profit_per_jump: Decimal
    profit_per_m3: Decimal | None
    volume_m3: float
    buy_fill: Fill
    sell_fill: Fill
    limited_by: str
    """What set the units: `book` (profitable units), `cargo` or `collateral`."""

    @property
    def jumps(self) -> int:
        return self.route.jumps


def _cents(order: Level) -> int:
    return order.cents


def covers(order: BookOrderRow, destination: HubPlace, graph: RouteGraph | None) -> bool:
    """Whether the buy `order` can be sold into at `destination`."""
    if order.location_id == destination.station_id:
        return True
    if order.range == "station":
        return False
    if order.range == "region":
        return True
    if order.range == "solarsystem":
        return order.system_id == destination.system_id
    if not order.range.isdigit() or graph is None:
        return False
    if order.system_id not in graph or destination.system_id not in graph:
        return False
    jumps = graph.jumps(order.system_id, destination.system_id, "shortest")
    return jumps is not None and jumps <= int(order.range)


DEPTH = 200
"""Orders of each side of a type's book the search reads at each hub (the best ones). Enough for a
freighter's hold or a billion ISK of collateral on any real book; a haul needing more is priced on these
(fewer units at the best prices: never a profit the book does not hold)."""

NUMERIC_RANGES = ("1", "2", "3", "4", "5", "10", "20", "30", "40")
"""The jump ranges a buy order may have (besides station, solarsystem and region)."""


class _Terms(NamedTuple):
    """The search's constants in whole numbers: a unit pays while ``ask x keep_den < bid x keep_num``
    (keep = 1 - sales tax), tax in cents is ``round_half_up(revenue x tax_num / tax_den)``."""

    keep_num: int
    keep_den: int
    tax_num: int
    tax_den: int
    collateral_cents: int
    cargo_m3: Decimal


def _terms(rates: FeeRates, limits: HaulLimits) -> _Terms:
    keep_num, keep_den = (1 - rates.sales_tax).as_integer_ratio()
    tax_num, tax_den = rates.sales_tax.as_integer_ratio()
    collateral = int((limits.collateral * 100).to_integral_value(rounding=ROUND_FLOOR))
    return _Terms(keep_num, keep_den, tax_num, tax_den, collateral, Decimal(repr(limits.cargo_m3)))


class _Outcome(NamedTuple):
    units: int
    limited_by: str
    cost: int
    """Cents, as are the other amounts."""
    revenue: int
    tax: int
    profit: int
    profit_per_jump: int


def _walked(ladder: Sequence[Level], quantity: int, *, selling: bool) -> tuple[int, int]:
    """Units filled and their cents, as `walk_sorted` finds them (without recording the takes)."""
    left, cost = quantity, 0
    for order in ladder:
        if left == 0:
            break
        remain = order.volume_remain
        if remain <= 0 or (selling and left < order.min_volume and left < remain):
            continue
        units = left if left < remain else remain
        cost += order.cents * units
        left -= units
    return quantity - left, cost


def _evaluate(
    asks: Sequence[Level], bids: Sequence[Level], jumps: int, volume_m3: float, terms: _Terms
) -> _Outcome | None:
    """Size and price one candidate haul in one walk of the top of both ladders (`asks` cheapest first,
    `bids` highest first): unit by unit while a unit pays the tax, stopping at the hold (cargo units) or
    the collateral (the cheapest asks' cost). Same units as ``min(profitable, cargo, affordable)``; when
    the hold and the collateral allow the same number, the hold is named. The walk's own cost and
    revenue are the answer unless a buy order it reached has a minimum volume above one: then the bids
    are walked again as `walk_sorted` does (such an order is skipped while fewer units are left)."""
    cargo_units = None
    if volume_m3 > 0:
        cargo_units = int(terms.cargo_m3 // Decimal(repr(volume_m3)))
    keep_num, keep_den = terms.keep_num, terms.keep_den
    units = cost = revenue = 0
    minimum = False
    limited_by = "book"
    i = j = 0
    n_asks, n_bids = len(asks), len(bids)
    ask = asks[0] if n_asks else None
    bid = bids[0] if n_bids else None
    ask_left = ask.volume_remain if ask is not None else 0
    bid_left = bid.volume_remain if bid is not None else 0
    while ask is not None and bid is not None:
        if ask_left <= 0:
            i += 1
            ask = asks[i] if i < n_asks else None
            ask_left = ask.volume_remain if ask is not None else 0
            continue
        if bid_left <= 0:
            j += 1
            bid = bids[j] if j < n_bids else None
            bid_left = bid.volume_remain if bid is not None else 0
            continue
        price = ask.cents
        if price * keep_den >= bid.cents * keep_num:
            break
        if bid.min_volume > 1:
            minimum = True
        take = ask_left if ask_left < bid_left else bid_left
        afford = (terms.collateral_cents - cost) // price
        room = None if cargo_units is None else cargo_units - units
        if (room is not None and take > room) or take > afford:
            if room is not None and room <= afford:
                take, limited_by = room, "cargo"
            else:
                take, limited_by = afford, "collateral"
            units += take
            cost += take * price
            revenue += take * bid.cents
            break
        units += take
        cost += take * price
        revenue += take * bid.cents
        ask_left -= take
        bid_left -= take
    if units < 1:
        return None
    q = units
    if minimum:
        q, revenue = _walked(bids, units, selling=True)
        if q < 1:
            return None
        if q != units:
            _, cost = _walked(asks, q, selling=False)
    tax = (2 * revenue * terms.tax_num + terms.tax_den) // (2 * terms.tax_den)
    profit = revenue - tax - cost
    if profit <= 0:
        return None
    per = max(jumps, 1)
    return _Outcome(q, limited_by, cost, revenue, tax, profit, (2 * profit + per) // (2 * per))


def _isk(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _level(order: BookOrder | BookOrderRow) -> Level:
    cents = int((order.price * 100).to_integral_value(rounding=ROUND_HALF_UP))
    return Level(order.order_id, cents, order.volume_remain, order.min_volume)


def _haul(
    type_id: int,
    source: str,
    destination: str,
    route: Route,
    asks: Sequence[Level],
    bids: Sequence[Level],
    volume_m3: float,
    outcome: _Outcome,
) -> Haul:
    q = outcome.units
    profit = _isk(outcome.profit)
    per_m3 = None
    if volume_m3 > 0:
        per_m3 = (profit / (q * Decimal(repr(volume_m3)))).quantize(CENT, rounding=ROUND_HALF_UP)
    return Haul(
        type_id=type_id,
        source=source,
        destination=destination,
        route=route,
        units=q,
        cost=_isk(outcome.cost),
        revenue=_isk(outcome.revenue),
        tax=_isk(outcome.tax),
        profit=profit,
        profit_per_jump=_isk(outcome.profit_per_jump),
        profit_per_m3=per_m3,
        volume_m3=volume_m3,
        buy_fill=walk_sorted(asks, q, "buy"),
        sell_fill=walk_sorted(bids, q, "sell"),
        limited_by=outcome.limited_by,
    )


def search(
    hubs: Sequence[HubPlace],
    orders: Mapping[str, Iterable[BookOrderRow]],
    volumes: Mapping[int, float],
    graph: RouteGraph,
    rates: FeeRates,
    limits: HaulLimits,
    *,
    preference: Preference = "secure",
    limit: int | None = None,
) -> list[Haul]:
    """Hauls between every ordered pair of `hubs`, best profit per jump first (ties: more profit, then
    type, source, destination). `orders`: by hub key, its region's current orders at the hub plus the
    region's ranged buy orders; `volumes`: packaged volume by type; `rates`: the hauler's fee rates (only
    the sales tax applies: both trades take existing orders)."""
    asks_at: dict[str, Ladders] = {}
    bids_for: dict[str, Ladders] = {}
    for hub in hubs:
        sells: Ladders = {}
        buys: Ladders = {}
        for order in orders.get(hub.key, ()):
            if order.price <= 0:
                continue
            book = _level(order)
            if not order.is_buy:
                if order.location_id == hub.station_id:
                    sells.setdefault(order.type_id, []).append(book)
            elif covers(order, hub, graph):
                buys.setdefault(order.type_id, []).append(book)
        for ladder in sells.values():
            ladder.sort(key=_cents)
        for ladder in buys.values():
            ladder.sort(key=_cents, reverse=True)
        asks_at[hub.key], bids_for[hub.key] = sells, buys
    return search_ladders(hubs, asks_at, bids_for, volumes, graph, rates, limits, preference=preference,
                          limit=limit)  # fmt: skip


def search_ladders(
    hubs: Sequence[HubPlace],
    asks_at: Mapping[str, Ladders],
    bids_for: Mapping[str, Ladders],
    volumes: Mapping[int, float],
    graph: RouteGraph,
    rates: FeeRates,
    limits: HaulLimits,
    *,
    preference: Preference = "secure",
    limit: int | None = None,
) -> list[Haul]:
    """`search` over ladders already built: by hub key, each type's sell orders at the hub cheapest
    first (`asks_at`) and the buy orders covering the hub highest first (`bids_for`)."""
    terms = _terms(rates, limits)
    keep_num, keep_den = terms.keep_num, terms.keep_den
    # Every candidate is priced in cents without recording its fills; only the hauls answered get them.
    found: list[tuple[int, int, int, str, str, Route, _Outcome]] = []
    for source in hubs:
        for destination in hubs:
            if source.key == destination.key:
                continue
            if source.system_id not in graph or destination.system_id not in graph:
                continue
            route = graph.route(source.system_id, destination.system_id, preference)
            if route is None:
                continue
            bids = bids_for.get(destination.key, {})
            asks_here = asks_at.get(source.key, {})
            for type_id in asks_here.keys() & bids.keys():
                asks, wanted = asks_here[type_id], bids[type_id]
                if asks[0].cents * keep_den >= wanted[0].cents * keep_num:
                    continue  # not even the best pair pays the tax
                outcome = _evaluate(asks, wanted, route.jumps, volumes.get(type_id, 0.0), terms)
                if outcome is not None:
                    found.append((-outcome.profit_per_jump, -outcome.profit, type_id, source.key,
                                  destination.key, route, outcome))  # fmt: skip
    found.sort(key=lambda item: item[:5])
    chosen = found if limit is None else found[:limit]
    return [
        _haul(type_id, source_key, destination_key, route, asks_at[source_key][type_id],
              bids_for[destination_key][type_id], volumes.get(type_id, 0.0), outcome)
        for _, _, type_id, source_key, destination_key, route, outcome in chosen
    ]  # fmt: skip


def bid_cover(hub: HubPlace, graph: RouteGraph, region_systems: Iterable[int]) -> BidCover:
    """Which of its region's buy orders can be sold into at `hub` (repository.hub_ladders' filter): for
    each jump range, the region's systems at most that many jumps from the hub's (shortest route)."""
    distance: dict[int, int] = {}
    if hub.system_id in graph:
        distance[hub.system_id] = 0
        frontier = [hub.system_id]
        reach = int(NUMERIC_RANGES[-1])
        for step in range(1, reach + 1):
            following = []
            for here in frontier:
                for there in graph.neighbours[here]:
                    if there not in distance:
                        distance[there] = step
                        following.append(there)
            frontier = following
            if not frontier:
                break
    systems = sorted(set(region_systems) & distance.keys())
    within = {jumps: [s for s in systems if distance[s] <= int(jumps)] for jumps in NUMERIC_RANGES}
    return BidCover(hub.station_id, hub.system_id, within)


def book_ladders(orders: Iterable[Order], cover: BidCover, depth: int = DEPTH) -> tuple[Ladders, Ladders]:
    """A hub's ladders from a whole region book in memory, as repository.hub_ladders ranks them in the
    database: per type the sell orders at `cover.station_id` cheapest first and the buy orders `cover` lets
    be sold into there highest first (equal prices oldest first, then by order id), prices in whole cents
    (ESI's prices carry two decimals), orders priced at 0 left out, each side cut to its top `depth`."""
    station, system = cover.station_id, cover.system_id
    within = {jumps: frozenset(systems) for jumps, systems in cover.within.items()}
    sells: dict[int, list[Order]] = {}
    buys: dict[int, list[Order]] = {}
    for order in orders:
        if order.is_buy:
            if order.location_id != station:
                reach = order.range
                if reach != "region" and not (
                    order.system_id == system
                    if reach == "solarsystem"
                    else order.system_id in within.get(reach, ())
                ):
                    continue
            side = buys
        elif order.location_id == station:
            side = sells
        else:
            continue
        if (ladder := side.get(order.type_id)) is None:
            side[order.type_id] = [order]
        else:
            ladder.append(order)
    return _ranked(sells, depth, 1), _ranked(buys, depth, -1)


def _ranked(side: dict[int, list[Order]], depth: int, sign: int) -> Ladders:
    """Each type's orders priced above 0, best first (`sign` 1: cheapest, -1: highest; then oldest, then
    by id), cut to `depth`. Only the orders priced within the top `depth` are ranked in full."""
    ranked: Ladders = {}
    for type_id, orders in side.items():
        priced = [(sign * cents, order) for order in orders if (cents := round(order.price * 100)) > 0]
        if len(priced) > depth:
            edge = heapq.nsmallest(depth, [key for key, _ in priced])[-1]
            priced = [row for row in priced if row[0] <= edge]
        priced.sort(key=_rank)
        if priced:
            ranked[type_id] = [
                Level(order.order_id, sign * key, order.volume_remain, order.min_volume)
                for key, order in priced[:depth]
            ]
    return ranked


def _rank(row: tuple[int, Order]) -> tuple[int, datetime, int]:
    return row[0], row[1].issued, row[1].order_id


async def snapshot_ladders(
    session: AsyncSession, hubs: Sequence[Hub], region_id: int, orders: Sequence[Order], depth: int = DEPTH
) -> list[StoredLadders]:
    """The ladders of the `hubs` in `region_id` over a new snapshot's `orders` (the region's whole book),
    for ingest to store in the snapshot's own transaction (ingest/store.store_snapshot): a hauling search
    then reads them (repository.stored_ladders) instead of ranking the book."""
    here = [hub for hub in hubs if hub.region_id == region_id]
    if not here:
        return []
    places = await hub_places(session, here)
    if not places:
        return []
    graph = await load_graph(session)
    systems = await repository.region_system_ids(session, region_id)
    stored = []
    for place in places:
        cover = bid_cover(place, graph, systems)
        with repository.collector_paused():
            asks, bids = book_ladders(orders, cover, depth)
        stored.append(StoredLadders(place.station_id, cover.key(depth), asks, bids))
    return stored


class LadderCache:
    """Each hub's ladders for its region's current snapshot, kept per process (the `market.books`
    resource): a snapshot never changes once stored and every hauling search reads the same five hubs, so
    the top of each book is read and ranked once per snapshot (about every 5 minutes), not once per search.
    One entry per hub: a newer snapshot (or a re-imported map, which moves the buy orders' cover) replaces
    it."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int, int], tuple[int, datetime, RouteGraph, HubLadders]] = {}

    def get(
        self, hub: HubPlace, version: tuple[int, datetime], graph: RouteGraph, depth: int
    ) -> HubLadders | None:
        entry = self._entries.get((hub.region_id, hub.station_id, depth))
        if entry is None or (entry[0], entry[1]) != version or entry[2] is not graph:
            return None
        return entry[3]

    def put(self, hub: HubPlace, graph: RouteGraph, depth: int, ladders: HubLadders) -> None:
        key = (hub.region_id, hub.station_id, depth)
        self._entries[key] = (ladders.snapshot_id, ladders.captured_at, graph, ladders)


async def _open_cache(context: AppContext) -> LadderCache:
    return LadderCache()


LADDERS: ResourceSpec[LadderCache] = ResourceSpec("market.books", _open_cache)
"""The process's LadderCache (AppSpec.resources)."""


async def hauling_search(
    session: AsyncSession,
    hubs: Sequence[HubPlace],
    rates: FeeRates,
    limits: HaulLimits,
    *,
    preference: Preference = "secure",
    limit: int | None = None,
    depth: int = DEPTH,
    cache: LadderCache | None = None,
) -> list[Haul]:
    """The hauling search over the hubs' regions' current snapshots (a region without one contributes
    nothing): per hub, the ladders `cache` holds for that snapshot, else those ingest stored beside it
    (repository.stored_ladders: one indexed row), else the top `depth` orders of each side of each type
    ranked by the database (repository.hub_ladders: a snapshot stored without them, a re-imported map,
    another depth); and one query for the types' volumes."""
    graph = await load_graph(session)
    asks_at: dict[str, Ladders] = {}
    bids_for: dict[str, Ladders] = {}
    for hub in hubs:
        version = await repository.current_snapshot(session, hub.region_id)
        if version is None:
            continue
        book = None if cache is None else cache.get(hub, version, graph, depth)
        if book is None:
            systems = await repository.region_system_ids(session, hub.region_id)
            cover = bid_cover(hub, graph, systems)
            book = await repository.stored_ladders(session, version, hub.station_id, cover.key(depth))
            if book is None:
                book = await repository.hub_ladders(session, hub.region_id, cover, depth)
            if book is None:
                continue
            if cache is not None:
                cache.put(hub, graph, depth, book)
        asks_at[hub.key], bids_for[hub.key] = book.asks, book.bids
    type_ids = sorted({t for side in (*asks_at.values(), *bids_for.values()) for t in side})
    volumes = await repository.packaged_volumes(session, type_ids)
    return search_ladders(hubs, asks_at, bids_for, volumes, graph, rates, limits, preference=preference,
                          limit=limit)  # fmt: skip


async def hub_places(session: AsyncSession, hubs: Sequence[Hub]) -> list[HubPlace]:
    """The configured hubs whose station the static data knows (others are left out)."""
    return [
        HubPlace(info.hub.key, info.hub.station_id, info.station.system_id, info.hub.region_id)
        for info in await repository.resolve_hubs(session, hubs)
        if info.station is not None
    ]
