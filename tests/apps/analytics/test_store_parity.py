"""The two events stores give the same dashboard: the same seeded events (45 days, visits that cross hours,
bounces, custom events, every dimension) go through the SQL store (flush, rollups, the planner) and the
ClickHouse store (a real server), and every panel answers alike — top stats (visitors, visits, pageviews,
bounce rate, visit duration), the time series, every breakdown — for presets and custom ranges in four
time zones (one whose midnight is not on a UTC hour, one across a DST change). Runs once: the SQL side is
the same on every engine (test_rollups.py proves that)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from pentad.apps.analytics import query, rollups
from pentad.apps.analytics.ingest import EVENTS
from pentad.apps.analytics.settings import ClickHouseSettings
from pentad.apps.analytics.store.clickhouse import ClickHouse, ClickHouseEventStore
from pentad.apps.analytics.tasks import run_rollups
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import NOW, TIMEOUT, seeded_rows, site_key_of, store
from tests.factories import Account
from tests.servers import ClickHouseServer

pytestmark = pytest.mark.one_engine

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
SPANS: list[tuple[str, date | None, date | None]] = [
    ("day", None, None),
    ("7d", None, None),
    ("30d", None, None),
    ("month", None, None),
    ("custom", date(2026, 2, 20), date(2026, 3, 10)),  # New York changes to summer time on 8 March
    ("custom", date(2026, 3, 1), date(2026, 3, 1)),
]


async def clickhouse_store(server: ClickHouseServer) -> ClickHouseEventStore:
    """A store on a database of its own (its schema made the way a process start makes it)."""
    client = ClickHouse(
        ClickHouseSettings(
            url=server.url,
            database=f"pentad_test_{uuid.uuid4().hex[:12]}",
            user=server.user,
            password=server.password,
        )
    )
    assert await client.migrate() == 1
    return ClickHouseEventStore(client)


async def drop(found: ClickHouseEventStore) -> None:
    await found.client.execute(f"DROP DATABASE IF EXISTS {found.client.database}")
    await found.client.close()


@pytest.fixture
async def ch_store(clickhouse: ClickHouseServer) -> AsyncIterator[ClickHouseEventStore]:
    found = await clickhouse_store(clickhouse)
    yield found
    await drop(found)


async def test_both_stores_answer_every_panel_alike(
    platform: Platform, client: httpx.AsyncClient, owner: Account, ch_store: ClickHouseEventStore
) -> None:
    sites: list[tuple[int, str]] = []
    for number, zone in enumerate(ZONES):  # rollups are per site-local day: one site per zone
        created = await client.post(
            "/api/analytics/sites",
            json={"domain": f"zone{number}.example", "timezone": zone},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        key = await site_key_of(platform, created.json())
        rows = seeded_rows(key, days=40, per_day=30 if zone == "UTC" else 12, seed=number)
        await store(platform, rows)
        for index in range(0, len(rows), 2000):  # in batches, as the ingest flush hands them over
            context = FlushContext(None, platform, EVENTS, uuid.uuid4(), replay=False)  # type: ignore[arg-type]
            await ch_store.insert(context, rows[index : index + 2000])
        sites.append((key, zone))
    await run_rollups(platform, now=NOW)

    sql = query.Planning(now=NOW)
    clickhouse = query.Planning(now=NOW, store=ch_store)
    compared = busy = 0
    async with platform.database.transaction() as session:
        for key, zone in sites:
            for period, start, end in SPANS:
                span = query.resolve_range(period, zone, start=start, end=end, now=NOW)
                where = (zone, period, start)
                expected = await query.totals(session, key, span, TIMEOUT, sql)
                busy += expected.visits > 0
                got = await query.totals(session, key, span, TIMEOUT, clickhouse)
                assert got == expected, where
                assert (got.bounce_rate, got.visit_duration) == (
                    expected.bounce_rate,
                    expected.visit_duration,
                )
                assert await query.timeseries(
                    session, key, span, TIMEOUT, clickhouse
                ) == await query.timeseries(session, key, span, TIMEOUT, sql), where
                for dimension in rollups.DIMS:
                    answers = [
                        await query.breakdown(
                            session,
                            key,
                            span,
                            dimension,
                            limit=1000,
                            session_timeout=TIMEOUT,
                            planning=planning,
                        )
                        for planning in (sql, clickhouse)
                    ]
                    # as sets: on ties the raw SQL puts "(unknown)" where the engine sorts NULL
                    assert sorted(answers[1], key=repr) == sorted(answers[0], key=repr), (*where, dimension)
                    assert [row.visitors for row in answers[1]] == [row.visitors for row in answers[0]]
                    compared += 1
                # a top-n cut is the same too (ties ordered alike)
                top = [
                    await query.breakdown(
                        session, key, span, "pages", limit=3, session_timeout=TIMEOUT, planning=planning
                    )
                    for planning in (sql, clickhouse)
                ]
                assert top[1] == top[0], where
    assert compared == len(ZONES) * len(SPANS) * len(rollups.DIMS)
    assert busy >= len(ZONES) * (len(SPANS) - 1)  # answers with visits in them, not zeros alike
