"""Region order-book snapshots: fetch a region's whole book from ESI, store it all or nothing.

A refresh (`refresh_region`, run by the job `market.refresh_region`, the cron job `market.schedule` and
`pentad market ingest run REGION`):

1. reads the region's state; before the stored book's `Expires` nothing is asked (ESI's rule; a refetch
   before it can get an application banned), unless forced;
2. fetches every page of one generation (esi/pages.py): page 1 with its previous ETag (a 304 for the
   same Last-Modified: the book did not change; the run is `not_modified` and only the expiry moves),
   the other pages concurrently, each parsed at once into compact `Order` tuples; a page that answers
   304 is the same as in the current snapshot and its rows are copied forward;
3. computes the per-type statistics (ingest/stats.py) and, for each trade hub in the region, the ladders
   hauling reads (analysis/hauling.snapshot_ladders);
4. stores, in ONE write transaction opened only after every byte was fetched: the snapshot, its orders
   (in batches), its statistics, its hub ladders, the region's state pointing at it, and the run row
   `ok`. Readers only
   follow the region's current snapshot, so a failure anywhere (ESI, parsing, the database) leaves the
   previous snapshot current and no row of the failed one; the run row is then written on its own as
   `deferred` (ESI asks us to wait: the job retries at the time it gave, without spending an attempt) or
   `failed`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import structlog

from pentad.apps.market.analysis.hauling import snapshot_ladders
from pentad.apps.market.esi.client import EsiClient
from pentad.apps.market.esi.errors import EsiError, EsiInconsistentPages
from pentad.apps.market.esi.pages import PagedResult, PreviousPages, fetch_pages
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.events import SNAPSHOT_STORED, SnapshotStored
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.settings import APP_NAME, MarketSettings
from pentad.core.context import AppContext, JobContext
from pentad.core.events import emit
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import CronSpec, JobSpec, RetryLater

logger = structlog.get_logger(__name__)

KIND = "orders"


def orders_path(region_id: int) -> str:
    return f"/markets/{region_id}/orders/"


def _issued(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("issued is not a string")
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_orders_page(page: int, body: bytes) -> list[Order]:
    """Page `page` of `GET /markets/{region_id}/orders/` as Orders; ValueError, TypeError or KeyError when
    it is not the JSON ESI promises (the client retries such a page)."""
    items = orjson.loads(body)
    if not isinstance(items, list):
        raise TypeError("an orders page is a JSON array")
    return [
        Order(
            int(item["order_id"]),
            int(item["type_id"]),
            int(item["location_id"]),
            int(item["system_id"]),
            bool(item["is_buy_order"]),
            float(item["price"]),
            int(item["volume_remain"]),
            int(item["volume_total"]),
            int(item["min_volume"]),
            str(item["range"]),
            _issued(item["issued"]),
            int(item["duration"]),
            page,
        )
        for item in items
    ]


@dataclass(frozen=True)
class RefreshOutcome:
    """How a refresh ended. status: `ok`, `not_modified`, `not_due` (before Expires: nothing asked or
    stored), `deferred` (ESI asked us to wait `retry_after` seconds) or `failed`."""

    region_id: int
    status: str
    pages: int = 0
    rows: int = 0
    copied_pages: int = 0
    snapshot_id: Any = None
    expires_at: datetime | None = None
    retry_after: float | None = None
    detail: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def refresh_region(
    context: AppContext,
    client: EsiClient,
    region_id: int,
    *,
    force: bool = False,
    now: Callable[[], datetime] = _utcnow,
) -> RefreshOutcome:
    """Refresh one region's book (see the module's doc). ESI trouble ends in a `deferred` or `failed`
    outcome with its run row stored; a database failure rolls back, stores a `failed` run and raises.
    Counted on /metrics (`_count`)."""
    try:
        outcome = await _refresh_region(context, client, region_id, force=force, now=now)
    except Exception:
        _count(context, "failed")
        raise
    _count(context, outcome.status, outcome.rows)
    return outcome


def _count(context: AppContext, status: str, orders: int = 0) -> None:
    """The ingest's figures for the dashboards and alerts (deploy/grafana, deploy/prometheus): refreshes by
    outcome, orders stored, and when a book was last known current (ESI errors: `_record_failure`)."""
    if status == "not_due":
        return
    context.metrics.for_app(APP_NAME).counter(
        "region_refreshes",
        "Region order-book refreshes, by outcome (ok, not_modified, deferred, failed).",
        ["outcome"],
    ).labels(status).inc()
    if status in {"ok", "not_modified"}:
        context.metrics.for_app(APP_NAME).gauge(
            "book_current_timestamp_seconds",
            "When a region's order book was last stored or confirmed unchanged by ESI (Unix time).",
            multiprocess_mode="max",
        ).set(time.time())
    if status == "ok":
        context.metrics.for_app(APP_NAME).counter(
            "orders_stored", "Market orders stored in new region snapshots."
        ).inc(orders)


async def _refresh_region(
    context: AppContext,
    client: EsiClient,
    region_id: int,
    *,
    force: bool,
    now: Callable[[], datetime],
) -> RefreshOutcome:
    started = now()
    async with context.database.transaction(writes=False) as session:
        state = await store.region_state(session, region_id)
    if not force and state is not None and state.expires_at is not None and state.expires_at > started:
        return RefreshOutcome(
            region_id,
            "not_due",
            expires_at=state.expires_at,
            retry_after=(state.expires_at - started).total_seconds(),
        )
    previous = PreviousPages()
    if state is not None and state.snapshot is not None:
        previous = PreviousPages(state.snapshot.etags, state.snapshot.last_modified, None)
    try:
        result = await fetch_pages(
            client,
            orders_path(region_id),
            params={"order_type": "all"},
            previous=previous,
            parse=parse_orders_page,
        )
        if result.not_modified:
            return await _not_modified(context, region_id, result, started, now())
        orders, copied = await _assemble(context, client, region_id, state, result)
    except EsiError as error:
        return await _record_failure(context, region_id, started, now(), error)
    captured_at = now().replace(microsecond=0)  # whole seconds: every engine stores it the same
    stats = book_stats(orders, captured_at)
    async with context.database.transaction(writes=False) as session:
        hubs = context.app_settings(MarketSettings).hub_list
        ladders = await snapshot_ladders(session, hubs, region_id, orders)
    try:
        async with context.database.transaction() as session:
            snapshot_id = await store.store_snapshot(
                session,
                region_id=region_id,
                captured_at=captured_at,
                last_modified=result.last_modified,
                expires_at=result.expires_at,
                pages=result.pages,
                etags=result.etags,
                orders=orders,
                stats=stats,
                ladders=ladders,
            )
            await store.add_run(
                session,
                kind=KIND,
                scope=str(region_id),
                started=started,
                finished=now(),
                status="ok",
                detail=f"{copied} unchanged page(s) copied" if copied else None,
                pages=result.pages,
                rows=len(orders),
                snapshot_id=snapshot_id,
            )
            await emit(
                session,
                SNAPSHOT_STORED.name,
                SnapshotStored(
                    region_id=region_id,
                    snapshot_id=int(snapshot_id),
                    captured_at=captured_at,
                    orders=len(orders),
                ),
            )
    except Exception as error:
        finished = now()
        await _store_run(
            context, region_id, started, finished, "failed", f"storing failed: {type(error).__name__}",
            finished + timedelta(seconds=SCHEDULE_EVERY),
        )  # fmt: skip
        raise
    logger.info(
        "market_snapshot_stored", region_id=region_id, pages=result.pages, orders=len(orders), copied=copied
    )
    return RefreshOutcome(region_id, "ok", result.pages, len(orders), copied, snapshot_id, result.expires_at)


async def _assemble(
    context: AppContext,
    client: EsiClient,
    region_id: int,
    state: store.RegionState | None,
    result: PagedResult[list[Order]],
) -> tuple[list[Order], int]:
    """Every order of the new generation, the 304 pages' rows read back from the current snapshot (pages
    it no longer holds, e.g. expired by retention, are fetched again without their ETag)."""
    copied: dict[int, list[Order]] = {}
    unchanged = result.unchanged_pages
    if unchanged and state is not None and state.snapshot is not None:
        async with context.database.transaction(writes=False) as session:
            copied = await store.snapshot_pages(session, state.snapshot, unchanged)
    from_snapshot = len([page for page in unchanged if copied.get(page)])
    for page in unchanged:
        if copied.get(page):
            continue
        answer = await client.get(
            orders_path(region_id),
            params={"order_type": "all", "page": page},
            parse=partial(parse_orders_page, page),
        )
        if answer.data is None or answer.last_modified != result.last_modified:
            raise EsiInconsistentPages(
                f"page {page} changed generation while refetched", retry_after=client.config.expiry_margin + 1
            )
        copied[page] = answer.data
        if answer.etag:
            result.etags[page] = answer.etag
    orders: list[Order] = []
    for page in range(1, result.pages + 1):
        rows = result.data.get(page)
        if rows is None:
            rows = copied.get(page, [])
        orders.extend(rows)
    return orders, from_snapshot


async def _not_modified(
    context: AppContext,
    region_id: int,
    result: PagedResult[list[Order]],
    started: datetime,
    finished: datetime,
) -> RefreshOutcome:
    async with context.database.transaction() as session:
        await store.extend_expiry(session, region_id, result.expires_at)
        await store.add_run(
            session,
            kind=KIND,
            scope=str(region_id),
            started=started,
            finished=finished,
            status="not_modified",
            detail=None,
            pages=result.pages,
            rows=0,
        )
    return RefreshOutcome(region_id, "not_modified", result.pages, expires_at=result.expires_at)


async def _record_failure(
    context: AppContext, region_id: int, started: datetime, finished: datetime, error: EsiError
) -> RefreshOutcome:
    status = "deferred" if error.retry_after is not None else "failed"
    detail = f"{error.code}: {error}"
    context.metrics.for_app(APP_NAME).counter(
        "esi_errors", "ESI errors that ended a region refresh, by the error's code.", ["code"]
    ).labels(error.code).inc()
    # Deferred: the job comes back when ESI said (RetryLater); failed: the schedule queues it again.
    wait = error.retry_after if error.retry_after is not None else float(SCHEDULE_EVERY)
    await _store_run(
        context, region_id, started, finished, status, detail, finished + timedelta(seconds=wait)
    )
    logger.warning("market_snapshot_not_stored", region_id=region_id, status=status, detail=detail)
    return RefreshOutcome(region_id, status, retry_after=error.retry_after, detail=detail)


async def _store_run(
    context: AppContext,
    region_id: int,
    started: datetime,
    finished: datetime,
    status: str,
    detail: str,
    retry_at: datetime,
) -> None:
    async with context.database.transaction() as session:
        await store.add_run(
            session,
            kind=KIND,
            scope=str(region_id),
            started=started,
            finished=finished,
            status=status,
            detail=detail[:500],
            pages=0,
            rows=0,
            retry_at=retry_at,
        )


def schedule_delay(
    expires_at: datetime | None, now: datetime, rand: Callable[[], float] = random.random
) -> timedelta:
    """How long after now to refresh a region whose book expires at `expires_at`: just after it, with a
    few seconds of jitter so the hubs do not all go at once (ESI: schedule after Expires, never on a fixed
    */5 cron)."""
    jitter = timedelta(seconds=2 + 8 * rand())
    if expires_at is None or expires_at <= now:
        return jitter
    return expires_at - now + jitter


def hub_regions(settings: MarketSettings) -> list[int]:
    """The distinct regions of the trade hubs, in order."""
    return list(dict.fromkeys(hub.region_id for hub in settings.hub_list))


def downtime_left(settings: MarketSettings, now: datetime) -> float:
    """Seconds until EVE's daily downtime window ends, 0 outside it (ESI answers errors during it)."""
    start, end = settings.downtime_window
    today = now.date()
    begins = datetime.combine(today, start, UTC)
    ends = datetime.combine(today, end, UTC)
    if begins <= now < ends:
        return (ends - now).total_seconds()
    return 0.0


# --- jobs --------------------------------------------------------------------------------------------------

REFRESH_REGION = "market.refresh_region"
SCHEDULE = "market.schedule"
SCHEDULE_EVERY = 60
ESI_QUEUE = "market_esi"


def refresh_dedupe_key(region_id: int) -> str:
    return f"{REFRESH_REGION}:{region_id}"


async def refresh_region_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.refresh_region {region_id, force?}`: refresh one region's book; ESI asking us to wait (429,
    420, 5xx, inconsistent pages) or the daily downtime re-queues the job for then (RetryLater, no attempt
    spent)."""
    region_id = int(payload["region_id"])
    settings = context.platform.app_settings(MarketSettings)
    waiting = downtime_left(settings, _utcnow())
    if waiting > 0:
        raise RetryLater(waiting + 5, reason="EVE daily downtime")
    client = context.resource(ESI_CLIENT)
    if client is None:
        logger.warning("market_esi_not_configured", region_id=region_id)
        return
    outcome = await refresh_region(context.platform, client, region_id, force=bool(payload.get("force")))
    if outcome.status == "deferred" and outcome.retry_after is not None:
        raise RetryLater(max(outcome.retry_after, 1.0), reason=outcome.detail)


async def schedule_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.schedule` (every minute): each hub region gets one pending refresh, due just after its
    stored book's Expires (ESI: schedule from Expires, never a fixed */5 cron)."""
    settings = context.platform.app_settings(MarketSettings)
    if settings.contact is None:
        return
    regions = hub_regions(settings)
    now = _utcnow()
    async with context.platform.database.transaction() as session:
        expiry = await store.expiries(session, regions)
        for region_id in regions:
            await enqueue(
                session,
                REFRESH_REGION,
                {"region_id": region_id},
                delay=schedule_delay(expiry.get(region_id), now),
                dedupe_key=refresh_dedupe_key(region_id),
            )


JOBS = (
    JobSpec(REFRESH_REGION, refresh_region_job, queue=ESI_QUEUE, timeout=600, max_attempts=5),
    JobSpec(SCHEDULE, schedule_job, timeout=60),
)
CRON = (CronSpec(SCHEDULE, every=SCHEDULE_EVERY),)
