"""Comparison with the previous period (and a year earlier) in the aggregate answer: the ranges (pure)
and the API over rolled-up data (every engine), where the compared numbers are the planner's (and raw)
numbers over that range; a bad `compare` is a 422 and a stranger still gets 404."""

from __future__ import annotations

from datetime import date

import httpx

from pentad.apps.analytics import query
from pentad.apps.analytics.tasks import run_rollups
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import NOW, TIMEOUT, seeded_rows, site_key_of, store
from tests.factories import Account, account


def test_compared_ranges() -> None:
    week = query.resolve_range("custom", "Europe/Berlin", start=date(2026, 3, 23), end=date(2026, 3, 29))
    previous = query.compare_range(week, "previous")
    assert (previous.start.date(), previous.end.date(), previous.interval) == (
        date(2026, 3, 16),
        date(2026, 3, 23),
        "day",
    )
    leap = query.resolve_range("custom", "UTC", start=date(2028, 2, 1), end=date(2028, 2, 29))
    year = query.compare_range(leap, "year")
    assert (year.start.date(), year.end.date()) == (date(2027, 2, 1), date(2027, 3, 1))
    day = query.resolve_range("day", "UTC", now=NOW)
    assert query.compare_range(day, "previous").start.date() == date(2026, 3, 19)
    assert query.percent_change(150, 100) == 50.0
    assert query.percent_change(1, 0) is None
    assert query.percent_change(None, 3) is None


async def test_the_aggregate_compares_with_the_previous_period(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=20, per_day=12, seed=21))
    await run_rollups(platform, now=NOW)
    url = f"/api/analytics/sites/{site['id']}/stats/aggregate?period=custom&from=2026-03-10&to=2026-03-16"
    answer = await client.get(url + "&compare=previous", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    compared = body["comparison"]
    assert compared["start"].startswith("2026-03-03")
    assert compared["end"].startswith("2026-03-10")
    span = query.resolve_range("custom", "UTC", start=date(2026, 3, 3), end=date(2026, 3, 9))
    async with platform.database.transaction() as session:
        expected = await query.raw_totals(session, key, span, TIMEOUT)
    assert (compared["visitors"], compared["visits"], compared["pageviews"], compared["bounce_rate"]) == (
        expected.visitors,
        expected.visits,
        expected.pageviews,
        expected.bounce_rate,
    )
    assert compared["pageviews"] > 0
    assert compared["change"]["pageviews"] == round(
        100 * (body["pageviews"] - compared["pageviews"]) / compared["pageviews"], 1
    )
    assert (await client.get(url, headers=owner.headers)).json()["comparison"] is None
    # a year earlier there is nothing: every change is null
    year = (await client.get(url + "&compare=year", headers=owner.headers)).json()["comparison"]
    assert (year["visitors"], year["change"]["visitors"]) == (0, None)

    bad = await client.get(url + "&compare=decade", headers=owner.headers)
    assert bad.status_code == 422
    stranger = await account(platform)
    assert (await client.get(url + "&compare=previous", headers=stranger.headers)).status_code == 404
