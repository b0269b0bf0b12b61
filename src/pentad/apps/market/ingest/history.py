"""Daily market history: `GET /markets/{region_id}/history/?type_id=` for the types traded at each hub,
stored in the partitioned `market_history` and summed into `market_type_volume` (the daily volumes the
station trading scan ranks by).

ESI regenerates history once a day after downtime (~11:05 UTC). `market.schedule_history` (cron, 11:15
UTC) queues, per hub region, one `market.fetch_history {region_id, type_ids}` per batch of
HISTORY_BATCH types seen at the hub in the region's current book. A batch is all or nothing: every type is
fetched first (ingest lane, `ESI_PAGE_CONCURRENCY` at a time), then one transaction replaces the batch's
days within `HISTORY_RETENTION_DAYS` and recomputes their volumes; ESI trouble stores nothing, records a
`deferred`/`failed` run (kind `history`, with `retry_at`) and the job waits (`RetryLater`) as ESI says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import structlog
from sqlalchemy import delete, func, select, update

from pentad.apps.market.esi.client import EsiClient
from pentad.apps.market.esi.errors import EsiError
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.orders import ESI_QUEUE, hub_regions
from pentad.apps.market.models import BOOK_STATS, HISTORY, MarketRegionState, MarketTypeVolume
from pentad.apps.market.settings import MarketSettings
from pentad.core.context import AppContext, JobContext
from pentad.core.db.partitions import insert_rows, insert_target, tables_for
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import CronSpec, JobSpec, RetryLater

logger = structlog.get_logger("pentad.market.history")

KIND = "history"
FETCH_HISTORY = "market.fetch_history"
SCHEDULE_HISTORY = "market.schedule_history"
HISTORY_BATCH = 200
RETRY_FAILED = 600.0
"""Seconds before a batch that failed without ESI saying when is tried again."""


def history_path(region_id: int) -> str:
    return f"/markets/{region_id}/history/"


@dataclass(frozen=True)
class HistoryDay:
    date: date
    average: Decimal
    highest: Decimal
    lowest: Decimal
    volume: int
    order_count: int


def parse_history(body: bytes) -> list[HistoryDay]:
    """A history answer as days; ValueError, TypeError or KeyError when it is not the JSON ESI promises
    (the client retries it, then reports it malformed)."""
    items = orjson.loads(body)
    if not isinstance(items, list):
        raise TypeError("a history answer is a JSON array")
    return [
        HistoryDay(
            date.fromisoformat(str(item["date"])),
            Decimal(str(item["average"])),
            Decimal(str(item["highest"])),
            Decimal(str(item["lowest"])),
            int(item["volume"]),
            int(item["order_count"]),
        )
        for item in items
    ]


@dataclass(frozen=True)
class HistoryOutcome:
    region_id: int
    status: str
    """`ok`, `deferred` (ESI asked to wait `retry_after` s) or `failed`."""
    types: int = 0
    rows: int = 0
    retry_after: float | None = None
    detail: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def volumes(days: Sequence[HistoryDay], today: date) -> tuple[float, float, Decimal | None]:
    """(average daily volume over the last 7 days, over the last 30 days, volume-weighted average price
    over the last 30 days) — days without trades count as 0 (ESI lists only days with trades)."""
    last7 = [d for d in days if today - timedelta(days=7) <= d.date < today]
    last30 = [d for d in days if today - timedelta(days=30) <= d.date < today]
    units30 = sum(d.volume for d in last30)
    price = None
    if units30:
        price = (sum((d.average * d.volume for d in last30), Decimal(0)) / units30).quantize(Decimal("0.01"))
    return sum(d.volume for d in last7) / 7, units30 / 30, price


async def refresh_history(
    context: AppContext,
    client: EsiClient,
    region_id: int,
    type_ids: Sequence[int],
    *,
    now: Callable[[], datetime] = _utcnow,
) -> HistoryOutcome:
    """Fetch and store the history of `type_ids` in the region (see the module's doc)."""
    started = now()
    settings = context.app_settings(MarketSettings)
    limit = asyncio.Semaphore(max(1, client.config.page_concurrency))

    async def one(type_id: int) -> tuple[int, list[HistoryDay]]:
        async with limit:
            answer = await client.get(
                history_path(region_id), params={"type_id": type_id}, parse=parse_history
            )
            return type_id, answer.data or []

    try:
        fetched = dict(await asyncio.gather(*(one(type_id) for type_id in type_ids)))
    except EsiError as error:
        status = "deferred" if error.retry_after is not None else "failed"
        detail = f"{error.code}: {error}"
        wait = error.retry_after if error.retry_after is not None else RETRY_FAILED
        finished = now()
        async with context.database.transaction() as session:
            await store.add_run(
                session, kind=KIND, scope=str(region_id), started=started, finished=finished, status=status,
                detail=detail[:500], pages=0, rows=0, retry_at=finished + timedelta(seconds=wait),
            )  # fmt: skip
        logger.warning("market_history_not_stored", region_id=region_id, status=status, detail=detail)
        return HistoryOutcome(region_id, status, retry_after=error.retry_after, detail=detail)
    today = now().date()
    cutoff = today - timedelta(days=settings.history_retention_days)
    rows = [
        {
            "region_id": region_id, "type_id": type_id, "date": day.date, "average": day.average,
            "highest": day.highest, "lowest": day.lowest, "volume": day.volume,
            "order_count": day.order_count,
        }
        for type_id, days in fetched.items()
        for day in days
        if day.date >= cutoff
    ]  # fmt: skip
    async with context.database.transaction() as session:
        for table in await tables_for(
            session, HISTORY, _midnight(cutoff), _midnight(today + timedelta(days=1))
        ):
            await session.execute(
                delete(table).where(table.c.region_id == region_id, table.c.type_id.in_(list(fetched)))
            )
        await insert_rows(session, HISTORY, rows)
        await session.execute(
            delete(MarketTypeVolume).where(
                MarketTypeVolume.region_id == region_id, MarketTypeVolume.type_id.in_(list(fetched))
            )
        )
        for type_id, days in fetched.items():
            week, month, price = volumes(days, today)
            session.add(
                MarketTypeVolume(
                    region_id=region_id, type_id=type_id, avg_volume_7d=week, avg_volume_30d=month,
                    avg_price_30d=price,
                )
            )  # fmt: skip
        await session.execute(
            update(MarketRegionState)
            .where(MarketRegionState.region_id == region_id)
            .values(history_updated_at=now())
        )
        await store.add_run(
            session, kind=KIND, scope=str(region_id), started=started, finished=now(), status="ok",
            detail=None, pages=len(fetched), rows=len(rows),
        )  # fmt: skip
    return HistoryOutcome(region_id, "ok", len(fetched), len(rows))


async def hub_types(context: AppContext, region_id: int, station_ids: Sequence[int]) -> list[int]:
    """The types with orders at the region's hubs in its current book (from the book statistics)."""
    async with context.database.transaction(writes=False) as session:
        state = await session.get(MarketRegionState, region_id)
        if state is None or state.current_snapshot_id is None or state.captured_at is None:
            return []
        table = insert_target(BOOK_STATS, (await session.connection()).dialect.name, state.captured_at)
        rows = await session.scalars(
            select(func.distinct(table.c.type_id)).where(
                table.c.captured_at == state.captured_at,
                table.c.snapshot_id == state.current_snapshot_id,
                table.c.location_id.in_(list(station_ids)),
            )
        )
        return sorted(int(type_id) for type_id in rows)


# --- jobs --------------------------------------------------------------------------------------------------


async def fetch_history_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.fetch_history {region_id, type_ids}`: one batch; ESI asking to wait re-queues it."""
    client = context.resource(ESI_CLIENT)
    if client is None:
        logger.warning("market_esi_not_configured", region_id=payload.get("region_id"))
        return
    region_id = int(payload["region_id"])
    type_ids = [int(type_id) for type_id in payload["type_ids"]]
    outcome = await refresh_history(context.platform, client, region_id, type_ids)
    if outcome.status != "ok":
        raise RetryLater(max(outcome.retry_after or RETRY_FAILED, 1.0), reason=outcome.detail)


async def schedule_history_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.schedule_history` (daily after ESI's history is regenerated): one fetch per batch of types
    seen at each hub region's hubs, deduplicated per region, day and batch."""
    settings = context.platform.app_settings(MarketSettings)
    if settings.contact is None:
        return
    today = _utcnow().date().isoformat()
    for region_id in hub_regions(settings):
        stations = [hub.station_id for hub in settings.hub_list if hub.region_id == region_id]
        types = await hub_types(context.platform, region_id, stations)
        async with context.platform.database.transaction() as session:
            for index in range(0, len(types), HISTORY_BATCH):
                await enqueue(
                    session,
                    FETCH_HISTORY,
                    {"region_id": region_id, "type_ids": types[index : index + HISTORY_BATCH]},
                    dedupe_key=f"{FETCH_HISTORY}:{region_id}:{today}:{index // HISTORY_BATCH}",
                )


JOBS = (
    JobSpec(FETCH_HISTORY, fetch_history_job, queue=ESI_QUEUE, timeout=600, max_attempts=5),
    JobSpec(SCHEDULE_HISTORY, schedule_history_job, timeout=120),
)
CRON = (CronSpec(SCHEDULE_HISTORY, schedule="15 11 * * *"),)
