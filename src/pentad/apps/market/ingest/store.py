"""The SQL of the order-book ingest: region state, snapshots, their orders and statistics, ingest runs.

Orders and statistics go to partitioned tables (core/db/partitions.py): the rows of one snapshot share
its `captured_at`, so each batch goes to one target table (`insert_target`: the table itself, or on
SQLite the period's own table, made here when missing). Inserts are executemany batches of
`BATCH_ROWS` rows of plain tuples-as-dicts built once, the fastest path every engine's driver has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.ingest.stats import BookStats, Order
from pentad.apps.market.models import (
    BOOK_STATS,
    ORDERS,
    MarketIngestRun,
    MarketRegionState,
    MarketSnapshot,
)
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
) -> Any:
    """Store one whole snapshot and make it the region's current one; returns its id."""
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
    target = await _target(session, ORDERS, captured_at)
    # Batches of plain dicts: SQLAlchemy sends each as one executemany (insertmanyvalues where it helps).
    for start in range(0, len(orders), BATCH_ROWS):
        batch = orders[start : start + BATCH_ROWS]
        await session.execute(
            insert(target),
            [
                {
                    "captured_at": captured_at,
                    "snapshot_id": snapshot_id,
                    "order_id": o.order_id,
                    "type_id": o.type_id,
                    "location_id": o.location_id,
                    "system_id": o.system_id,
                    "is_buy": o.is_buy,
                    "price": o.price,
                    "volume_remain": o.volume_remain,
                    "volume_total": o.volume_total,
                    "min_volume": o.min_volume,
                    "range": o.range,
                    "issued": o.issued,
                    "duration": o.duration,
                    "page": o.page,
                }
                for o in batch
            ],
        )
    stats_target = await _target(session, BOOK_STATS, captured_at)
    for start in range(0, len(stats), BATCH_ROWS):
        await session.execute(
            insert(stats_target),
            [
                {
                    "captured_at": captured_at,
                    "snapshot_id": snapshot_id,
                    "location_id": s.location_id,
                    "type_id": s.type_id,
                    "best_bid": s.best_bid,
                    "best_ask": s.best_ask,
                    "bid_count": s.bid_count,
                    "ask_count": s.ask_count,
                    "bid_units": s.bid_units,
                    "ask_units": s.ask_units,
                    "updates_last_hour": s.updates_last_hour,
                }
                for s in stats[start : start + BATCH_ROWS]
            ],
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
) -> None:
    session.add(
        MarketIngestRun(
            snapshot_id=snapshot_id,
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
