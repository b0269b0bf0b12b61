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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository
from pentad.apps.market.analysis.depth import BookOrder, Fill, walk_sorted
from pentad.apps.market.analysis.fees import FeeRates
from pentad.apps.market.analysis.routes import Preference, Route, RouteGraph, load_graph
from pentad.apps.market.repository import BidCover, BookOrderRow, Ladders
from pentad.apps.market.settings import Hub

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


def _price(order: BookOrder) -> Decimal:
    return order.price


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


def _units_to_move(
    asks: Sequence[BookOrder],
    bids: Sequence[BookOrder],
    keep: Decimal,
    cargo_units: int | None,
    collateral: Decimal,
) -> tuple[int, str]:
    """The units worth moving and what set them, in one walk of the top of both ladders (`asks` cheapest
    first, `bids` highest first): unit by unit while ``ask < bid x keep``, stopping as soon as the hold
    (`cargo_units`, None: no limit) or the collateral (the cheapest asks' cost) is reached. Same answer as
    ``min(profitable units, cargo units, affordable units)``; when the hold and the collateral allow the
    same number of units, the hold is named."""
    units, spent = 0, Decimal(0)
    i = j = 0
    ask_left = asks[0].volume_remain if asks else 0
    bid_left = bids[0].volume_remain if bids else 0
    while i < len(asks) and j < len(bids):
        price = asks[i].price
        if price >= bids[j].price * keep:
            break
        take = ask_left if ask_left < bid_left else bid_left
        room = None if cargo_units is None else cargo_units - units
        afford = int((collateral - spent) // price)
        if (room is not None and take > room) or take > afford:
            if room is not None and room <= afford:
                return units + room, "cargo"
            return units + afford, "collateral"
        units += take
        spent += take * price
        ask_left -= take
        bid_left -= take
        if ask_left == 0:
            i += 1
            ask_left = asks[i].volume_remain if i < len(asks) else 0
        if bid_left == 0:
            j += 1
            bid_left = bids[j].volume_remain if j < len(bids) else 0
    return units, "book"


def _walked(ladder: Sequence[BookOrder], quantity: int, *, selling: bool) -> tuple[int, Decimal]:
    """Units filled and their ISK, as `walk_sorted` finds them (without recording the takes)."""
    left, cost = quantity, Decimal(0)
    for order in ladder:
        if left == 0:
            break
        remain = order.volume_remain
        if remain <= 0 or (selling and left < order.min_volume and left < remain):
            continue
        units = left if left < remain else remain
        cost += order.price * units
        left -= units
    return quantity - left, cost


class _Outcome(NamedTuple):
    units: int
    limited_by: str
    cost: Decimal
    revenue: Decimal
    tax: Decimal
    profit: Decimal
    profit_per_jump: Decimal


def _evaluate(
    asks: Sequence[BookOrder],
    bids: Sequence[BookOrder],
    jumps: int,
    volume_m3: float,
    rates: FeeRates,
    limits: HaulLimits,
) -> _Outcome | None:
    cargo_units = None
    if volume_m3 > 0:
        cargo_units = int(Decimal(repr(limits.cargo_m3)) // Decimal(repr(volume_m3)))
    q, limited_by = _units_to_move(asks, bids, 1 - rates.sales_tax, cargo_units, limits.collateral)
    if q < 1:
        return None
    q, revenue = _walked(bids, q, selling=True)
    if q < 1:
        return None
    _, cost = _walked(asks, q, selling=False)
    tax = rates.sales_tax_on(revenue)
    profit = revenue - tax - cost
    if profit <= 0:
        return None
    per_jump = (profit / max(jumps, 1)).quantize(CENT, rounding=ROUND_HALF_UP)
    return _Outcome(q, limited_by, cost, revenue, tax, profit, per_jump)


def haul(
    type_id: int,
    source: HubPlace,
    destination: HubPlace,
    route: Route,
    asks: Sequence[BookOrder],
    bids: Sequence[BookOrder],
    volume_m3: float,
    rates: FeeRates,
    limits: HaulLimits,
) -> Haul | None:
    """One type's haul from `source` to `destination`; None when no unit makes a profit. `asks`: the sell
    orders at the source, cheapest first; `bids`: the buy orders covering the destination, highest first
    (equal prices oldest first); prices are Decimals above zero."""
    outcome = _evaluate(asks, bids, route.jumps, volume_m3, rates, limits)
    if outcome is None:
        return None
    return _haul(type_id, source.key, destination.key, route, asks, bids, volume_m3, outcome)


def _haul(
    type_id: int,
    source: str,
    destination: str,
    route: Route,
    asks: Sequence[BookOrder],
    bids: Sequence[BookOrder],
    volume_m3: float,
    outcome: _Outcome,
) -> Haul:
    q = outcome.units
    per_m3 = None
    if volume_m3 > 0:
        per_m3 = (outcome.profit / (q * Decimal(repr(volume_m3)))).quantize(CENT, rounding=ROUND_HALF_UP)
    return Haul(
        type_id=type_id,
        source=source,
        destination=destination,
        route=route,
        units=q,
        cost=outcome.cost,
        revenue=outcome.revenue,
        tax=outcome.tax,
        profit=outcome.profit,
        profit_per_jump=outcome.profit_per_jump,
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
            book = BookOrder(order.order_id, order.price, order.volume_remain, order.min_volume)
            if not order.is_buy:
                if order.location_id == hub.station_id:
                    sells.setdefault(order.type_id, []).append(book)
            elif covers(order, hub, graph):
                buys.setdefault(order.type_id, []).append(book)
        for ladder in sells.values():
            ladder.sort(key=_price)
        for ladder in buys.values():
            ladder.sort(key=_price, reverse=True)
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
    keep = 1 - rates.sales_tax
    # Every candidate is priced without recording its fills; only the hauls answered get them.
    found: list[tuple[Decimal, Decimal, int, str, str, Route, _Outcome]] = []
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
                if asks[0].price >= wanted[0].price * keep:
                    continue  # not even the best pair pays the tax
                outcome = _evaluate(asks, wanted, route.jumps, volumes.get(type_id, 0.0), rates, limits)
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


async def hauling_search(
    session: AsyncSession,
    hubs: Sequence[HubPlace],
    rates: FeeRates,
    limits: HaulLimits,
    *,
    preference: Preference = "secure",
    limit: int | None = None,
    depth: int = DEPTH,
) -> list[Haul]:
    """The hauling search over the hubs' regions' current snapshots (a region without one contributes
    nothing): per hub two queries for the top `depth` orders of each side of each type, ranked by the
    database (repository.hub_ladders), one for the types' volumes."""
    graph = await load_graph(session)
    asks_at: dict[str, Ladders] = {}
    bids_for: dict[str, Ladders] = {}
    for hub in hubs:
        systems = await repository.region_system_ids(session, hub.region_id)
        book = await repository.hub_ladders(session, hub.region_id, bid_cover(hub, graph, systems), depth)
        asks_at[hub.key] = book.asks if book is not None else {}
        bids_for[hub.key] = book.bids if book is not None else {}
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
