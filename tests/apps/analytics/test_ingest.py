"""Ingest end to end: events posted the way the tracker posts them are stored by a flush and show in the
statistics with the counts that follow from the inputs; bots and garbage are dropped, counted by reason,
and leave no event; no IP address or user-agent string is stored anywhere."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from pentad.apps.analytics.ingest import DROPPED_HEADER
from pentad.apps.analytics.models import AnalyticsDirtyBucket, AnalyticsDrop, AnalyticsEvent
from pentad.core.platform import Platform
from tests.factories import Account

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HEADLESS = CHROME_MAC.replace("Chrome/", "HeadlessChrome/")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ADDRESSES = {"alice": "194.25.2.129", "bob": "81.2.69.160", "carol": "2.125.160.216"}
"""Public addresses the shipped CC0 country database places in DE, GB and GB."""
AGENTS = {"alice": FIREFOX, "bob": IPHONE, "carol": CHROME_MAC}


async def post(
    client: httpx.AsyncClient, body: Any, *, who: str = "alice", ua: str | None = None, **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        "/api/analytics/event",
        content=content,
        headers={
            "Content-Type": "text/plain",
            "User-Agent": ua if ua is not None else AGENTS[who],
            "X-Forwarded-For": ADDRESSES[who],
            **headers,
        },
    )


def event(name: str = "pageview", path: str = "/", ago: float = 0, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"n": name, "u": f"https://shop.example{path}", "d": "shop.example", **more}
    if ago:
        body["ts"] = int((time.time() - ago) * 1000)
    return body


def _dropped_metric(platform: Platform) -> dict[str, float]:
    """pentad_analytics_dropped_total by reason, as /metrics shows it."""
    found = re.findall(
        r'^pentad_analytics_dropped_total\{reason="(\w+)"\} (\S+)$', platform.metrics.render().decode(), re.M
    )
    return {reason: float(value) for reason, value in found}


async def _count(platform: Platform, model: Any) -> int:
    async with platform.database.transaction(writes=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_posted_events_are_stored_and_counted_in_the_statistics(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    # alice: one visit of two pageviews and a custom event over 90 s, from Google -> not a bounce.
    # bob: one pageview from a direct visit -> a bounce.
    # carol: two pageviews 50 minutes apart (session timeout 10 min) -> two visits, two bounces.
    sent = [
        ("alice", event(path="/", ago=100, r="https://www.google.com/search?q=shop")),
        ("alice", event(path="/pricing", ago=40)),
        ("alice", event("Signup", path="/pricing", ago=10, p={"plan": "pro", "trial": True},
                        v={"amount": "12.50", "currency": "eur"})),
        ("bob", event(path="/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=dec", ago=30)),
        ("carol", event(path="/", ago=3000)),
        ("carol", event(path="/blog/1", ago=0)),
    ]  # fmt: skip
    for who, body in sent:
        response = await post(client, body, who=who)
        assert response.status_code == 202, response.text
        assert DROPPED_HEADER not in response.headers
        assert response.headers["access-control-allow-origin"] == "*"
    assert await _count(platform, AnalyticsEvent) == 0  # durable in the spool, not yet in the table
    assert await platform.ingest.flush() == 6
    assert await _count(platform, AnalyticsEvent) == 6
    assert await _count(platform, AnalyticsDirtyBucket) >= 1

    base = f"/api/analytics/sites/{site['id']}/stats"
    totals = (await client.get(f"{base}/aggregate?period=7d", headers=owner.headers)).json()
    assert {k: totals[k] for k in ("visitors", "visits", "pageviews", "events")} == {
        "visitors": 3, "visits": 4, "pageviews": 5, "events": 1,
    }  # fmt: skip
    assert totals["bounce_rate"] == 75.0
    assert totals["visit_duration"] == pytest.approx(90 / 4, abs=0.2)
    assert totals["views_per_visit"] == 1.25

    series = (await client.get(f"{base}/timeseries?period=7d", headers=owner.headers)).json()
    assert series["interval"] == "day"
    assert len(series["points"]) == 7
    assert sum(p["pageviews"] for p in series["points"]) == 5
    assert series["points"][-1]["visitors"] >= 2  # today: at least bob and carol's second visit
    week_ago, today_date = (datetime.now(UTC) - timedelta(days=6)).date(), datetime.now(UTC).date()
    custom = await client.get(
        f"{base}/aggregate?period=custom&from={week_ago}&to={today_date}", headers=owner.headers
    )
    assert custom.json()["pageviews"] == 5
    backwards = await client.get(
        f"{base}/aggregate?period=custom&from={today_date}&to={week_ago}", headers=owner.headers
    )
    assert backwards.status_code == 400
    assert backwards.json()["code"] == "bad_range"
    today = (await client.get(f"{base}/timeseries?period=day", headers=owner.headers)).json()
    assert today["interval"] == "hour"
    assert len(today["points"]) == 24

    async def rows(dimension: str) -> dict[str, tuple[int, int]]:
        found = await client.get(f"{base}/breakdown/{dimension}?period=7d", headers=owner.headers)
        assert found.status_code == 200, found.text
        return {r["value"]: (r["visitors"], r["pageviews"]) for r in found.json()["rows"]}

    assert await rows("pages") == {"/": (2, 2), "/pricing": (2, 2), "/blog/1": (1, 1)}
    assert await rows("sources") == {"Google": (1, 2), "newsletter": (1, 1), "Direct / None": (1, 2)}
    assert await rows("browsers") == {"Firefox": (1, 2), "Mobile Safari": (1, 1), "Chrome": (1, 2)}
    assert await rows("countries") == {"GB": (2, 3), "DE": (1, 2)}
    assert await rows("devices") == {"desktop": (2, 4), "mobile": (1, 1)}
    assert await rows("utm_campaign") == {
        "dec": (1, 1),
        "(unknown)": (2, 4),
    }
    events = (await client.get(f"{base}/breakdown/events?period=7d", headers=owner.headers)).json()
    assert [(r["value"], r["visitors"], r["events"]) for r in events["rows"]] == [("Signup", 1, 1)]

    async with platform.database.transaction(writes=False) as session:
        signup = (await session.scalars(select(AnalyticsEvent).where(AnalyticsEvent.name == "Signup"))).one()
    assert signup.props == {"plan": "pro", "trial": "true"}
    assert (signup.revenue_micros, signup.currency) == (12_500_000, "EUR")
    assert (signup.os, signup.browser_version, signup.device) == ("Windows", "133", "desktop")
    assert (signup.medium, signup.source) == ("direct", None)  # sent without a referrer


async def test_no_address_or_user_agent_is_stored_anywhere(
    client: httpx.AsyncClient, platform: Platform, site: dict[str, str]
) -> None:
    for who in ADDRESSES:
        assert (await post(client, event(path=f"/{who}"), who=who)).status_code == 202
    assert (await post(client, event(), ua=GOOGLEBOT)).status_code == 202
    assert (await post(client, b"{not json")).status_code == 400
    await platform.ingest.flush()
    assert await _count(platform, AnalyticsEvent) == 3

    secrets = [*ADDRESSES.values(), *AGENTS.values(), GOOGLEBOT, "Gecko/20100101", "AppleWebKit"]
    async with platform.database.transaction(writes=False) as session:
        tables = [
            name
            for name in await session.run_sync(lambda s: s.get_bind().dialect.get_table_names(s.connection()))
            if name.startswith("analytics_")
        ]
        assert "analytics_events" in tables
        assert "analytics_drops" in tables
        for table in tables:
            query = text(f"SELECT * FROM {table}")  # noqa: S608 (names read from the schema)
            for row in (await session.execute(query)).all():
                flat = " ".join(str(value) for value in row)
                for secret in secrets:
                    assert secret not in flat, (table, secret)


async def test_bots_and_excluded_paths_are_accepted_but_dropped_with_the_reason(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    cases = [
        (event(), {"ua": GOOGLEBOT}, "bot_ua"),
        (event(), {"ua": "curl/8.5.0"}, "bot_ua"),
        (event(), {"ua": HEADLESS}, "headless"),
        (event(w=True), {}, "headless"),
        (event(path="/admin/users"), {}, "excluded_path"),
    ]
    before = _dropped_metric(platform)
    for body, options, reason in cases:
        response = await post(client, body, **options)
        assert response.status_code == 202, response.text
        assert response.headers[DROPPED_HEADER] == reason
    after = _dropped_metric(platform)
    assert {r: after.get(r, 0) - before.get(r, 0) for r in after} == {
        "bot_ua": 2,
        "headless": 2,
        "excluded_path": 1,
    }
    await platform.ingest.flush()
    assert await _count(platform, AnalyticsEvent) == 0
    drops = (
        await client.get(f"/api/analytics/sites/{site['id']}/drops?period=day", headers=owner.headers)
    ).json()
    assert drops["total"] == 5
    assert {r["reason"]: r["count"] for r in drops["reasons"]} == {
        "bot_ua": 2,
        "headless": 2,
        "excluded_path": 1,
    }


async def test_garbage_gets_a_clear_4xx_is_counted_and_stores_nothing(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    too_many = {f"k{n}": n for n in range(31)}
    cases: list[tuple[Any, dict[str, str], int, str]] = [
        (b"{not json", {}, 400, "invalid_payload"),
        (b"[1, 2]", {}, 400, "invalid_payload"),
        (b"", {}, 400, "invalid_payload"),
        ({"n": "pageview"}, {}, 422, "invalid_payload"),
        (event(surprise=1), {}, 422, "invalid_payload"),
        ({**event(), "u": "javascript:alert(1)"}, {}, 422, "invalid_payload"),
        ({**event(), "u": "https://[::1/x"}, {}, 422, "invalid_payload"),
        (event(), {"Origin": "https://[::1"}, 403, "origin_mismatch"),
        (event(p={"k": "x" * 2001}), {}, 422, "invalid_payload"),
        (event(v={"amount": "lots", "currency": "EUR"}), {}, 422, "invalid_payload"),
        (event(p=too_many), {}, 422, "too_many_props"),
        ({**event(), "d": "unknown.example"}, {}, 404, "unknown_site"),
        ({**event(), "u": "https://evil.example/"}, {}, 403, "origin_mismatch"),
        (event(), {"Origin": "https://evil.example"}, 403, "origin_mismatch"),
        ({**event(), "ts": int(time.time() * 1000) - 86_400_000}, {}, 400, "bad_timestamp"),
        ({**event(), "ts": int(time.time() * 1000) + 3_600_000}, {}, 400, "bad_timestamp"),
        (event(p={f"pad{n}": "x" * 1999 for n in range(5)}), {}, 413, "payload_too_large"),
    ]  # fmt: skip
    for body, headers, status, code in cases:
        response = await post(client, body, **headers)
        assert response.status_code == status, (
            body if isinstance(body, bytes) else list(body),
            response.text,
        )
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code
    # Accepted from a listed extra host, a subdomain, and through a proxy whose page is on the site.
    for url in ("https://shop-cdn.example/x", "https://www.shop.example/y"):
        ok = await post(client, {**event(), "u": url}, Origin="https://www.shop.example")
        assert ok.status_code == 202, ok.text
    await platform.ingest.flush()
    assert await _count(platform, AnalyticsEvent) == 2
    async with platform.database.transaction(writes=False) as session:
        counted = dict(
            (
                await session.execute(
                    select(AnalyticsDrop.reason, func.sum(AnalyticsDrop.count)).group_by(AnalyticsDrop.reason)
                )
            ).all()
        )
    expected: dict[str, int] = {}
    for _, _, _, code in cases:
        expected[code] = expected.get(code, 0) + 1
    assert {reason: int(total) for reason, total in counted.items()} == expected
