"""Daily market history against the fake ESI, on every engine: the days of each type are stored in the
partitioned history table (older than HISTORY_RETENTION_DAYS left out) with their 7- and 30-day volumes,
the next run replaces them rather than adding to them, and a failing ESI stores nothing and says when it
is tried again; the daily schedule queues one batch per hub region from the types at its hubs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from pentad.apps.market import repository
from pentad.apps.market.ingest import history
from pentad.apps.market.ingest import orders as ingest
from pentad.apps.market.models import MarketIngestRun, MarketTypeVolume
from pentad.core.jobs.models import Job
from pentad.core.platform import Platform
from tests.apps.market.esi_support import FROZEN_AT, FakeEsiServer

REGION = 10000002
TRITANIUM, PYERITE = 34, 35
TODAY = FROZEN_AT.date()


def _day(days_ago: int, average: float, volume: int) -> dict[str, Any]:
    return {
        "date": (TODAY - timedelta(days=days_ago)).isoformat(), "average": average, "highest": average + 1,
        "lowest": average - 1, "order_count": 10, "volume": volume,
    }  # fmt: skip


async def _refresh(platform: Platform, esi: FakeEsiServer, types: list[int]) -> history.HistoryOutcome:
    async with esi.client(max_retries=1) as client:
        return await history.refresh_history(platform, client, REGION, types, now=esi.fake.now)


async def _stored(platform: Platform, type_id: int) -> list[tuple[date, Decimal, int]]:
    async with platform.database.transaction(writes=False) as session:
        rows = await repository.price_history(session, REGION, type_id, TODAY - timedelta(days=1000))
    return [(row.date, row.average, row.volume) for row in rows]


async def test_history_is_stored_with_its_volumes_replaced_next_time_and_kept_when_esi_fails(
    platform: Platform, esi: FakeEsiServer
) -> None:
    # Tritanium: 700 units a day at 5.00 over the last 7 days, 2,300 at 6.00 ten days ago, and a day 500
    # days ago (past the 400 days kept: left out). Pyerite never traded in the region.
    esi.fake.histories[(REGION, TRITANIUM)] = [_day(d, 5.0, 700) for d in range(1, 8)] + [
        _day(10, 6.0, 2300),
        _day(500, 1.0, 1),
    ]
    first = await _refresh(platform, esi, [TRITANIUM, PYERITE])
    assert (first.status, first.types, first.rows) == ("ok", 2, 8)
    stored = await _stored(platform, TRITANIUM)
    assert len(stored) == 8
    assert stored[-1] == (TODAY - timedelta(days=1), Decimal("5.00"), 700)
    async with platform.database.transaction(writes=False) as session:
        volume = {
            row.type_id: row
            for row in await session.scalars(
                select(MarketTypeVolume).where(MarketTypeVolume.region_id == REGION)
            )
        }
    # 7 days: 4,900 / 7 = 700; 30 days: (4,900 + 2,300) / 30 = 240;
    # price: (4,900 x 5 + 2,300 x 6) / 7,200 = 38,300 / 7,200 = 5.3194 -> 5.32.
    assert (volume[TRITANIUM].avg_volume_7d, volume[TRITANIUM].avg_volume_30d) == (700.0, 240.0)
    assert volume[TRITANIUM].avg_price_30d == Decimal("5.32")
    assert (volume[PYERITE].avg_volume_7d, volume[PYERITE].avg_price_30d) == (0.0, None)

    # The next day's answer replaces the stored days of the type.
    esi.fake.histories[(REGION, TRITANIUM)] = [_day(1, 5.5, 100)]
    assert (await _refresh(platform, esi, [TRITANIUM])).status == "ok"
    assert await _stored(platform, TRITANIUM) == [(TODAY - timedelta(days=1), Decimal("5.50"), 100)]

    # ESI failing: nothing is written, the run says why and when it is tried again.
    esi.fake.inject("status", status=503, times=100)
    failed = await _refresh(platform, esi, [TRITANIUM])
    assert failed.status in ("deferred", "failed")
    assert await _stored(platform, TRITANIUM) == [(TODAY - timedelta(days=1), Decimal("5.50"), 100)]
    async with platform.database.transaction(writes=False) as session:
        runs = list(
            await session.scalars(
                select(MarketIngestRun)
                .where(MarketIngestRun.kind == "history")
                .order_by(MarketIngestRun.started_at)
            )
        )
    assert [run.status for run in runs] == ["ok", "ok", failed.status]
    assert runs[-1].retry_at is not None
    assert runs[-1].detail == failed.detail


async def test_the_daily_schedule_queues_the_types_seen_at_each_hub(
    platform: Platform, esi: FakeEsiServer
) -> None:
    esi.fake.generate_book(REGION, pages=1, page_size=30, locations=((60003760, 30000142),))
    async with esi.client() as client:
        assert (await ingest.refresh_region(platform, client, REGION, now=esi.fake.now)).status == "ok"
    types = await history.hub_types(platform, REGION, [60003760])
    assert types

    class _Context:
        def __init__(self) -> None:
            self.platform = platform

    await history.schedule_history_job(_Context(), {})  # type: ignore[arg-type]
    await history.schedule_history_job(_Context(), {})  # type: ignore[arg-type]  # same day: no duplicates
    async with platform.database.transaction(writes=False) as session:
        jobs = list(await session.scalars(select(Job).where(Job.name == history.FETCH_HISTORY)))
    assert [(job.payload["region_id"], job.payload["type_ids"]) for job in jobs] == [(REGION, types)]
