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

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository
from pentad.apps.market.analysis.depth import BookOrder, Fill, walk
from pentad.apps.market.analysis.fees import FeeRates
from pentad.apps.market.analysis.routes import Preference, Route, RouteGraph, load_graph
from pentad.apps.market.repository import BookOrderRow
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


def _profitable_units(asks: Sequence[BookOrder], bids: Sequence[BookOrder], tax: Decimal) -> int:
    """Units for which the next cheapest ask is below the next highest bid after tax (`asks` cheapest
    first, `bids` highest first)."""
    units, i, j = 0, 0, 0
    ask_left = asks[0].volume_remain if asks else 0
    bid_left = bids[0].volume_remain if bids else 0
    while i < len(asks) and j < len(bids):
        if asks[i].price >= bids[j].price * (1 - tax):
            break
        take = min(ask_left, bid_left)
        units += take
        ask_left -= take
        bid_left -= take
        if ask_left == 0:
            i += 1
            ask_left = asks[i].volume_remain if i < len(asks) else 0
        if bid_left == 0:
            j += 1
            bid_left = bids[j].volume_remain if j < len(bids) else 0
    return units


def _affordable_units(asks: Sequence[BookOrder], collateral: Decimal) -> int:
    """The most units whose cost, cheapest asks first (as given), stays within `collateral`."""
    units, spent = 0, Decimal(0)
    for order in asks:
        if order.price <= 0:
            continue
        fit = min(order.volume_remain, int((collateral - spent) // order.price))
        units += fit
        spent += fit * order.price
        if fit < order.volume_remain:
            break
    return units


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
    (equal prices oldest first)."""
    q = _profitable_units(asks, bids, rates.sales_tax)
    limited_by = "book"
    if volume_m3 > 0:
        cargo_units = int(Decimal(repr(limits.cargo_m3)) // Decimal(repr(volume_m3)))
        if cargo_units < q:
            q, limited_by = cargo_units, "cargo"
    affordable = _affordable_units(asks, limits.collateral)
    if affordable < q:
        q, limited_by = affordable, "collateral"
    if q < 1:
        return None
    sell_fill = walk(bids, q, "sell")
    if sell_fill.filled < 1:
        return None
    q = sell_fill.filled
    buy_fill = walk(asks, q, "buy")
    tax = rates.sales_tax_on(sell_fill.cost)
    profit = sell_fill.cost - tax - buy_fill.cost
    if profit <= 0:
        return None
    jumps = route.jumps
    per_m3 = None
    if volume_m3 > 0:
        per_m3 = (profit / (q * Decimal(repr(volume_m3)))).quantize(CENT, rounding=ROUND_HALF_UP)
    return Haul(
        type_id=type_id,
        source=source.key,
        destination=destination.key,
        route=route,
        units=q,
        cost=buy_fill.cost,
        revenue=sell_fill.cost,
        tax=tax,
        profit=profit,
        profit_per_jump=(profit / max(jumps, 1)).quantize(CENT, rounding=ROUND_HALF_UP),
        profit_per_m3=per_m3,
        volume_m3=volume_m3,
        buy_fill=buy_fill,
        sell_fill=sell_fill,
        limited_by=limited_by,
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
    asks_at: dict[str, dict[int, list[BookOrder]]] = {}
    bids_for: dict[str, dict[int, list[BookOrder]]] = {}
    for hub in hubs:
        sells: dict[int, list[BookOrder]] = {}
        buys: dict[int, list[BookOrder]] = {}
        for order in orders.get(hub.key, ()):
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
    keep = 1 - rates.sales_tax
    found: list[Haul] = []
    for source in hubs:
        for destination in hubs:
            if source.key == destination.key:
                continue
            if source.system_id not in graph or destination.system_id not in graph:
                continue
            route = graph.route(source.system_id, destination.system_id, preference)
            if route is None:
                continue
            bids = bids_for[destination.key]
            asks_here = asks_at[source.key]
            for type_id in sorted(asks_here.keys() & bids.keys()):
                asks, wanted = asks_here[type_id], bids[type_id]
                if asks[0].price >= wanted[0].price * keep:
                    continue  # not even the best pair pays the tax
                found_haul = haul(
                    type_id,
                    source,
                    destination,
                    route,
                    asks,
                    wanted,
                    volumes.get(type_id, 0.0),
                    rates,
                    limits,
                )
                if found_haul is not None:
                    found.append(found_haul)
    found.sort(key=lambda h: (-h.profit_per_jump, -h.profit, h.type_id, h.source, h.destination))
    return found if limit is None else found[:limit]


async def hauling_search(
    session: AsyncSession,
    hubs: Sequence[HubPlace],
    rates: FeeRates,
    limits: HaulLimits,
    *,
    preference: Preference = "secure",
    limit: int | None = None,
) -> list[Haul]:
    """The hauling search over the hubs' regions' current snapshots (a region without one contributes
    nothing): one orders query per hub, one for the types' volumes."""
    orders: dict[str, list[BookOrderRow]] = {}
    for hub in hubs:
        book = await repository.current_book(
            session, hub.region_id, [hub.station_id], ranged_buys=True, with_stats=False
        )
        orders[hub.key] = book.orders if book is not None else []
    type_ids = sorted({order.type_id for rows in orders.values() for order in rows})
    volumes = await repository.packaged_volumes(session, type_ids)
    graph = await load_graph(session)
    return search(hubs, orders, volumes, graph, rates, limits, preference=preference, limit=limit)


async def hub_places(session: AsyncSession, hubs: Sequence[Hub]) -> list[HubPlace]:
    """The configured hubs whose station the static data knows (others are left out)."""
    return [
        HubPlace(info.hub.key, info.hub.station_id, info.station.system_id, info.hub.region_id)
        for info in await repository.resolve_hubs(session, hubs)
        if info.station is not None
    ]
