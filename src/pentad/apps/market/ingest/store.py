"""The SQL of the order-book ingest: region state, snapshots, their orders and statistics, ingest runs.

Orders and statistics go to partitioned tables (core/db/partitions.py): the rows of one snapshot share
its `captured_at`, so each batch goes to one target table (`insert_target`: the table itself, or on
SQLite the period's own table, made here when missing). Inserts are executemany batches of
`BATCH_ROWS` plain tuples handed to the driver (`_insert_rows`), the fastest path every engine's driver
has short of COPY."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pentad.apps.market.ingest.stats import BookStats, Order
from pentad.apps.market.models import (
    BOOK_STATS,
    HUB_LADDERS,
    ORDERS,
    MarketIngestRun,
    MarketRegionState,
    MarketSnapshot,
)
from pentad.apps.market.repository import StoredLadders, pack_ladders
from pentad.core.db.partitions import PartitionedTable, insert_target

BATCH_ROWS = 10_000

ORDER_COLUMNS = (
    "order_id",
    "type_id",
    "location_id",
    "system_id",
    "is_buy",
    "price",
    "volume_remain",
    "volume_total",
    "min_volume",
    "range",
    "issued",
    "duration",
    "page",
)


@dataclass(frozen=True)
class SnapshotRef:
    """The region's current snapshot, as a refresh needs it."""

    id: Any
    captured_at: datetime
    last_modified: datetime | None
    etags: dict[int, str]


@dataclass(frozen=True)
class RegionState:
    region_id: int
    expires_at: datetime | None
    snapshot: SnapshotRef | None


async def region_state(session: AsyncSession, region_id: int) -> RegionState | None:
    row = (
        await session.execute(
            select(
                MarketRegionState.expires_at,
                MarketSnapshot.id,
                MarketSnapshot.captured_at,
                MarketSnapshot.last_modified,
                MarketSnapshot.etag_set,
            )
            .select_from(MarketRegionState)
            .outerjoin(MarketSnapshot, MarketSnapshot.id == MarketRegionState.current_snapshot_id)
            .where(MarketRegionState.region_id == region_id)
        )
    ).one_or_none()
    if row is None:
        return None
    expires_at, snapshot_id, captured_at, last_modified, etag_set = row
    snapshot = None
    if snapshot_id is not None:
        etags = {int(page): str(etag) for page, etag in (etag_set or {}).items()}
        snapshot = SnapshotRef(snapshot_id, captured_at, last_modified, etags)
    return RegionState(region_id, expires_at, snapshot)


def _row_columns(table: Table, constants: Sequence[str]) -> tuple[str, ...]:
    """The columns of `table` after `constants`, in the table's order (the order of an INSERT's values)."""
    return tuple(column.name for column in table.c if column.name not in constants)


ORDER_ROW = _row_columns(ORDERS.table, ("captured_at", "snapshot_id"))
STATS_ROW = _row_columns(BOOK_STATS.table, ("captured_at", "snapshot_id"))
_order_row = attrgetter(*ORDER_ROW)
_stats_row = attrgetter(*STATS_ROW)


async def _insert_rows(
    connection: AsyncConnection,
    table: Table,
    constants: Mapping[str, Any],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """INSERT `rows` (values of the table's other columns, in its order) with `constants` (its leading
    columns) on every row, as executemany batches sent straight to the driver: the statement is compiled
    once, each value goes through its column type's bind processor (a constant once, not per row), and
    SQLAlchemy builds no per-row parameter dicts, the bulk of its cost at a few hundred thousand rows."""
    if not rows:
        return
    dialect = connection.dialect
    names = [*constants, *_row_columns(table, tuple(constants))]
    compiled = insert(table).values({name: bindparam(name) for name in names}).compile(dialect=dialect)
    if compiled.positiontup is None or list(compiled.positiontup) != names:
        raise RuntimeError(f"{dialect.name}: the INSERT's parameters are not positional in the table's order")
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    head = tuple(
        value if process is None else process(value)
        for value, process in zip(constants.values(), processors, strict=False)
    )
    row_processors = [(index, process) for index, process in enumerate(processors[len(head) :]) if process]
    sql = str(compiled)
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        if row_processors:
            columns_of = [list(column) for column in zip(*batch, strict=True)]
            for index, process in row_processors:
                columns_of[index] = [None if value is None else process(value) for value in columns_of[index]]
            batch = list(zip(*columns_of, strict=True))
        await connection.exec_driver_sql(sql, [head + row for row in batch])


async def _target(session: AsyncSession, spec: PartitionedTable, captured_at: datetime) -> Table:
    connection = await session.connection()
    target = insert_target(spec, connection.dialect.name, captured_at)
    if target is not spec.table:
        await connection.run_sync(lambda sync: target.create(sync, checkfirst=True))
    return target


async def snapshot_pages(
    session: AsyncSession, snapshot: SnapshotRef, pages: Sequence[int]
) -> dict[int, list[Order]]:
    """The orders of `pages` in `snapshot`, by page (a page the snapshot no longer holds is absent)."""
    connection = await session.connection()
    table = insert_target(ORDERS, connection.dialect.name, snapshot.captured_at)
    if table is not ORDERS.table and not await connection.run_sync(
        lambda sync: sync.dialect.has_table(sync, table.name)
    ):
        return {}
    columns = [table.c[name] for name in ORDER_COLUMNS]
    result = await session.execute(
        select(*columns).where(
            table.c.captured_at == snapshot.captured_at,
            table.c.snapshot_id == snapshot.id,
            table.c.page.in_(list(pages)),
        )
    )
    by_page: dict[int, list[Order]] = {}
    for row in result:
        order = Order(
            int(row[0]), int(row[1]), int(row[2]), int(row[3]), bool(row[4]), float(row[5]), int(row[6]),
            int(row[7]), int(row[8]), str(row[9]), row[10], int(row[11]), int(row[12]),
        )  # fmt: skip
        by_page.setdefault(order.page, []).append(order)
    return by_page


async def snapshot_locations(session: AsyncSession, snapshot_id: int, captured_at: datetime) -> list[int]:
    """The distinct location ids of a snapshot's orders (none when its partition is gone)."""
    connection = await session.connection()
    table = insert_target(ORDERS, connection.dialect.name, captured_at)
    if table is not ORDERS.table and not await connection.run_sync(
        lambda sync: sync.dialect.has_table(sync, table.name)
    ):
        return []
    result = await session.scalars(
        select(table.c.location_id)
        .where(table.c.captured_at == captured_at, table.c.snapshot_id == snapshot_id)
        .distinct()
    )
    return [int(location_id) for location_id in result]


async def store_snapshot(
    session: AsyncSession,
    *,
    region_id: int,
    captured_at: datetime,
    last_modified: datetime | None,
    expires_at: datetime | None,
    pages: int,
    etags: dict[int, str],
    orders: Sequence[Order],
    stats: Sequence[BookStats],
    ladders: Sequence[StoredLadders] = (),
) -> Any:
    """Store one whole snapshot (with its hubs' `ladders`, hauling.snapshot_ladders) and make it the
    region's current one; returns its id."""
    snapshot = MarketSnapshot(
        region_id=region_id,
        captured_at=captured_at,
        last_modified=last_modified,
        expires_at=expires_at,
        pages=pages,
        orders=len(orders),
        status="ok",
        etag_set={str(page): etag for page, etag in sorted(etags.items())},
    )
    session.add(snapshot)
    await session.flush()
    snapshot_id = snapshot.id
    connection = await session.connection()
    constants = {"captured_at": captured_at, "snapshot_id": snapshot_id}
    await _insert_rows(
        connection,
        await _target(session, ORDERS, captured_at),
        constants,
        [_order_row(order) for order in orders],
    )
    await _insert_rows(
        connection,
        await _target(session, BOOK_STATS, captured_at),
        constants,
        [_stats_row(row) for row in stats],
    )
    await _insert_rows(
        connection,
        await _target(session, HUB_LADDERS, captured_at),
        constants,
        [(hub.station_id, hub.cover, pack_ladders(hub.asks), pack_ladders(hub.bids)) for hub in ladders],
    )
    values = {
        "current_snapshot_id": snapshot_id,
        "captured_at": captured_at,
        "expires_at": expires_at,
        "last_modified": last_modified,
    }
    changed = await session.execute(
        update(MarketRegionState).where(MarketRegionState.region_id == region_id).values(**values)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.add(MarketRegionState(region_id=region_id, **values))
        await session.flush()
    return snapshot_id


async def expiries(session: AsyncSession, region_ids: Sequence[int]) -> dict[int, datetime | None]:
    """When each region's stored book expires (regions never refreshed are absent)."""
    rows = await session.execute(
        select(MarketRegionState.region_id, MarketRegionState.expires_at).where(
            MarketRegionState.region_id.in_(list(region_ids))
        )
    )
    return {int(region_id): expires_at for region_id, expires_at in rows}


async def extend_expiry(session: AsyncSession, region_id: int, expires_at: datetime | None) -> None:
    """The book did not change: only its expiry moves."""
    await session.execute(
        update(MarketRegionState)
        .where(MarketRegionState.region_id == region_id)
        .values(expires_at=expires_at)
    )


async def add_run(
    session: AsyncSession,
    *,
    kind: str,
    scope: str,
    started: datetime,
    finished: datetime,
    status: str,
    detail: str | None,
    pages: int,
    rows: int,
    snapshot_id: Any = None,
    retry_at: datetime | None = None,
) -> None:
    session.add(
        MarketIngestRun(
            snapshot_id=snapshot_id,
            retry_at=retry_at,
            kind=kind,
            scope=scope,
            started_at=started,
            finished_at=finished,
            status=status,
            detail=detail,
            pages=pages,
            rows=rows,
        )
    )
    await session.flush()
