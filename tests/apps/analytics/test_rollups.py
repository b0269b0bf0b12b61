"""Rollups and the query planner, on every engine: the planner's answers (closed months, days, hours from
rollups; open and dirty hours from raw) equal the raw-only answers on the same seeded events, for the top
stats, the time series and every breakdown dimension; late events re-dirty their hour; a recompute is
idempotent; visits a late event joins are recounted; the cache follows the rollup epoch."""

from __future__ import annotations

import random
import typing
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import filters as raw
from pentad.apps.analytics import goals, query, rollups
from pentad.apps.analytics.hll import Sketch
from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import (
    AnalyticsDirtyBucket,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsRollupMonthly,
    AnalyticsSession,
    AnalyticsSite,
)
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.apps.analytics.tasks import run_rollups
from pentad.core.cache import MemoryCache
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.factories import Account

NOW = datetime(2026, 3, 20, 14, 25, tzinfo=UTC)
TIMEOUT = 600  # the analytics tests' session timeout (conftest)
PATHS = ["/", "/pricing", "/blog/a", "/blog/b", "/docs", "/signup"]
SOURCES = [(None, None), ("Google", "google.com"), ("Twitter", "t.co"), ("Newsletter", None)]
COUNTRIES = ["DE", "FR", "US", None]
DEVICES = ["desktop", "mobile", "tablet"]
BROWSERS = ["Firefox", "Chrome", "Safari", None]
SYSTEMS = ["Linux", "Windows", "iOS", "Android"]
CAMPAIGNS = [None, "spring", "launch"]
HOUR = 3_600_000
DAY = 86_400_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def seeded_rows(
    site_key: int, days: int = 45, per_day: int = 30, seed: int = 7, now: datetime = NOW
) -> list[EventRow]:
    """Visitors with one to three visits a day between 06:00 and 20:00 UTC; some visits cross an hour,
    some are a bounce, some carry custom events with properties and revenue (EUR or USD), the pricing
    page's views a property, some signup pageviews revenue."""
    rng = random.Random(seed)
    rows: list[EventRow] = []
    first_day = (now - timedelta(days=days)).date()
    for offset in range(days + 1):
        day = first_day + timedelta(days=offset)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for number in range(per_day - rng.randrange(0, 15)):
            visitor = rng.getrandbits(62) - (1 << 61)
            facts: dict[str, Any] = {
                "country": rng.choice(COUNTRIES),
                "device": rng.choice(DEVICES),
                "browser": rng.choice(BROWSERS),
                "os": rng.choice(SYSTEMS),
            }
            ts = _ms(midnight + timedelta(hours=6 + rng.randrange(0, 13), minutes=rng.randrange(0, 60)))
            for _visit in range(rng.choice((1, 1, 2, 3))):
                source, referrer = rng.choice(SOURCES)
                campaign = rng.choice(CAMPAIGNS)
                for step in range(rng.choice((1, 1, 2, 3, 5))):
                    first = step == 0
                    custom = not first and rng.random() < 0.2
                    path = rng.choice(PATHS)
                    # properties: a signup's plan, the pricing page's A/B variant; revenue in two
                    # currencies (derived from the draws above, so the sequence stays as it was)
                    props = {"plan": "pro" if ts % 3 else "free"} if custom else None
                    if path == "/pricing" and not custom:
                        props = {"variant": "a" if visitor % 2 else "b"}
                    paid = custom or (path == "/signup" and visitor % 3 == 0)  # a paid signup page
                    currency = ("EUR" if ts % 2 else "USD") if paid else None
                    rows.append(
                        EventRow(
                            site_key=site_key,
                            ts=ts,
                            visitor_id=visitor,
                            name="Signup" if custom else "pageview",
                            hostname="shop.example",
                            path=path,
                            props=props,
                            currency=currency,
                            source=source if first else None,
                            referrer_host=referrer if first else "shop.example",
                            utm_source=source.lower() if first and campaign and source else None,
                            utm_medium="social" if first and campaign else None,
                            utm_campaign=campaign if first else None,
                            revenue_micros=990_000 if paid else None,
                            **facts,
                        )
                    )
                    ts += rng.randrange(20_000, 500_000)  # within the visit timeout
                ts += rng.randrange(TIMEOUT * 1000 + 1, 3 * HOUR)
            assert number >= 0
    # the open hour of NOW: events the planner must read raw
    for step in range(3):
        rows.append(
            EventRow(
                site_key=site_key,
                ts=_ms(now) - 60_000 * (10 - step),
                visitor_id=4242,
                name="pageview",
                hostname="shop.example",
                path=PATHS[step],
                source="Google",
                referrer_host="google.com",
            )
        )
    return rows


async def store(platform: Platform, rows: list[EventRow]) -> None:
    """Through the ingest flush itself: the events and their dirty (site, hour) marks."""
    async with platform.database.transaction() as session:
        context = FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False)
        for index in range(0, len(rows), 2000):
            await flush_events(context, rows[index : index + 2000])


async def site_key_of(platform: Platform, site: dict[str, str]) -> int:
    async with platform.database.transaction() as session:
        key = await session.scalar(select(AnalyticsSite.key).where(AnalyticsSite.id == uuid.UUID(site["id"])))
        assert key is not None
        return int(key)


SPANS = [
    ("day", None, None),
    ("7d", None, None),
    ("30d", None, None),
    ("month", None, None),
    ("custom", date(2026, 2, 20), date(2026, 3, 5)),
    ("custom", date(2026, 3, 1), date(2026, 3, 1)),
]


async def compare_all(
    session: AsyncSession,
    key: int,
    timezone: str,
    spans: list[tuple[str, date | None, date | None]] = SPANS,
    planning: query.Planning | None = None,
) -> None:
    """Planner answers equal raw answers for every span, series and dimension."""
    planning = planning or query.Planning(now=NOW)
    for period, start, end in spans:
        span = query.resolve_range(period, timezone, start=start, end=end, now=NOW)
        raw = await query.raw_totals(session, key, span, TIMEOUT)
        planned = await query.totals(session, key, span, TIMEOUT, planning)
        assert planned == raw, period
        assert await query.timeseries(session, key, span, TIMEOUT, planning) == await query.raw_timeseries(
            session, key, span
        )
        for dimension in rollups.DIMS:
            expected = await query.raw_breakdown(
                session, key, span, dimension, limit=1000, session_timeout=TIMEOUT
            )
            got = await query.breakdown(
                session, key, span, dimension, limit=1000, session_timeout=TIMEOUT, planning=planning
            )
            assert sorted(got, key=repr) == sorted(expected, key=repr), (period, dimension)
        await compare_goals_and_props(session, key, span, planning)


def test_every_breakdown_the_api_offers_is_rolled_up() -> None:
    assert sorted(typing.get_args(query.Dimension)) == sorted(rollups.DIMS)


GOALS = [
    goals.GoalRule(
        uuid.uuid4(), "Blog", "pageview", None, goals.compile_pattern("/blog/*"), "EUR", "/blog/*"
    ),
    goals.GoalRule(uuid.uuid4(), "Pricing", "pageview", None, goals.compile_pattern("/pricing"), None),
    goals.GoalRule(
        uuid.uuid4(), "Paid page", "pageview", None, goals.compile_pattern("/sign*"), "USD", "/sign*"
    ),
    goals.GoalRule(uuid.uuid4(), "Signup EUR", "event", "Signup", None, "EUR"),
    goals.GoalRule(uuid.uuid4(), "Signup USD", "event", "Signup", None, "USD"),
    goals.GoalRule(uuid.uuid4(), "Signup", "event", "Signup", None, None),
    goals.GoalRule(uuid.uuid4(), "Any page", "event", "pageview", None, "EUR"),
    goals.GoalRule(uuid.uuid4(), "Never", "event", "Refund", None, "EUR"),
]
"""Goals of every kind: patterns, currencies (the seeded revenue is in EUR and USD, on custom events and
signup pageviews), an event goal of pageviews, one nothing completes."""


async def compare_goals_and_props(
    session: AsyncSession, key: int, span: query.Range, planning: query.Planning
) -> None:
    """The rolled-up goal conversions and custom properties equal filters.py's over raw events."""
    visits = await raw.load_visits(
        session, key, span.start_ms, span.end_ms, TIMEOUT, (), raw.needed_columns((), raw.COLUMNS)
    )
    selection = raw.select_visits(visits, (), GOALS)
    pairs = zip((visit.visitor_id for visit in selection.visits), selection.counted, strict=True)
    expected = goals.conversions_of(GOALS, selection.visitors, pairs)
    assert await query.conversions(session, key, span, GOALS, TIMEOUT, planning) == expected, span
    for prop in (None, "plan", "variant", "absent"):
        found = raw.props_of(selection, prop)
        want = [
            query.PropRow(str(value), len(bucket.visitors), bucket.events + bucket.pageviews)
            for value, bucket in raw.ranked(found, 1000)
        ]
        got = await query.properties(session, key, span, prop, TIMEOUT, planning, limit=1000)
        assert got == want, (span, prop)


@pytest.fixture
async def seeded(platform: Platform, site: dict[str, str]) -> int:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key))
    return key


async def test_rollups_answer_like_raw_events_on_every_dimension(platform: Platform, seeded: int) -> None:
    async with platform.database.transaction() as session:
        before = await session.scalar(select(func.count()).select_from(AnalyticsDirtyBucket))
        assert before
        assert before > 200
        # Nothing rolled up yet: every hour is dirty and read raw; the answers are already the same.
        await compare_all(session, seeded, "UTC", [("7d", None, None)])

    report = await run_rollups(platform, now=NOW)
    assert report.dirty == before
    assert report.days >= 45
    assert report.months >= 2

    async with platform.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AnalyticsDirtyBucket)) == 0
        span = query.resolve_range("30d", "UTC", now=NOW)
        parts = query.plan(span, _ms(NOW), set(), "month")
        assert parts is not None
        tiers = [part.tier for part in parts]
        # 30d ends with today: 29 closed days, 14 closed hours, the open hour raw, 9 later hours (stored
        # rows, normally empty: only clocks ahead of ours send events there)
        assert tiers.count("month") == 0
        assert tiers.count("day") == 29
        assert tiers[29:43] == ["hour"] * 14
        assert tiers[43] == "raw"
        assert tiers[44:] == ["hour"] * 9
        year = query.plan(query.resolve_range("12mo", "UTC", now=NOW), _ms(NOW), set(), "month")
        assert year is not None
        assert [p.tier for p in year].count("month") == 11
        await compare_all(session, seeded, "UTC")

        # Twelve months cross monthly rollups with more than 128 visitors: their sketches are
        # HyperLogLogs; additive numbers stay exact, visitors are within the documented error.
        span = query.resolve_range("12mo", "UTC", now=NOW)
        raw = await query.raw_totals(session, seeded, span, TIMEOUT)
        planned = await query.totals(session, seeded, span, TIMEOUT, query.Planning(now=NOW))
        assert (planned.visits, planned.pageviews, planned.events, planned.bounces, planned.duration_ms) == (
            raw.visits,
            raw.pageviews,
            raw.events,
            raw.bounces,
            raw.duration_ms,
        )
        assert raw.visitors > 1000
        assert abs(planned.visitors - raw.visitors) <= 0.05 * raw.visitors
        monthly = await session.scalar(
            select(AnalyticsRollupMonthly.visitors_sketch).where(
                AnalyticsRollupMonthly.site_key == seeded,
                AnalyticsRollupMonthly.dim == rollups.TOTALS,
                AnalyticsRollupMonthly.bucket == rollups.month_number(date(2026, 2, 1)),
            )
        )
        assert monthly is not None
        assert Sketch.from_text(monthly).exact is None  # HyperLogLog registers

        sessions = (
            await session.scalars(
                select(AnalyticsSession).where(
                    AnalyticsSession.site_key == seeded, AnalyticsSession.visitor_id == 4242
                )
            )
        ).all()
        assert [(s.pageviews, s.entry_path, s.exit_path, s.source) for s in sessions] == [
            (3, PATHS[0], PATHS[2], "Google")
        ]


async def _row_counts(session: AsyncSession, key: int) -> tuple[int, ...]:
    counts = []
    for table in (AnalyticsRollupHourly, AnalyticsRollupDaily, AnalyticsRollupMonthly, AnalyticsSession):
        counts.append(
            int(
                await session.scalar(select(func.count()).select_from(table).where(table.site_key == key))
                or 0
            )
        )
    return tuple(counts)


async def test_late_events_redirty_their_hour_and_recompute_is_idempotent(
    platform: Platform, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=6, per_day=15, seed=3))
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        counts = await _row_counts(session, key)
        week = query.resolve_range("7d", "UTC", now=NOW)
        before = await query.totals(session, key, week, TIMEOUT, query.Planning(now=NOW))

    # The same hours made dirty again (a replayed batch's marks): recomputing changes nothing.
    async with platform.database.transaction() as session:
        hours = (await session.scalars(select(AnalyticsRollupHourly.bucket).distinct())).all()
        session.add_all(AnalyticsDirtyBucket(site_key=key, hour=hour) for hour in hours)
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await _row_counts(session, key) == counts
        assert await query.totals(session, key, week, TIMEOUT, query.Planning(now=NOW)) == before

    # A late visit three days ago: read raw while its hour is dirty, from rollups once recomputed.
    late = _ms(datetime(2026, 3, 17, 9, 30, tzinfo=UTC))
    rows = [
        EventRow(site_key=key, ts=late + i * 60_000, visitor_id=99, name="pageview", hostname="shop.example",
                 path=f"/late/{i}", source="Bing", referrer_host="bing.com" if i == 0 else None, country="NL")
        for i in range(2)
    ]  # fmt: skip
    await store(platform, rows)
    async with platform.database.transaction() as session:
        dirty = await rollups.dirty_hours(session, key, 0, 10**9)
        assert dirty == {late // HOUR}
        after = await query.totals(session, key, week, TIMEOUT, query.Planning(now=NOW))
        assert (after.visitors, after.visits, after.pageviews) == (
            before.visitors + 1,
            before.visits + 1,
            before.pageviews + 2,
        )
        await compare_all(session, key, "UTC", [("7d", None, None)])
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await rollups.dirty_hours(session, key, 0, 10**9) == set()
        assert await query.totals(session, key, week, TIMEOUT, query.Planning(now=NOW)) == after
        countries = await query.breakdown(
            session, key, week, "countries", session_timeout=TIMEOUT, planning=query.Planning(now=NOW)
        )
        assert ("NL", 1, 2) in [(r.value, r.visitors, r.pageviews) for r in countries]


async def test_a_late_event_that_joins_two_visits_recounts_the_earlier_hour(
    platform: Platform, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    base = datetime(2026, 3, 18, 10, 50, tzinfo=UTC)

    def event(minutes: int, path: str) -> EventRow:
        return EventRow(site_key=key, ts=_ms(base + timedelta(minutes=minutes)), visitor_id=7,
                        name="pageview", hostname="shop.example", path=path)  # fmt: skip

    await store(platform, [event(0, "/a"), event(20, "/b")])  # 20 min apart: two visits (timeout 10)
    await run_rollups(platform, now=NOW)
    day = query.resolve_range("custom", "UTC", start=base.date(), end=base.date(), now=NOW)
    async with platform.database.transaction() as session:
        found = await query.totals(session, key, day, TIMEOUT, query.Planning(now=NOW))
        assert (found.visits, found.bounces) == (2, 2)
    await store(platform, [event(10, "/bridge")])  # in the 11:00 hour, joins both into one visit
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await rollups.dirty_hours(session, key, 0, 10**9) == set()
        found = await query.totals(session, key, day, TIMEOUT, query.Planning(now=NOW))
        assert (found.visits, found.bounces, found.pageviews, found.duration_ms) == (1, 0, 3, 20 * 60_000)
        assert found == await query.raw_totals(session, key, day, TIMEOUT)
        stored = (
            await session.scalars(select(AnalyticsSession).where(AnalyticsSession.site_key == key))
        ).all()
        assert [(s.entry_path, s.exit_path, s.pageviews) for s in stored] == [("/a", "/b", 3)]


async def test_other_time_zones(platform: Platform, client: httpx.AsyncClient, owner: Account) -> None:
    keys: list[tuple[int, str]] = []
    for timezone in ("Europe/Berlin", "America/New_York"):
        response = await client.post(
            "/api/analytics/sites",
            json={"domain": f"tz{len(keys)}.example", "timezone": timezone},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        key = await site_key_of(platform, response.json())
        keys.append((key, timezone))
        await store(platform, seeded_rows(key, days=40, per_day=12, seed=len(timezone)))
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        for key, timezone in keys:
            await compare_all(session, key, timezone, SPANS[1:])
    # Where midnight is not on a UTC hour, hours do not add up to days: the planner answers from raw.
    kolkata = query.resolve_range("7d", "Asia/Kolkata", now=NOW)
    assert query.plan(kolkata, _ms(NOW), set(), "day") is None


async def test_closed_parts_are_cached_until_the_rollup_epoch_moves(
    platform: Platform, site: dict[str, str]
) -> None:
    seeded = await site_key_of(platform, site)
    await store(platform, seeded_rows(seeded, days=8, per_day=10, seed=5))
    await run_rollups(platform, now=NOW)
    cache = MemoryCache(default_ttl=60, max_entries=100)
    planning = query.Planning(now=NOW, cache=cache, site_version=1)
    span = query.resolve_range("30d", "UTC", now=NOW)
    async with platform.database.transaction() as session:
        first = await query.totals(session, seeded, span, TIMEOUT, planning)
        # Rollup rows changed behind the planner's back: the cached closed parts still answer...
        await session.execute(
            update(AnalyticsRollupDaily).where(AnalyticsRollupDaily.site_key == seeded).values(pageviews=0)
        )
        assert await query.totals(session, seeded, span, TIMEOUT, planning) == first
        uncached = await query.totals(session, seeded, span, TIMEOUT, query.Planning(now=NOW))
        assert uncached.pageviews < first.pageviews
        # ...until a rollup run moves the epoch (here: nothing dirty but the bump), or the site changes.
        session.add(AnalyticsDirtyBucket(site_key=seeded, hour=_ms(NOW) // HOUR))
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await query.totals(session, seeded, span, TIMEOUT, planning) == uncached


async def test_the_stats_endpoints_answer_from_rollups(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    """The API on today's clock: closed days and hours from rollups, equal to the raw computation."""
    now = datetime.now(UTC)
    key = await site_key_of(platform, site)
    rows = [row for row in seeded_rows(key, days=9, per_day=20, seed=17, now=now) if row.ts <= _ms(now)]
    await store(platform, rows)
    await run_rollups(platform, now=now)
    base = f"/api/analytics/sites/{site['id']}/stats"
    span = query.resolve_range("7d", "UTC")
    async with platform.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AnalyticsDirtyBucket)) == 0
        raw = await query.raw_totals(session, key, span, TIMEOUT)
        series = await query.raw_timeseries(session, key, span)
        pages = await query.raw_breakdown(session, key, span, "pages", limit=100, session_timeout=TIMEOUT)
    assert raw.pageviews > 50
    totals = (await client.get(f"{base}/aggregate?period=7d", headers=owner.headers)).json()
    assert (totals["visitors"], totals["visits"], totals["pageviews"], totals["bounce_rate"]) == (
        raw.visitors,
        raw.visits,
        raw.pageviews,
        raw.bounce_rate,
    )
    points = (await client.get(f"{base}/timeseries?period=7d", headers=owner.headers)).json()["points"]
    assert [(p["visitors"], p["pageviews"]) for p in points] == [(p.visitors, p.pageviews) for p in series]
    found = (await client.get(f"{base}/breakdown/pages?period=7d&limit=100", headers=owner.headers)).json()
    assert sorted((r["value"], r["visitors"], r["pageviews"]) for r in found["rows"]) == sorted(
        (r.value, r.visitors, r.pageviews) for r in pages
    )


async def test_a_failed_recompute_gives_the_claimed_hours_back(
    platform: Platform, site: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=1, per_day=20, seed=2))
    async with platform.database.transaction() as session:
        dirty = await rollups.dirty_hours(session, key, 0, 10**9)
    assert dirty

    async def broken(*_args: object, **_kwargs: object) -> rollups.HoursResult:
        raise RuntimeError("database went away")

    monkeypatch.setattr(rollups, "compute_hours", broken)
    with pytest.raises(RuntimeError, match="went away"):
        await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await rollups.dirty_hours(session, key, 0, 10**9) == dirty
        assert await session.scalar(select(func.count()).select_from(AnalyticsRollupHourly)) == 0
    monkeypatch.undo()
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await rollups.dirty_hours(session, key, 0, 10**9) == set()
        assert (await session.scalar(select(func.count()).select_from(AnalyticsRollupHourly)) or 0) > 0


@pytest.fixture
def computed_hours(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[int]]:
    """The hour groups rollups.compute_hours is asked for, in order (it still computes them)."""
    computed: list[frozenset[int]] = []
    compute = rollups.compute_hours

    async def recorded(session: AsyncSession, site_key: int, hours: Any, gap: int) -> rollups.HoursResult:
        computed.append(frozenset(hours))
        return await compute(session, site_key, hours, gap)

    monkeypatch.setattr(rollups, "compute_hours", recorded)
    return computed


async def test_a_claim_takes_whole_days_and_each_day_is_computed_once(
    platform: Platform,
    site: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    computed_hours: list[frozenset[int]],
) -> None:
    """A batch smaller than a day's dirty hours still claims the whole UTC day (a split day would be read
    again by each half, its other hours touched by visits crossing the split); the answers are unchanged."""
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=3, per_day=40, seed=11))
    async with platform.database.transaction() as session:
        dirty = await rollups.dirty_hours(session, key, 0, 10**9)
    days = {hour * HOUR // DAY for hour in dirty}
    assert len(days) >= 3
    assert len(dirty) > 2 * len(days)
    async with platform.database.transaction() as session:
        claimed = await rollups.claim_dirty(session, 2)
        await session.rollback()
    assert {hour for _key, hour in claimed} == {hour for hour in dirty if hour * HOUR // DAY == min(days)}

    monkeypatch.setattr(platform.app_settings(AnalyticsSettings), "rollup_batch", 2)
    report = await run_rollups(platform, now=NOW)
    assert report.hours == len(dirty)
    assert sorted(computed_hours, key=min) == [
        frozenset(hour for hour in dirty if hour * HOUR // DAY == day) for day in sorted(days)
    ]
    async with platform.database.transaction() as session:
        assert await rollups.dirty_hours(session, key, 0, 10**9) == set()
        await compare_all(session, key, "UTC", [("custom", (NOW - timedelta(days=3)).date(), NOW.date())])


async def test_an_event_continuing_a_visit_recomputes_its_hours_and_nothing_more(
    platform: Platform, site: dict[str, str], computed_hours: list[frozenset[int]]
) -> None:
    """A new event extending a visit that started an hour earlier recomputes its hour and the visit's start
    hour (its duration changed there), not every hour the earlier visits are near (that walked back
    through the whole day, one read of the day's events per hour, on every rollup tick)."""
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=2, per_day=40, seed=5))
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        crossing = (
            await session.execute(
                select(AnalyticsSession)
                .where(
                    AnalyticsSession.site_key == key,
                    AnalyticsSession.end_ts - AnalyticsSession.start_ts < HOUR,
                )
                .order_by(AnalyticsSession.start_ts)
            )
        ).scalars()
        visit = next(v for v in crossing if v.start_ts // HOUR != (v.end_ts + 60_000) // HOUR)
    late = seeded_rows(key, days=0, per_day=1)[0].model_copy(
        update={
            "visitor_id": visit.visitor_id,
            "ts": visit.end_ts + 60_000,
            "name": "pageview",
            "path": "/late",
        }
    )
    await store(platform, [late])
    computed_hours.clear()
    await run_rollups(platform, now=NOW)
    assert computed_hours == [frozenset({late.ts // HOUR}), frozenset({visit.start_ts // HOUR})]
    async with platform.database.transaction() as session:
        await compare_all(session, key, "UTC", [("custom", (NOW - timedelta(days=2)).date(), NOW.date())])

    computed_hours.clear()
    async with platform.database.transaction() as session:  # nothing new: the hour alone, once
        session.add(AnalyticsDirtyBucket(site_key=key, hour=late.ts // HOUR))
    await run_rollups(platform, now=NOW)
    assert computed_hours == [frozenset({late.ts // HOUR})]
