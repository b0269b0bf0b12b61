"""Filtered answers are the same whoever computes them: filters.py's Python engine (the reference), the SQL
store's pre-aggregation (pushdown.py: window functions and GROUP BYs in SQLite, PostgreSQL and MariaDB)
and the ClickHouse store (a real server), on the same seeded events — top stats, the time series, every
breakdown, goal conversions (with revenue), properties and funnels (per visit and per visitor-day), for
filters on every dimension and operator, `(none)`, case (`/Pricing` is not `/pricing`), non-ASCII
values, several filters at once, and ranges in a zone whose midnight is not on a UTC hour."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.analytics import filters, query
from pentad.apps.analytics.ingest import EVENTS, EventRow
from pentad.apps.analytics.models import AnalyticsFunnel, AnalyticsSite
from pentad.apps.analytics.store.clickhouse import ClickHouseEventStore
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import TIMEOUT, site_key_of, store
from tests.apps.analytics.test_store_parity import clickhouse_store, drop
from tests.factories import Account
from tests.servers import ClickHouseServer

NOW = datetime(2026, 3, 20, 14, 25, tzinfo=UTC)
PATHS = ["/", "/pricing", "/Pricing", "/blog/a", "/blog/b_c", "/docs", "/signup", "/shop/x/checkout", "/ünï"]
SOURCES = [(None, None), ("Google", "google.com"), ("Twitter", "t.co"), ("Newsletter", None)]
COUNTRIES = ["DE", "FR", "US", None]
CITIES = [("Berlin", "Berlin"), ("Bavaria", "München"), (None, None), ("Île-de-France", "Paris")]
DEVICES = ["desktop", "mobile", "tablet"]
BROWSERS = ["Firefox", "Chrome", "Safari", None]
CUSTOM = ["Signup", "Download", "signup"]
PLANS = ["pro", "free", "Pro"]

FILTERS: list[tuple[str, ...]] = [
    (),
    ("country:is:DE",),
    ("country:is_not:DE",),
    ("country:is:(none)",),
    ("device:is:mobile", "browser:contains:FIRE"),
    ("source:is:(none)",),
    ("source:is:Google",),
    ("referrer:contains:GOOGLE",),
    ("utm_campaign:is_not:(none)",),
    ("utm_content:is:banner",),
    ("utm_term:contains:shoe",),
    ("region:is:Berlin",),
    ("city:contains:MÜN",),
    ("city:is:München",),
    ("entry_page:is:/",),
    ("exit_page:is:/pricing",),
    ("exit_page:contains:blog",),
    ("page:is:/pricing",),
    ("page:is:/Pricing",),
    ("page:contains:PRIC",),
    ("page:contains:b_",),
    ("page:is_not:/docs",),
    ("event:is:Signup",),
    ("event:is:(none)",),
    ("event:contains:sign",),
    ("event:is_not:Signup",),
    ("goal:is:Signed up",),
    ("goal:is:(none)",),
    ("goal:contains:BLOG",),
    ("goal:is_not:Blog",),
    ("prop.plan:is:pro",),
    ("prop.plan:is:(none)",),
    ("prop.plan:contains:PR",),
    ("country:is:DE", "page:contains:/blog"),
    ("page:is:/pricing", "event:is:Signup"),
    ("page:contains:/", "goal:is:Checkout"),
    ("source:is:Google", "goal:is:Signed up", "device:is_not:mobile"),
    ("entry_page:is_not:/docs", "page:is_not:/", "utm_source:is:google"),
]
GOALS: list[dict[str, Any]] = [
    {"kind": "event", "event_name": "Signup", "name": "Signed up", "currency": "EUR"},
    {"kind": "pageview", "path": "/blog/*", "name": "Blog"},
    {"kind": "pageview", "path": "/blog/b_c", "name": "Blog B"},
    {"kind": "pageview", "path": "/shop/*/checkout", "name": "Checkout", "currency": "USD"},
    {"kind": "pageview", "path": "/*ric*", "name": "Any pricing"},
    {"kind": "event", "event_name": "Download", "name": "Download"},
]
FUNNELS: list[list[dict[str, Any]]] = [
    [{"path": "/"}, {"path": "/pricing*"}, {"goal": "Signed up"}],
    [{"path": "/blog/*"}, {"goal": "Download"}, {"path": "/signup"}, {"goal": "Signed up"}],
]


def seeded(site_key: int, seed: int = 13, visitors: int = 70) -> list[EventRow]:
    """Visitors of the last three days with one to three visits each (some crossing midnight)."""
    rng = random.Random(seed)
    rows: list[EventRow] = []
    for _ in range(visitors):
        visitor = rng.getrandbits(62) - (1 << 61)
        region, city = rng.choice(CITIES)
        facts: dict[str, Any] = {
            "country": rng.choice(COUNTRIES),
            "region": region,
            "city": city,
            "device": rng.choice(DEVICES),
            "browser": rng.choice(BROWSERS),
            "os": "Linux",
        }
        ts = int(
            (NOW - timedelta(hours=rng.randrange(2, 72), minutes=rng.randrange(0, 60))).timestamp() * 1000
        )
        for _visit in range(rng.choice((1, 1, 2, 3))):
            source, referrer = rng.choice(SOURCES)
            campaign = rng.choice((None, "spring"))
            for step in range(rng.choice((1, 2, 3, 5, 8))):
                first = step == 0
                custom = not first and rng.random() < 0.3
                name = rng.choice(CUSTOM) if custom else "pageview"
                paid = name == "Signup" and rng.random() < 0.7
                rows.append(
                    EventRow(
                        site_key=site_key,
                        ts=ts,
                        visitor_id=visitor,
                        name=name,
                        hostname="shop.example",
                        path=rng.choice(PATHS),
                        source=source if first else None,
                        referrer_host=referrer if first else "shop.example",
                        utm_source=source.lower() if first and campaign and source else None,
                        utm_campaign=campaign if first else None,
                        utm_content=rng.choice((None, "banner")) if first else None,
                        utm_term=rng.choice((None, "red shoes")) if first else None,
                        props={"plan": rng.choice(PLANS)} if custom and rng.random() < 0.6 else None,
                        revenue_micros=rng.choice((990_000, 5_000_000)) if paid else None,
                        currency=rng.choice(("EUR", "USD")) if paid else None,
                        **facts,
                    )
                )
                ts += rng.randrange(20_000, 400_000)  # within the visit timeout
            ts += rng.randrange(TIMEOUT * 1000 + 1, 4 * 3_600_000)
    return rows


async def _prepare(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> tuple[AnalyticsSite, list[AnalyticsFunnel], list[EventRow]]:
    goal_ids: dict[str, str] = {}
    for goal in GOALS:
        made = await client.post(f"/api/analytics/sites/{site['id']}/goals", json=goal, headers=owner.headers)
        assert made.status_code == 201, made.text
        goal_ids[goal["name"]] = made.json()["id"]
    rows = seeded(await site_key_of(platform, site))
    await store(platform, rows)
    async with platform.database.transaction() as session:
        found = await session.scalar(select(AnalyticsSite).where(AnalyticsSite.id == uuid.UUID(site["id"])))
        assert found is not None
        session.expunge(found)
    funnels = [
        AnalyticsFunnel(
            name=f"funnel {number}",
            scope=scope,
            steps=[{"goal_id": goal_ids[s["goal"]]} if "goal" in s else s for s in steps],
        )
        for number, steps in enumerate(FUNNELS)
        for scope in ("visit", "day")
    ]
    return found, funnels, rows


def _cases() -> list[tuple[query.Range, tuple[str, ...]]]:
    """Every filter over the last 7 days; some over today by hour and over days of Asia/Kolkata."""
    week = query.resolve_range("7d", "UTC", now=NOW)
    today = query.resolve_range("day", "UTC", now=NOW)
    kolkata = query.resolve_range(
        "custom", "Asia/Kolkata", start=NOW.date() - timedelta(days=2), end=NOW.date()
    )
    some = [FILTERS[0], FILTERS[1], FILTERS[14], FILTERS[17], FILTERS[26], *FILTERS[-3:]]
    return [(week, texts) for texts in FILTERS] + [
        (span, texts) for span in (today, kolkata) for texts in some
    ]


async def _answers(
    platform: Platform,
    site: AnalyticsSite,
    funnels: list[AnalyticsFunnel],
    span: query.Range,
    chosen: tuple[filters.Filter, ...],
    options: query.Options,
    *,
    sql_only: bool = False,
) -> dict[str, Any]:
    """Every filtered question's answer (`sql_only`: those the SQL store pre-aggregates: not properties
    and funnels, which filters.py computes for it)."""
    found: dict[str, Any] = {}
    async with platform.database.transaction(writes=False) as session:
        found["totals"] = await query.site_totals(session, site, span, chosen, options)
        found["timeseries"] = await query.site_timeseries(session, site, span, chosen, options)
        for dimension in filters.BREAKDOWNS:
            found[dimension] = await query.site_breakdown(
                session, site, span, dimension, chosen, options, limit=1000
            )
        found["top"] = await query.site_breakdown(session, site, span, "pages", chosen, options, limit=3)
        found["goals"] = await query.site_goals(session, site, span, chosen, options)
        if sql_only:
            return found
        found["props"] = await query.site_props(session, site, span, chosen, options, limit=100)
        found["plans"] = await query.site_props(session, site, span, chosen, options, key="plan", limit=100)
        for number, funnel in enumerate(funnels):
            found[f"funnel{number}"] = await query.site_funnel(session, site, span, funnel, chosen, options)
    return found


def _compare(expected: dict[str, Any], got: dict[str, Any], where: Any) -> None:
    for question, answer in expected.items():
        assert got[question] == answer, (where, question)


async def test_the_sql_store_computes_filtered_answers_as_the_python_engine(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    found, funnels, _rows = await _prepare(platform, client, owner, site)
    python = query.Options(session_timeout=TIMEOUT, planning=query.Planning(now=NOW), pushdown=False)
    in_sql = replace(python, pushdown=True)
    busy = 0
    for span, texts in _cases():
        chosen = filters.parse_filters(texts)
        expected = await _answers(platform, found, funnels, span, chosen, python, sql_only=True)
        busy += expected["totals"].visits > 0
        answered = await _answers(platform, found, funnels, span, chosen, in_sql, sql_only=True)
        _compare(expected, answered, (span, texts))
    assert busy >= len(FILTERS)  # answers with visits in them, not zeros alike


@pytest.fixture
async def ch_store(clickhouse: ClickHouseServer) -> AsyncIterator[ClickHouseEventStore]:
    made = await clickhouse_store(clickhouse)
    yield made
    await drop(made)


@pytest.mark.one_engine
async def test_clickhouse_computes_filtered_answers_goals_and_funnels_as_the_sql_store(
    platform: Platform,
    client: httpx.AsyncClient,
    owner: Account,
    site: dict[str, str],
    ch_store: ClickHouseEventStore,
) -> None:
    found, funnels, rows = await _prepare(platform, client, owner, site)
    context = FlushContext(None, platform, EVENTS, uuid.uuid4(), replay=False)  # type: ignore[arg-type]
    await ch_store.insert(context, rows)
    python = query.Options(session_timeout=TIMEOUT, planning=query.Planning(now=NOW), pushdown=False)
    clickhouse = replace(python, planning=query.Planning(now=NOW, store=ch_store))
    for span, texts in _cases():
        chosen = filters.parse_filters(texts)
        if not chosen:  # unfiltered: rollups against the store's own rules (test_store_parity.py)
            continue
        expected = await _answers(platform, found, funnels, span, chosen, python)
        answered = await _answers(platform, found, funnels, span, chosen, clickhouse)
        _compare(expected, answered, (span, texts))
    # unfiltered goals and funnels are answered by ClickHouse too, from the range's events
    span = _cases()[0][0]
    async with platform.database.transaction(writes=False) as session:
        for number, funnel in enumerate(funnels):
            assert await query.site_funnel(
                session, found, span, funnel, (), clickhouse
            ) == await query.site_funnel(session, found, span, funnel, (), python), number
        assert await query.site_goals(session, found, span, (), clickhouse) == await query.site_goals(
            session, found, span, (), python
        )
