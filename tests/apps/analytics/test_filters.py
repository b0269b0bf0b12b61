"""Filters on every dimension through the stats API: visit dimensions keep visits by their first event
(or last page), event dimensions keep visits with a matching event and count only matching events;
is / is_not / contains; rows of the raw-only panels (entry and exit pages, regions, cities); a bad filter
is a 400; a filter over a range the raw tier no longer keeps is a 422 naming the tier, while the same
range unfiltered is answered from rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from pentad.core.platform import Platform
from tests.apps.analytics.product import RANGE, add_goal, visit
from tests.apps.analytics.test_rollups import site_key_of, store
from tests.factories import Account


async def _seed(platform: Platform, site: dict[str, str]) -> None:
    key = await site_key_of(platform, site)
    await store(
        platform,
        [
            *visit(key, 1, [("pageview", "/"), ("pageview", "/pricing"), ("Signup", "/pricing")],
                   country="DE", region="Berlin", city="Berlin", device="desktop", browser="Firefox",
                   os="Linux", source="Google", referrer_host="google.com", utm_campaign="spring",
                   props=[None, None, {"plan": "pro"}]),
            *visit(key, 2, [("pageview", "/blog/a"), ("pageview", "/pricing")], country="FR",
                   device="mobile", browser="Chrome", os="Android", source="Twitter"),
            *visit(key, 3, [("pageview", "/blog/b")], country="DE", device="mobile", browser="Safari",
                   os="iOS"),
            *visit(key, 3, [("pageview", "/docs"), ("Signup", "/docs")], minute=120, country="DE",
                   device="mobile", browser="Safari", os="iOS", props=[None, {"plan": "free"}]),
        ],
    )  # fmt: skip


async def test_filters_on_visit_and_event_dimensions(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    await _seed(platform, site)
    await add_goal(client, owner, site, kind="event", event_name="Signup")
    base = f"/api/analytics/sites/{site['id']}/stats"

    async def top(*filters: str) -> tuple[int, int, int, int]:
        query = "".join(f"&filter={f}" for f in filters)
        answer = await client.get(f"{base}/aggregate?{RANGE}{query}", headers=owner.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["filters"] == list(filters)
        return body["visitors"], body["visits"], body["pageviews"], body["events"]

    assert await top() == (3, 4, 6, 2)
    assert await top("country:is:DE") == (2, 3, 4, 2)
    assert await top("country:is_not:DE") == (1, 1, 2, 0)
    assert await top("country:is:DE", "device:is:mobile") == (1, 2, 2, 1)
    assert await top("source:is:(none)") == (1, 2, 2, 1)
    assert await top("entry_page:is:/blog/a") == (1, 1, 2, 0)
    assert await top("exit_page:is:/pricing") == (2, 2, 4, 1)
    assert await top("utm_campaign:contains:SPR") == (1, 1, 2, 1)
    # an event dimension keeps the visits with such an event and counts only those events
    assert await top("page:is:/pricing") == (2, 2, 2, 1)
    assert await top("page:contains:blog") == (2, 2, 2, 0)
    assert await top("page:is_not:/pricing") == (1, 2, 2, 1)
    assert await top("event:is:Signup") == (2, 2, 0, 2)
    assert await top("goal:is:Signup") == (2, 2, 0, 2)
    assert await top("prop.plan:is:pro") == (1, 1, 0, 1)
    assert await top("prop.plan:is_not:pro") == (2, 3, 4, 1)

    pages = await client.get(f"{base}/breakdown/pages?{RANGE}&filter=country:is:DE", headers=owner.headers)
    assert pages.json()["filter"] == "page"
    assert [(r["value"], r["visitors"], r["pageviews"]) for r in pages.json()["rows"]] == [
        ("/", 1, 1),
        ("/blog/b", 1, 1),
        ("/docs", 1, 1),
        ("/pricing", 1, 1),
    ]
    entry = await client.get(f"{base}/breakdown/entry_pages?{RANGE}", headers=owner.headers)
    assert [(r["value"], r["visitors"]) for r in entry.json()["rows"]] == [
        ("/", 1),
        ("/blog/a", 1),
        ("/docs", 1),
        ("/blog/b", 1),
    ]  # fmt: skip  (ties: by events, then by value)
    exits = await client.get(f"{base}/breakdown/exit_pages?{RANGE}", headers=owner.headers)
    assert [(r["value"], r["visitors"]) for r in exits.json()["rows"]] == [("/pricing", 2), ("/docs", 1),
                                                                           ("/blog/b", 1)]  # fmt: skip
    cities = await client.get(f"{base}/breakdown/cities?{RANGE}", headers=owner.headers)
    assert [(r["value"], r["visitors"]) for r in cities.json()["rows"]] == [("(unknown)", 2), ("Berlin", 1)]
    series = await client.get(f"{base}/timeseries?{RANGE}&filter=page:is:/pricing", headers=owner.headers)
    assert sum(p["pageviews"] for p in series.json()["points"]) == 2
    assert len(series.json()["points"]) == 24


async def test_bad_filters_and_ranges_beyond_raw_retention(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    base = f"/api/analytics/sites/{site['id']}/stats"
    for bad in ("nowhere:is:x", "country:equals:DE", "country:is:", "country", "prop.:is:x"):
        answer = await client.get(f"{base}/aggregate?{RANGE}&filter={bad}", headers=owner.headers)
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == "bad_filter"

    changed = await client.patch(
        f"/api/analytics/sites/{site['id']}", json={"retention": {"raw": "7d"}}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    today = datetime.now(UTC).date()
    old = f"period=custom&from={today - timedelta(days=20)}&to={today}"
    refused = await client.get(f"{base}/aggregate?{old}&filter=country:is:DE", headers=owner.headers)
    assert refused.status_code == 422
    assert refused.json()["code"] == "filter_needs_raw_data"
    assert "7d" in refused.json()["detail"]
    assert (await client.get(f"{base}/aggregate?{old}", headers=owner.headers)).status_code == 200
    # every breakdown, entry pages included, goals and properties are rolled up: they answer beyond the raw
    # tier, and need it with a filter
    for rolled in ("goals", "props", "breakdown/entry_pages"):
        assert (await client.get(f"{base}/{rolled}?{old}", headers=owner.headers)).status_code == 200
        filtered = await client.get(f"{base}/{rolled}?{old}&filter=country:is:DE", headers=owner.headers)
        assert filtered.status_code == 422, rolled
        assert filtered.json()["code"] == "filter_needs_raw_data"
    recent = f"period=custom&from={today - timedelta(days=5)}&to={today}"
    assert (await client.get(f"{base}/goals?{recent}", headers=owner.headers)).status_code == 200


async def test_property_breakdowns(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    await _seed(platform, site)
    url = f"/api/analytics/sites/{site['id']}/stats/props?{RANGE}"
    keys = (await client.get(url, headers=owner.headers)).json()
    assert (keys["key"], [(r["value"], r["visitors"], r["events"]) for r in keys["rows"]]) == (
        None,
        [("plan", 2, 2)],
    )
    values = (await client.get(url + "&key=plan", headers=owner.headers)).json()
    assert [(r["value"], r["visitors"]) for r in values["rows"]] == [("free", 1), ("pro", 1)]
    german = (await client.get(url + "&key=plan&filter=device:is:desktop", headers=owner.headers)).json()
    assert [r["value"] for r in german["rows"]] == ["pro"]
    assert (await client.get(url + "&key=nothing", headers=owner.headers)).json()["rows"] == []
