"""Raw events partitioned by month on PostgreSQL: analytics_0005 rebuilds the table with its rows and ids
(a plain table stays plain on SQLite and MariaDB) and goes back down; retention drops a month whole only
once every site's raw tier has passed it, and the answers stay what they were on every engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from alembic import command
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.analytics import query, retention
from pentad.apps.analytics.models import AnalyticsEvent
from pentad.apps.analytics.spec import APP
from pentad.apps.analytics.tasks import run_retention, run_rollups
from pentad.core.config import DatabaseSettings
from pentad.core.db import partitions
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async
from pentad.core.jobs.models import Job, JobStatus
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import NOW, TIMEOUT, seeded_rows, site_key_of, store
from tests.factories import Account, run_due_jobs

INSERT = (
    "INSERT INTO analytics_events (site_key, ts, visitor_id, name, hostname, path)"
    " VALUES (1, {ts}, 7, 'pageview', 'a.example', '/')"
)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _state(engine: AsyncEngine) -> tuple[list[str], list[tuple[int, int]]]:
    async with engine.connect() as connection:
        key = await connection.run_sync(
            lambda sync: inspect(sync).get_pk_constraint("analytics_events")["constrained_columns"]
        )
        rows = (await connection.exec_driver_sql("SELECT id, ts FROM analytics_events ORDER BY id")).all()
    return list(key), [(int(row[0]), int(row[1])) for row in rows]


async def test_analytics_0005_partitions_raw_events_on_postgresql_keeping_rows_and_ids(
    scratch_url: str,
) -> None:
    await upgrade_async(scratch_url, [APP], revision="analytics_0002")
    engine = create_engine(DatabaseSettings(url=scratch_url))  # type: ignore[call-arg]
    now = datetime.now(UTC)
    this_month = partitions.period_start("month", now)
    stored = [
        (1, _ms(datetime(2019, 5, 3, tzinfo=UTC))),  # beyond YEARS_BACK: the default partition
        (2, _ms(this_month - timedelta(days=40))),
        (3, _ms(now)),
    ]
    try:
        async with engine.begin() as connection:
            for _id, ts in stored:  # the ids the database gives them, in order
                await connection.exec_driver_sql(INSERT.format(ts=ts))
        await upgrade_async(scratch_url, [APP])
        postgresql = engine.dialect.name == "postgresql"
        assert await _state(engine) == (["id", "ts"] if postgresql else ["id"], stored)
        async with engine.begin() as connection:
            inserted = await connection.execute(
                AnalyticsEvent.__table__.insert()
                .values(site_key=1, ts=_ms(now), visitor_id=8, name="pageview", hostname="a", path="/")
                .returning(AnalyticsEvent.id)
            )
            new_id = int(inserted.scalar_one())
            assert new_id > 3
            if postgresql:
                homes = dict(
                    (
                        await connection.exec_driver_sql(
                            "SELECT id, tableoid::regclass::text FROM analytics_events"
                        )
                    ).all()
                )
                month = partitions.period_start("month", this_month - timedelta(days=40))
                assert homes == {
                    1: "analytics_events_pdefault",
                    2: f"analytics_events_p{month:%Y%m}",
                    3: f"analytics_events_p{this_month:%Y%m}",
                    new_id: f"analytics_events_p{this_month:%Y%m}",
                }
        async with engine.begin() as connection:
            months = await connection.run_sync(
                lambda sync: [
                    part.name for part in partitions.list_partitions_sync(sync, retention.RAW_EVENTS)
                ]
            )
        ahead = partitions.next_period("month", partitions.next_period("month", this_month))
        assert (
            f"analytics_events_p{this_month:%Y%m}" in months and f"analytics_events_p{ahead:%Y%m}" in months
        ) == (postgresql)

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "analytics_0002")
        key, rows = await _state(engine)
        assert (key, rows[:3]) == (["id"], stored)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert [name for name in tables if name.startswith("analytics_events_p")] == []
        async with engine.begin() as connection:
            await connection.exec_driver_sql(INSERT.format(ts=_ms(now)))
        assert (await _state(engine))[1][-1][0] > new_id
    finally:
        await engine.dispose()


async def _raw_counts(platform: Platform, key: int, floor: int) -> tuple[int, int]:
    """Raw events of a site before and from `floor` (unix ms)."""
    async with platform.database.transaction() as session:
        count = select(func.count()).where(AnalyticsEvent.site_key == key)
        before = await session.scalar(count.where(AnalyticsEvent.ts < floor))
        after = await session.scalar(count.where(AnalyticsEvent.ts >= floor))
    return int(before or 0), int(after or 0)


async def test_a_month_is_dropped_only_when_every_site_has_passed_it_and_answers_stay(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    other = await client.post("/api/analytics/sites", json={"domain": "blog.example"}, headers=owner.headers)
    assert other.status_code == 201, other.text
    sites = [site, other.json()]
    keys = [await site_key_of(platform, entry) for entry in sites]
    postgresql = platform.database.engine.dialect.name == "postgresql"
    async with platform.database.transaction() as session:
        # 20 Dec 2025 to 20 Mar 2026: months that the migration (made for today) has no child for yet.
        await partitions.ensure(session, retention.RAW_EVENTS, NOW - timedelta(days=95), NOW)
    for number, key in enumerate(keys):
        await store(platform, seeded_rows(key, days=90, per_day=6, seed=number))
    await run_rollups(platform, now=NOW)
    planning = query.Planning(now=NOW)
    span = query.resolve_range("12mo", "UTC", now=NOW)

    async def answers() -> list[query.Totals]:
        async with platform.database.transaction() as session:
            return [await query.totals(session, key, span, TIMEOUT, planning) for key in keys]

    before = await answers()

    async def set_raw(entry: dict[str, str], raw: str) -> None:
        tiers = {"raw": raw, "hourly": "forever"}
        changed = await client.patch(
            f"/api/analytics/sites/{entry['id']}", json={"retention": tiers}, headers=owner.headers
        )
        assert changed.status_code == 200, changed.text

    async def months() -> list[str]:
        async with platform.database.transaction() as session:
            return [part.name for part in await partitions.list_partitions(session, retention.RAW_EVENTS)]

    january = "analytics_events_p202601"
    await set_raw(sites[0], "10d")
    await set_raw(sites[1], "forever")
    kept = await _raw_counts(platform, keys[1], 0)
    pruned = await run_retention(platform, now=NOW)
    assert pruned.partitions == 0  # the second site keeps raw events forever: every month stays
    assert (january in await months()) == postgresql
    assert await _raw_counts(platform, keys[1], 0) == kept
    floor_0 = _ms(NOW - timedelta(days=10))
    assert (await _raw_counts(platform, keys[0], floor_0))[0] == 0

    await set_raw(sites[1], "45d")  # its floor: 3 Feb 2026, after December and January
    floor_1 = _ms(NOW - timedelta(days=45))
    kept_1 = (await _raw_counts(platform, keys[1], floor_1))[1]
    pruned = await run_retention(platform, now=NOW)
    assert pruned.partitions == (2 if postgresql else 0)
    remaining = await months()
    assert (january not in remaining and "analytics_events_p202512" not in remaining) or not postgresql
    assert ("analytics_events_p202602" in remaining) == postgresql
    assert await _raw_counts(platform, keys[1], floor_1) == (0, kept_1)
    assert (await _raw_counts(platform, keys[0], floor_0))[0] == 0
    assert await answers() == before


async def test_the_core_cron_job_makes_the_months_ahead_again(platform: Platform) -> None:
    postgresql = platform.database.engine.dialect.name == "postgresql"
    now = datetime.now(UTC)
    ahead = partitions.horizon(retention.RAW_EVENTS, now)
    last = f"analytics_events_p{ahead:%Y%m}"
    async with platform.database.transaction() as session:
        if postgresql:  # as if the migration had run two months earlier
            await session.execute(text(f"DROP TABLE {last}"))
        job_id = await enqueue(session, partitions.MAINTAIN_JOB)
    await run_due_jobs(platform)
    async with platform.database.transaction() as session:
        status = await session.scalar(select(Job.status).where(Job.id == job_id))
        months = [part.name for part in await partitions.list_partitions(session, retention.RAW_EVENTS)]
    assert status == JobStatus.SUCCEEDED
    assert (last in months) == postgresql
