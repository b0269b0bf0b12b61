"""The market app's SQL. This part: the static data (SDE) — replacing it on import, and the lookups the
rest of the app builds on (types, systems and their security, stations, the stargate graph, hubs, the fee
skills). Later parts add their own sections (snapshots, character data, alerts, advisor)."""

from __future__ import annotations

import base64
import gc
import hashlib
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import BigInteger, and_, cast, delete, func, insert, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from pentad.apps.market.analysis.depth import BookOrder, Level
from pentad.apps.market.models import (
    BOOK_STATS,
    HISTORY,
    HUB_LADDERS,
    ORDERS,
    MarketConstellation,
    MarketGroup,
    MarketMarketGroup,
    MarketNpcCorporation,
    MarketRegion,
    MarketRegionState,
    MarketSdeImport,
    MarketStargate,
    MarketStation,
    MarketSystem,
    MarketType,
    MarketTypeVolume,
)
from pentad.apps.market.settings import Hub
from pentad.core.db.base import utcnow
from pentad.core.db.partitions import insert_target, tables_for

if TYPE_CHECKING:
    from pentad.apps.market.sde import SdeData

BATCH = 5000
"""Rows per INSERT statement of an import (executemany in chunks keeps statements and memory bounded)."""

STATIC_TABLES: tuple[Any, ...] = (
    MarketRegion,
    MarketConstellation,
    MarketSystem,
    MarketStargate,
    MarketType,
    MarketGroup,
    MarketMarketGroup,
    MarketNpcCorporation,
)


# --- static data: import --------------------------------------------------------------------------------


async def _insert(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(model), list(rows[start : start + BATCH]))


async def replace_static(session: AsyncSession, data: SdeData, *, source: str) -> MarketSdeImport:
    """Replace every static table with `data` (NPC stations too; player structures stay) and record the
    import. Runs in the caller's transaction: readers see the old data until it commits."""
    for model in STATIC_TABLES:
        await session.execute(delete(model))
    await session.execute(delete(MarketStation).where(MarketStation.kind == "npc"))
    await _insert(session, MarketRegion, data.regions)
    await _insert(session, MarketConstellation, data.constellations)
    await _insert(session, MarketSystem, data.systems)
    await _insert(session, MarketStargate, data.stargates)
    await _insert(session, MarketGroup, data.groups)
    await _insert(session, MarketMarketGroup, data.market_groups)
    await _insert(session, MarketType, data.types)
    await _insert(session, MarketNpcCorporation, data.corporations)
    now = utcnow()
    await _insert(session, MarketStation, [{**row, "updated_at": now} for row in data.stations])
    record = MarketSdeImport(build=data.build, source=source[:500], imported_at=now, counts=data.counts())
    session.add(record)
    await session.flush()
    return record


# --- static data: status ----------------------------------------------------------------------------------


async def latest_import(session: AsyncSession) -> MarketSdeImport | None:
    found: MarketSdeImport | None = await session.scalar(
        select(MarketSdeImport).order_by(MarketSdeImport.imported_at.desc()).limit(1)
    )
    return found


async def static_counts(session: AsyncSession) -> dict[str, int]:
    """Rows in each static table now (stations: NPC stations and known structures)."""
    counts: dict[str, int] = {}
    for name, model in (
        ("regions", MarketRegion),
        ("constellations", MarketConstellation),
        ("systems", MarketSystem),
        ("stargates", MarketStargate),
        ("types", MarketType),
        ("groups", MarketGroup),
        ("market_groups", MarketMarketGroup),
        ("corporations", MarketNpcCorporation),
        ("stations", MarketStation),
    ):
        counts[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    return counts


# --- static data: lookups ---------------------------------------------------------------------------------


async def get_type(session: AsyncSession, type_id: int) -> MarketType | None:
    return await session.get(MarketType, type_id)


async def types_by_ids(session: AsyncSession, type_ids: Sequence[int]) -> dict[int, MarketType]:
    if not type_ids:
        return {}
    rows = await session.scalars(select(MarketType).where(MarketType.id.in_(set(type_ids))))
    return {row.id: row for row in rows}


def _like_prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


async def find_types(
    session: AsyncSession, prefix: str, *, limit: int = 20, on_market: bool = True
) -> list[MarketType]:
    """Types whose name starts with `prefix` (any case), shortest names first; `on_market`: only those
    with a market group (tradeable) and published."""
    query = select(MarketType).where(func.lower(MarketType.name).like(_like_prefix(prefix), escape="\\"))
    if on_market:
        query = query.where(MarketType.market_group_id.is_not(None), MarketType.published.is_(True))
    query = query.order_by(func.length(MarketType.name), MarketType.name).limit(limit)
    return list(await session.scalars(query))


async def get_system(session: AsyncSession, system_id: int) -> MarketSystem | None:
    return await session.get(MarketSystem, system_id)


async def find_system(session: AsyncSession, name: str) -> MarketSystem | None:
    """The solar system of that exact name (any case)."""
    found: MarketSystem | None = await session.scalar(
        select(MarketSystem).where(func.lower(MarketSystem.name) == name.lower()).limit(1)
    )
    return found


async def get_region(session: AsyncSession, region_id: int) -> MarketRegion | None:
    return await session.get(MarketRegion, region_id)


async def get_station(session: AsyncSession, station_id: int) -> MarketStation | None:
    return await session.get(MarketStation, station_id)


async def stations_by_ids(session: AsyncSession, station_ids: Sequence[int]) -> dict[int, MarketStation]:
    if not station_ids:
        return {}
    rows = await session.scalars(select(MarketStation).where(MarketStation.id.in_(set(station_ids))))
    return {row.id: row for row in rows}


async def get_corporation(session: AsyncSession, corporation_id: int) -> MarketNpcCorporation | None:
    return await session.get(MarketNpcCorporation, corporation_id)


async def system_securities(session: AsyncSession) -> dict[int, float]:
    """Every solar system's true security status."""
    rows = await session.execute(select(MarketSystem.id, MarketSystem.security))
    return {row[0]: row[1] for row in rows}


async def stargate_graph(session: AsyncSession) -> dict[int, list[int]]:
    """The stargate graph: each system's neighbours (sorted, each once)."""
    rows = await session.execute(select(MarketStargate.system_id, MarketStargate.dest_system_id))
    graph: dict[int, set[int]] = {}
    for system, destination in rows:
        graph.setdefault(system, set()).add(destination)
        graph.setdefault(destination, set())
    return {system: sorted(neighbours) for system, neighbours in graph.items()}


async def fee_skill_ids(session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
    """Type ids of the skills `names` (the fee formulas' Accounting, Broker Relations, Advanced Broker
    Relations), looked up by exact name in the imported types; missing names are left out."""
    rows = await session.execute(
        select(MarketType.name, MarketType.id).where(MarketType.name.in_(list(names)))
    )
    found: dict[str, int] = {row[0]: row[1] for row in rows}
    return {name: found[name] for name in names if name in found}


@dataclass(frozen=True)
class HubInfo:
    """A configured hub as the static data knows it (None where the station, its system or its region is
    not in the imported data)."""

    hub: Hub
    station: MarketStation | None
    system: MarketSystem | None
    region: MarketRegion | None

    @property
    def ok(self) -> bool:
        return (
            self.station is not None
            and self.system is not None
            and self.region is not None
            and self.station.region_id == self.hub.region_id
        )


async def resolve_hubs(session: AsyncSession, hubs: Sequence[Hub]) -> list[HubInfo]:
    stations = await stations_by_ids(session, [hub.station_id for hub in hubs])
    infos = []
    for hub in hubs:
        station = stations.get(hub.station_id)
        system = await get_system(session, station.system_id) if station else None
        region = await get_region(session, hub.region_id)
        infos.append(HubInfo(hub, station, system, region))
    return infos


# --- order books: what the station scan and the hauling search read --------------------------------------


class BookOrderRow(NamedTuple):
    """One order of a region's current book (prices exact, as stored)."""

    order_id: int
    type_id: int
    location_id: int
    system_id: int
    is_buy: bool
    price: Decimal
    volume_remain: int
    volume_total: int
    min_volume: int
    range: str
    issued: datetime


class BookStatRow(NamedTuple):
    location_id: int
    type_id: int
    best_bid: Decimal | None
    best_ask: Decimal | None
    bid_count: int
    ask_count: int
    bid_units: int
    ask_units: int
    updates_last_hour: int


@dataclass(frozen=True)
class CurrentBook:
    """The orders and per-type statistics of a region's current snapshot at some stations."""

    region_id: int
    snapshot_id: int
    captured_at: datetime
    orders: list[BookOrderRow]
    stats: list[BookStatRow]


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def current_book(
    session: AsyncSession,
    region_id: int,
    location_ids: Sequence[int],
    *,
    ranged_buys: bool = False,
    with_stats: bool = True,
) -> CurrentBook | None:
    """The region's current snapshot at `location_ids`: its orders (one query on the book index) and its
    book statistics (one query). `ranged_buys`: also the region's buy orders placed elsewhere whose range
    reaches beyond their own station (the caller decides which of them cover a station). None when the
    region has no snapshot yet."""
    state = await session.get(MarketRegionState, region_id)
    if state is None or state.current_snapshot_id is None or state.captured_at is None:
        return None
    snapshot_id, captured_at = state.current_snapshot_id, state.captured_at
    connection = await session.connection()
    engine = connection.dialect.name

    async def exists(table: Any) -> bool:
        if table is ORDERS.table or table is BOOK_STATS.table:
            return True
        return bool(await connection.run_sync(lambda sync: sync.dialect.has_table(sync, table.name)))

    locations = list(location_ids)
    orders: list[BookOrderRow] = []
    table = insert_target(ORDERS, engine, captured_at)
    if locations and await exists(table):
        where: ColumnElement[bool] = table.c.location_id.in_(locations)
        if ranged_buys:
            where = or_(where, and_(table.c.is_buy.is_(True), table.c.range != "station"))
        raw = [type_coerce(table.c[name], NullType()) for name in ("price", "issued")]
        rows = await session.execute(
            select(
                table.c.order_id, table.c.type_id, table.c.location_id, table.c.system_id, table.c.is_buy,
                raw[0], table.c.volume_remain, table.c.volume_total, table.c.min_volume, table.c.range,
                raw[1],
            )
            .where(table.c.captured_at == captured_at, table.c.snapshot_id == snapshot_id, where)
            .order_by(table.c.issued, table.c.order_id)
        )  # fmt: skip
        # Price and time come back as the driver gives them (the column types' result processors cost more
        # than the scan itself at a hub's 100k+ orders): converted here once each.
        orders = [
            BookOrderRow(
                r[0], r[1], r[2], r[3], bool(r[4]), _decimal(r[5]), r[6], r[7], r[8], r[9], _moment(r[10]),
            )
            for r in rows
        ]  # fmt: skip
    stats: list[BookStatRow] = []
    stats_table = insert_target(BOOK_STATS, engine, captured_at)
    if with_stats and locations and await exists(stats_table):
        c = stats_table.c
        rows = await session.execute(
            select(
                c.location_id, c.type_id, c.best_bid, c.best_ask, c.bid_count, c.ask_count, c.bid_units,
                c.ask_units, c.updates_last_hour,
            ).where(c.captured_at == captured_at, c.snapshot_id == snapshot_id, c.location_id.in_(locations))
        )  # fmt: skip
        stats = [
            BookStatRow(
                int(r[0]), int(r[1]), None if r[2] is None else Decimal(r[2]),
                None if r[3] is None else Decimal(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7]),
                int(r[8]),
            )
            for r in rows
        ]  # fmt: skip
    return CurrentBook(region_id, int(snapshot_id), captured_at, orders, stats)


async def daily_volumes(session: AsyncSession, region_id: int) -> dict[int, float]:
    """Each type's average daily volume over the last 7 days in the region (from history), where known."""
    rows = await session.execute(
        select(MarketTypeVolume.type_id, MarketTypeVolume.avg_volume_7d).where(
            MarketTypeVolume.region_id == region_id
        )
    )
    return {int(type_id): float(volume) for type_id, volume in rows}


async def packaged_volumes(session: AsyncSession, type_ids: Sequence[int]) -> dict[int, float]:
    """Packaged volume (m3) of each type (its volume where no packaged volume is recorded)."""
    if not type_ids:
        return {}
    rows = await session.execute(
        select(MarketType.id, MarketType.packaged_volume_m3, MarketType.volume_m3).where(
            MarketType.id.in_(set(type_ids))
        )
    )
    return {int(r[0]): float(r[1] or r[2] or 0.0) for r in rows}


# --- hauling: the top of each side of a hub's book --------------------------------------------------------


Ladders = dict[int, list[Level]]
"""One side of a hub's book by type id, each type's orders in walking order (prices in cents)."""


@dataclass(frozen=True)
class BidCover:
    """Which buy orders of a region can be sold into at a station: those at the station, those ranging
    over the region, those ranging over the station's system, and those with a range of N jumps placed in
    one of `within[N]` (the systems at most N jumps from the station's; "N" as ESI writes it)."""

    station_id: int
    system_id: int
    within: dict[str, list[int]]

    def key(self, depth: int) -> str:
        """A fingerprint of this cover and `depth` (what stored ladders were computed for)."""
        within = sorted((jumps, sorted(systems)) for jumps, systems in self.within.items() if systems)
        text = repr((depth, self.station_id, self.system_id, within))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class HubLadders:
    """A hub's current book as hauling reads it: per type, the sell orders at the station cheapest first,
    and the buy orders that can be sold into there highest first (equal prices oldest first), each side
    cut to its top `depth` orders."""

    snapshot_id: int
    captured_at: datetime
    asks: Ladders
    bids: Ladders


async def current_snapshot(session: AsyncSession, region_id: int) -> tuple[int, datetime] | None:
    """The id and capture time of the region's current snapshot (None: none stored yet)."""
    state = await session.get(MarketRegionState, region_id)
    if state is None or state.current_snapshot_id is None or state.captured_at is None:
        return None
    return int(state.current_snapshot_id), state.captured_at


async def hub_ladders(
    session: AsyncSession, region_id: int, cover: BidCover, depth: int
) -> HubLadders | None:
    """The top `depth` orders of each side of every type's book at `cover.station_id` in the region's
    current snapshot (two queries; the ranking is the database's window function, so the rest of a deep
    book never leaves it). None when the region has no snapshot yet."""
    state = await session.get(MarketRegionState, region_id)
    if state is None or state.current_snapshot_id is None or state.captured_at is None:
        return None
    snapshot_id, captured_at = state.current_snapshot_id, state.captured_at
    connection = await session.connection()
    table = insert_target(ORDERS, connection.dialect.name, captured_at)
    if table is not ORDERS.table and not await connection.run_sync(
        lambda sync: sync.dialect.has_table(sync, table.name)
    ):
        return HubLadders(int(snapshot_id), captured_at, {}, {})
    c = table.c
    current = and_(c.captured_at == captured_at, c.snapshot_id == snapshot_id)
    covered: list[ColumnElement[bool]] = [
        c.location_id == cover.station_id,
        c.range == "region",
        and_(c.range == "solarsystem", c.system_id == cover.system_id),
    ]
    covered.extend(
        and_(c.range == jumps, c.system_id.in_(systems)) for jumps, systems in cover.within.items() if systems
    )
    sides: list[Ladders] = []
    for is_buy, where in (
        (False, and_(c.location_id == cover.station_id, c.is_buy.is_(False))),
        (True, and_(c.is_buy.is_(True), or_(*covered))),
    ):
        price_order = c.price.desc() if is_buy else c.price.asc()
        rank = func.row_number().over(partition_by=c.type_id, order_by=(price_order, c.issued, c.order_id))
        # Prices leave the database as whole cents: no Decimal is made for the rows of five books.
        cents = cast(func.round(c.price * 100), BigInteger)
        ranked = (
            select(
                c.type_id, c.order_id, cents.label("cents"), c.volume_remain, c.min_volume, rank.label("rank")
            )
            .where(current, where, c.price > 0)
            .subquery()
        )
        result = await session.execute(
            select(ranked.c.type_id, ranked.c.order_id, ranked.c.cents, ranked.c.volume_remain,
                   ranked.c.min_volume)
            .where(ranked.c.rank <= depth)
            .order_by(ranked.c.type_id, ranked.c.rank)
        )  # fmt: skip
        ladders: Ladders = {}
        ladder: list[Level] = []
        last = None
        for type_id, order_id, price, remain, minimum in result.tuples():
            if type_id != last:
                ladder = ladders[type_id] = []
                last = type_id
            ladder.append(Level(order_id, int(price), remain, minimum))
        sides.append(ladders)
    return HubLadders(int(snapshot_id), captured_at, sides[0], sides[1])


@dataclass(frozen=True)
class StoredLadders:
    """A hub's ladders as ingest stores them beside its snapshot (`market_hub_ladders`)."""

    station_id: int
    cover: str
    """BidCover.key(depth) of the cover and depth they were computed with."""
    asks: Ladders
    bids: Ladders


def pack_ladders(ladders: Ladders) -> str:
    """One side of a hub's ladders as text: 64-bit little-endian integers — per type its id, its number of
    orders and each order's id, cents, units left and minimum volume — zlib-compressed (fast level), in
    base64 (a text column: the MariaDB driver, aiomysql, cannot bind bytes)."""
    flat = array("q")
    for type_id, ladder in ladders.items():
        flat.append(type_id)
        flat.append(len(ladder))
        for level in ladder:
            flat.extend(level)
    if sys.byteorder == "big":
        flat.byteswap()
    return base64.b64encode(zlib.compress(flat.tobytes(), 1)).decode("ascii")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while ladders are built or unpacked: that makes tens or
    hundreds of thousands of acyclic objects at once, and each collection it would trigger walks every
    object the process holds (a region's book at ingest: the build took 2-4x longer). Only around
    synchronous code: nothing awaits inside, so no other task runs meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def unpack_ladders(data: str) -> Ladders:
    """The ladders `pack_ladders` packed."""
    flat = array("q")
    flat.frombytes(zlib.decompress(base64.b64decode(data)))
    if sys.byteorder == "big":
        flat.byteswap()
    values = flat.tolist()
    make = Level._make
    ladders: Ladders = {}
    at, end = 0, len(values)
    while at < end:
        type_id, count = values[at], values[at + 1]
        start, at = at + 2, at + 2 + 4 * count
        fields = iter(values[start:at])
        ladders[type_id] = list(map(make, zip(fields, fields, fields, fields, strict=True)))
    return ladders


async def stored_ladders(
    session: AsyncSession, snapshot: tuple[int, datetime], station_id: int, cover: str
) -> HubLadders | None:
    """The ladders ingest stored for `station_id` in `snapshot` (id, capture time), when they were computed
    for `cover` (BidCover.key); None otherwise (not a hub then, another map or depth, or pruned)."""
    snapshot_id, captured_at = snapshot
    connection = await session.connection()
    table = insert_target(HUB_LADDERS, connection.dialect.name, captured_at)
    if table is not HUB_LADDERS.table and not await connection.run_sync(
        lambda sync: sync.dialect.has_table(sync, table.name)
    ):
        return None
    c = table.c
    row = (
        await session.execute(
            select(c.cover, c.asks, c.bids).where(
                c.captured_at == captured_at, c.snapshot_id == snapshot_id, c.station_id == station_id
            )
        )
    ).one_or_none()
    if row is None or row[0] != cover:
        return None
    with collector_paused():
        asks, bids = unpack_ladders(row[1]), unpack_ladders(row[2])
    return HubLadders(int(snapshot_id), captured_at, asks, bids)


async def region_system_ids(session: AsyncSession, region_id: int) -> list[int]:
    """The solar systems of a region."""
    rows = await session.scalars(select(MarketSystem.id).where(MarketSystem.region_id == region_id))
    return [int(system) for system in rows]


# --- what the advisor's tools read ------------------------------------------------------------------------


async def type_book(
    session: AsyncSession, region_id: int, station_id: int, type_id: int
) -> tuple[datetime, list[BookOrder], list[BookOrder]] | None:
    """One type's orders at a station in the region's current snapshot: when it was captured, its sell
    orders cheapest first and its buy orders at the station highest first (equal prices oldest first).
    None when the region has no snapshot yet."""
    state = await session.get(MarketRegionState, region_id)
    if state is None or state.current_snapshot_id is None or state.captured_at is None:
        return None
    connection = await session.connection()
    table = insert_target(ORDERS, connection.dialect.name, state.captured_at)
    if table is not ORDERS.table and not await connection.run_sync(
        lambda sync: sync.dialect.has_table(sync, table.name)
    ):
        return state.captured_at, [], []
    c = table.c
    rows = await session.execute(
        select(c.is_buy, c.order_id, type_coerce(c.price, NullType()), c.volume_remain, c.min_volume)
        .where(
            c.captured_at == state.captured_at,
            c.snapshot_id == state.current_snapshot_id,
            c.location_id == station_id,
            c.type_id == type_id,
        )
        .order_by(c.issued, c.order_id)
    )
    asks: list[BookOrder] = []
    bids: list[BookOrder] = []
    for is_buy, order_id, price, remain, minimum in rows:
        # SQLite hands back 4.00 as 4: prices are shown to the cent.
        cents = _decimal(price).quantize(Decimal("0.01"))
        (bids if is_buy else asks).append(BookOrder(order_id, cents, remain, minimum))
    asks.sort(key=lambda order: order.price)
    bids.sort(key=lambda order: order.price, reverse=True)
    return state.captured_at, asks, bids


class HistoryRow(NamedTuple):
    date: date
    average: Decimal
    highest: Decimal
    lowest: Decimal
    volume: int
    order_count: int


async def price_history(session: AsyncSession, region_id: int, type_id: int, since: date) -> list[HistoryRow]:
    """A type's daily history in a region from `since` on, oldest first."""
    start = datetime.combine(since, time(0), tzinfo=UTC)
    end = datetime.now(UTC) + timedelta(days=1)
    found: list[HistoryRow] = []
    for table in await tables_for(session, HISTORY, start, end):
        c = table.c
        rows = await session.execute(
            select(c.date, c.average, c.highest, c.lowest, c.volume, c.order_count).where(
                c.region_id == region_id, c.type_id == type_id, c.date >= since
            )
        )
        for r in rows:
            day = r[0] if isinstance(r[0], date) else date.fromisoformat(str(r[0]))
            found.append(
                HistoryRow(day, _decimal(r[1]), _decimal(r[2]), _decimal(r[3]), int(r[4]), int(r[5]))
            )
    found.sort(key=lambda row: row.date)
    return found
