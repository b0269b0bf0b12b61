"""Region order-book ingest against the fake ESI, on every engine: a snapshot is stored whole or not at
all, nothing is asked before Expires, an unchanged book is a 304 no-op, unchanged pages are copied
forward, and statistics match the stored orders."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository, sde
from pentad.apps.market.analysis.hauling import DEPTH, bid_cover, hub_places
from pentad.apps.market.analysis.routes import load_graph
from pentad.apps.market.ingest import orders as ingest
from pentad.apps.market.ingest import store
from pentad.apps.market.models import (
    BOOK_STATS,
    ORDERS,
    MarketIngestRun,
    MarketRegionState,
    MarketSnapshot,
)
from pentad.apps.market.settings import Hub
from pentad.core.db.partitions import insert_target
from pentad.core.jobs.models import Job
from pentad.core.jobs.registry import RetryLater
from pentad.core.platform import Platform
from tests.apps.market.esi_support import FakeEsiServer
from tests.fakes.market.esi import make_orders

REGION = 10000002
LOCATIONS = ((60003760, 30000142), (60003761, 30000142), (1_035_466_617_946, 30000144))


async def _refresh(platform: Platform, esi: FakeEsiServer, **options: Any) -> ingest.RefreshOutcome:
    async with esi.client() as client:
        return await ingest.refresh_region(platform, client, REGION, now=esi.fake.now, **options)


async def _snapshot_orders(session: AsyncSession, snapshot_id: int, captured_at: datetime) -> list[Any]:
    table = insert_target(ORDERS, (await session.connection()).dialect.name, captured_at)
    rows = await session.execute(
        select(table.c.order_id, table.c.price, table.c.page, table.c.location_id, table.c.type_id,
               table.c.is_buy, table.c.volume_remain)
        .where(table.c.snapshot_id == snapshot_id)
        .order_by(table.c.order_id)
    )  # fmt: skip
    return list(rows)


async def _all_order_snapshots(session: AsyncSession) -> set[int]:
    """Every snapshot id that has order rows, in any period table."""
    ids: set[int] = set()
    captured = (await session.execute(select(MarketSnapshot.captured_at))).scalars().all()
    dialect = (await session.connection()).dialect.name
    for table in {insert_target(ORDERS, dialect, moment).name: insert_target(ORDERS, dialect, moment)
                  for moment in captured}.values():  # fmt: skip
        ids |= set((await session.execute(select(table.c.snapshot_id).distinct())).scalars())
    return ids


async def _state(session: AsyncSession) -> MarketRegionState | None:
    return await session.get(MarketRegionState, REGION, populate_existing=True)


async def _runs(session: AsyncSession) -> list[tuple[str, str | None]]:
    rows = await session.execute(
        select(MarketIngestRun.status, MarketIngestRun.detail).order_by(MarketIngestRun.started_at)
    )
    return [(status, detail) for status, detail in rows]


async def test_a_book_is_stored_as_one_snapshot_with_its_statistics(
    platform: Platform, esi: FakeEsiServer
) -> None:
    book = esi.fake.generate_book(REGION, pages=3, page_size=40, types=6, locations=LOCATIONS)
    outcome = await _refresh(platform, esi)
    assert outcome.status == "ok"
    assert (outcome.pages, outcome.rows, outcome.copied_pages) == (3, 120, 0)
    async with platform.database.transaction() as session:
        state = await _state(session)
        assert state is not None
        assert state.current_snapshot_id == outcome.snapshot_id
        assert state.expires_at == book.expires_at
        snapshot = await session.get(MarketSnapshot, outcome.snapshot_id)
        assert snapshot is not None
        assert (snapshot.pages, snapshot.orders, snapshot.last_modified) == (3, 120, book.last_modified)
        assert snapshot.etag_set == {str(page): book.etags[page - 1] for page in (1, 2, 3)}
        stored = await _snapshot_orders(session, snapshot.id, snapshot.captured_at)
        assert [(row.order_id, float(row.price)) for row in stored] == [
            (order["order_id"], order["price"]) for order in book.orders
        ]
        assert {row.page for row in stored} == {1, 2, 3}
        # The statistics agree with the stored orders, computed here independently.
        expected: dict[tuple[int, int], list[Any]] = defaultdict(lambda: [None, None, 0, 0, 0, 0])
        for row in stored:
            entry = expected[(row.location_id, row.type_id)]
            price = float(row.price)
            if row.is_buy:
                entry[0] = price if entry[0] is None else max(entry[0], price)
                entry[2] += 1
                entry[4] += row.volume_remain
            else:
                entry[1] = price if entry[1] is None else min(entry[1], price)
                entry[3] += 1
                entry[5] += row.volume_remain
        stats_table = insert_target(
            BOOK_STATS, (await session.connection()).dialect.name, snapshot.captured_at
        )
        stats = await session.execute(select(stats_table).where(stats_table.c.snapshot_id == snapshot.id))
        got = {
            (s.location_id, s.type_id): [
                None if s.best_bid is None else float(s.best_bid),
                None if s.best_ask is None else float(s.best_ask),
                s.bid_count, s.ask_count, s.bid_units, s.ask_units,
            ]
            for s in stats
        }  # fmt: skip
        assert got == dict(expected)
        assert await _runs(session) == [("ok", None)]


async def test_nothing_is_asked_before_expires_and_an_unchanged_book_is_a_304_no_op(
    platform: Platform, esi: FakeEsiServer
) -> None:
    esi.fake.set_book(REGION, make_orders(REGION, count=50, locations=LOCATIONS), page_size=20)
    first = await _refresh(platform, esi)
    assert first.status == "ok"
    asked = len(esi.fake.requests)

    early = await _refresh(platform, esi)
    assert early.status == "not_due"
    assert len(esi.fake.requests) == asked, "asked ESI before Expires"

    esi.fake.advance(301)
    later = await _refresh(platform, esi)
    assert later.status == "not_modified"
    assert [(seen.page, seen.status) for seen in esi.fake.requests[asked:]] == [(1, 304)]
    async with platform.database.transaction() as session:
        state = await _state(session)
        assert state is not None
        assert state.current_snapshot_id == first.snapshot_id
        assert first.expires_at is not None
        assert state.expires_at == first.expires_at + timedelta(seconds=301)
        assert await session.scalar(select(func.count()).select_from(MarketSnapshot)) == 1
        assert [status for status, _ in await _runs(session)] == ["ok", "not_modified"]


async def test_a_failing_page_mid_snapshot_leaves_the_previous_snapshot_current(
    platform: Platform, esi: FakeEsiServer
) -> None:
    esi.fake.generate_book(REGION, pages=20, page_size=50, locations=LOCATIONS)
    first = await _refresh(platform, esi)
    assert first.status == "ok"
    esi.fake.advance(301)  # the next generation, whose page 15 keeps failing
    esi.fake.inject("status", status=503, page=15, times=100)
    failed = await _refresh(platform, esi)
    assert failed.status == "deferred"
    assert failed.retry_after is not None
    assert failed.detail is not None
    assert failed.detail.startswith("esi_unavailable")
    async with platform.database.transaction() as session:
        state = await _state(session)
        assert state is not None
        assert state.current_snapshot_id == first.snapshot_id
        assert await session.scalar(select(func.count()).select_from(MarketSnapshot)) == 1
        assert await _all_order_snapshots(session) == {first.snapshot_id}
        assert [status for status, _ in await _runs(session)] == ["ok", "deferred"]


async def test_a_database_failure_while_storing_leaves_nothing_half_written(
    platform: Platform, esi: FakeEsiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    esi.fake.generate_book(REGION, pages=4, page_size=30, locations=LOCATIONS)
    first = await _refresh(platform, esi)
    esi.fake.advance(301)
    real_target = store._target

    async def failing_target(session: AsyncSession, spec: Any, captured_at: datetime) -> Any:
        if spec is BOOK_STATS:  # the orders are in: fail before the statistics
            raise RuntimeError("disk full")
        return await real_target(session, spec, captured_at)

    monkeypatch.setattr(store, "_target", failing_target)
    with pytest.raises(RuntimeError, match="disk full"):
        await _refresh(platform, esi)
    async with platform.database.transaction() as session:
        state = await _state(session)
        assert state is not None
        assert state.current_snapshot_id == first.snapshot_id
        assert await _all_order_snapshots(session) == {first.snapshot_id}
        assert await _runs(session) == [("ok", None), ("failed", "storing failed: RuntimeError")]


async def test_pages_unchanged_since_the_last_snapshot_are_copied_forward(
    platform: Platform, esi: FakeEsiServer
) -> None:
    orders = make_orders(REGION, count=60, locations=LOCATIONS)
    esi.fake.set_book(REGION, orders, page_size=20)
    first = await _refresh(platform, esi)
    changed = [dict(order) for order in orders]
    changed[25]["price"] = 123.45  # page 2 only
    esi.fake.advance(301)
    esi.fake.set_book(REGION, changed, page_size=20)
    second = await _refresh(platform, esi)
    assert second.status == "ok"
    assert second.copied_pages == 2
    statuses = [(seen.page, seen.status) for seen in esi.fake.requests[-3:]]
    assert sorted(statuses) == [(1, 304), (2, 200), (3, 304)]
    async with platform.database.transaction() as session:
        snapshot = await session.get(MarketSnapshot, second.snapshot_id)
        assert snapshot is not None
        stored = await _snapshot_orders(session, snapshot.id, snapshot.captured_at)
        assert [(row.order_id, float(row.price), row.page) for row in stored] == [
            (order["order_id"], order["price"], index // 20 + 1) for index, order in enumerate(changed)
        ]
        state = await _state(session)
        assert state is not None
        assert state.current_snapshot_id == second.snapshot_id != first.snapshot_id


async def test_the_refresh_job_waits_when_esi_says_so(platform: Platform, esi: FakeEsiServer) -> None:
    esi.fake.set_book(REGION, make_orders(REGION, count=10), page_size=10)
    esi.fake.errors.extend([esi.fake.now().timestamp()] * esi.fake.error_limit)
    async with esi.client() as client:
        outcome = await ingest.refresh_region(platform, client, REGION, now=esi.fake.now)
    assert outcome.status == "deferred"
    assert outcome.detail is not None
    assert outcome.detail.startswith("esi_error_limited")


async def test_the_schedule_queues_one_refresh_per_hub_region_after_its_expiry(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        session.add(
            MarketRegionState(region_id=REGION, expires_at=datetime.now().astimezone() + timedelta(minutes=4))
        )
    context = _JobContext(platform)
    await ingest.schedule_job(context, {})  # type: ignore[arg-type]
    await ingest.schedule_job(context, {})  # type: ignore[arg-type]
    async with platform.database.transaction() as session:
        jobs = (await session.execute(select(Job).where(Job.name == ingest.REFRESH_REGION))).scalars().all()
    by_region = {job.payload["region_id"]: job for job in jobs}
    assert sorted(by_region) == [10000002, 10000043]
    assert len(jobs) == 2
    jita_due = by_region[10000002].run_at - datetime.now().astimezone()
    assert timedelta(minutes=4) < jita_due < timedelta(minutes=4, seconds=15)
    assert by_region[10000043].run_at - datetime.now().astimezone() < timedelta(seconds=15)


async def test_the_refresh_job_turns_an_esi_wait_into_retry_later(
    platform: Platform, esi: FakeEsiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    esi.fake.set_book(REGION, make_orders(REGION, count=10), page_size=10)
    esi.fake.inject("status", status=502, times=100)
    monkeypatch.setattr(ingest, "_utcnow", lambda: datetime(2026, 3, 2, 15, 0).astimezone())
    async with esi.client(max_retries=1) as client:
        with pytest.raises(RetryLater) as raised:
            await ingest.refresh_region_job(_JobContext(platform, client), {"region_id": REGION})  # type: ignore[arg-type]
    assert raised.value.reason is not None
    assert raised.value.reason.startswith("esi_unavailable")


class _JobContext:
    """The part of a JobContext the market's jobs use."""

    def __init__(self, platform: Platform, client: Any = None) -> None:
        self.platform = platform
        self.client = client

    def resource(self, spec: Any) -> Any:
        return self.client


async def test_the_refresh_job_waits_out_the_daily_downtime(
    platform: Platform, esi: FakeEsiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "_utcnow", lambda: datetime(2026, 3, 2, 11, 0, tzinfo=UTC))
    async with esi.client() as client:
        with pytest.raises(RetryLater) as raised:
            await ingest.refresh_region_job(_JobContext(platform, client), {"region_id": REGION})  # type: ignore[arg-type]
    assert raised.value.seconds == 20 * 60 + 5  # until 11:20 UTC, and a little
    assert raised.value.reason == "EVE daily downtime"
    assert esi.fake.requests == []


async def test_refreshes_orders_and_esi_errors_are_counted_on_metrics(
    platform: Platform, esi: FakeEsiServer
) -> None:
    """The figures the dashboards and the stale-ingest alert read (deploy/grafana, deploy/prometheus)."""
    registry = platform.metrics.registry

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(f"pentad_market_{name}", labels) or 0.0

    before = {
        outcome: sample("region_refreshes_total", outcome=outcome)
        for outcome in ("ok", "not_modified", "deferred")
    }
    orders_before = sample("orders_stored_total")
    errors_before = sample("esi_errors_total", code="esi_unavailable")
    esi.fake.set_book(REGION, make_orders(REGION, count=50, locations=LOCATIONS), page_size=20)
    assert (await _refresh(platform, esi)).status == "ok"
    assert (await _refresh(platform, esi)).status == "not_due"  # asked nothing: not a refresh
    esi.fake.advance(301)
    assert (await _refresh(platform, esi)).status == "not_modified"
    current = sample("book_current_timestamp_seconds")
    assert current > 0
    esi.fake.advance(301)
    esi.fake.inject("status", status=503, page=1, times=100)
    assert (await _refresh(platform, esi)).status == "deferred"

    assert sample("region_refreshes_total", outcome="ok") == before["ok"] + 1
    assert sample("region_refreshes_total", outcome="not_modified") == before["not_modified"] + 1
    assert sample("region_refreshes_total", outcome="deferred") == before["deferred"] + 1
    assert sample("orders_stored_total") == orders_before + 50
    assert sample("esi_errors_total", code="esi_unavailable") == errors_before + 1
    # A failed refresh does not make the book look current.
    assert sample("book_current_timestamp_seconds") == current


async def test_the_hubs_ladders_are_stored_with_the_snapshot(platform: Platform, esi: FakeEsiServer) -> None:
    """With the static data imported, a refresh stores, in the snapshot's transaction, the ladders of the
    region's trade hub (Jita here; Amarr is elsewhere): the same as the database ranks from the stored
    orders, so a hauling search reads them instead."""
    async with platform.database.transaction() as session:
        await sde.import_subset(session)
    esi.fake.generate_book(REGION, pages=2, page_size=60, types=4, locations=LOCATIONS)
    outcome = await _refresh(platform, esi)
    assert outcome.status == "ok"
    async with platform.database.transaction(writes=False) as session:
        (jita,) = await hub_places(session, [Hub("jita", 60003760, REGION)])
        cover = bid_cover(
            jita, await load_graph(session), await repository.region_system_ids(session, REGION)
        )
        version = await repository.current_snapshot(session, REGION)
        assert version is not None
        assert version[0] == outcome.snapshot_id
        stored = await repository.stored_ladders(session, version, jita.station_id, cover.key(DEPTH))
        ranked = await repository.hub_ladders(session, REGION, cover, DEPTH)
        assert stored is not None
        assert ranked is not None
        assert stored.asks
        assert stored.bids
        assert (stored.asks, stored.bids) == (ranked.asks, ranked.bids)
        # Only the hubs get ladders: the other station of the book has none.
        assert await repository.stored_ladders(session, version, 60003761, cover.key(DEPTH)) is None
