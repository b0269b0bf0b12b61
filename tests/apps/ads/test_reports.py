"""Reports per page and per source: the ads figures (CTR, spend, eCPM, conversions and their rate and
revenue) from the raw rows, joined on a site's report with analytics' traffic (`analytics.page_traffic`
through the core query interface: pageviews, visitors, page RPM) when analytics is enabled, and without
those columns when it is not; CSV too; for those who may read the reports only."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.ads.conversions import GoalsCompleted, attribute_batch
from pentad.apps.ads.spec import APP
from pentad.apps.analytics.spec import APP as ANALYTICS
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.apps.ads.serving import BRITAIN, FIREFOX, GERMANY, Setup, beacon, decide, impressions, setup
from tests.apps.ads.support import grant
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, Account, account, run_due_jobs


async def _deliver(client: httpx.AsyncClient, platform: Platform, ads: Setup) -> None:
    """/news/a: two ads, both viewable, one clicked and converted (12.00); /news/b: one ad, not viewable
    (from a search visit)."""
    first = (await decide(client, ads.zone_id, "/news/a")).json()
    second = (await decide(client, ads.zone_id, "/news/a", address=BRITAIN)).json()
    await decide(client, ads.zone_id, "/news/b", r="https://www.google.com/")
    for answer in (first, second):
        assert (await beacon(client, answer["impression"])).status_code == 204
    await client.get(first["ad"]["click"].replace("http://testserver", ""))
    shown = [row for row in await impressions(platform) if row.path == "/news/a"]
    visitor = next(row.visitor_id for row in shown if str(row.id) == _impression_id(platform, first))
    payload = GoalsCompleted.model_validate(
        {
            "site_domain": ads.domain,
            "completions": [
                {
                    "goal_id": str(uuid.uuid4()), "goal_name": "Purchase", "visitor_id": visitor,
                    "day": datetime.now(UTC).date().isoformat(), "ts": datetime.now(UTC).isoformat(),
                    "path": "/checkout", "revenue_micros": 12_000_000,
                }
            ],
        }
    )  # fmt: skip
    async with platform.database.transaction() as session:
        assert await attribute_batch(session, payload) == 1


def _impression_id(platform: Platform, answer: dict[str, Any]) -> str:
    from pentad.apps.ads.tokens import TokenSigner

    return str(TokenSigner(platform.signing_secret).verify("impression", answer["impression"]).impression_id)


async def test_a_site_report_without_analytics_has_the_ads_figures_and_leaves_the_joined_columns_out(
    client: httpx.AsyncClient, owner: Account, platform: Platform, stranger: Account
) -> None:
    ads = await setup(client, owner, pricing="cpm", rate_micros=2_000_000, conversion_goals=["Purchase"])
    await _deliver(client, platform, ads)

    report = await client.get(f"/api/ads/sites/{ads.site_id}/report", headers=owner.headers)

    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["analytics"], body["analytics_note"]) == (False, "Analytics is not enabled on this server.")
    rows = {row["key"]: row for row in body["rows"]}
    assert list(rows) == ["/news/a", "/news/b"]
    a = rows["/news/a"]
    assert (a["served"], a["viewable"], a["clicks"], a["conversions"]) == (2, 2, 1, 1)
    assert (a["ctr"], a["conversion_rate"], a["conversion_revenue_micros"]) == (0.5, 1.0, 12_000_000)
    assert (a["spend_micros"], a["ecpm_micros"]) == (4000, 2_000_000)  # 2 viewable at 2.00 CPM
    assert (rows["/news/b"]["served"], rows["/news/b"]["viewable"], rows["/news/b"]["spend_micros"]) == (
        1,
        0,
        0,
    )
    assert "pageviews" not in a
    assert "page_rpm_micros" not in body["totals"]
    assert body["totals"]["served"] == 3
    assert sum(day["served"] for day in body["days"]) == 3
    assert len(body["days"]) == 30

    sources = (
        await client.get(f"/api/ads/sites/{ads.site_id}/report?by=source", headers=owner.headers)
    ).json()
    assert {row["key"]: row["served"] for row in sources["rows"]} == {"direct": 2, "search": 1}

    exported = await client.get(f"/api/ads/sites/{ads.site_id}/report.csv", headers=owner.headers)
    assert exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(exported.text)))
    assert lines[0][:4] == ["page", "served", "viewable", "clicks"]
    assert "pageviews" not in lines[0]
    assert lines[1][:4] == ["/news/a", "2", "2", "1"]

    for path in ("report", "report.csv"):
        refused = await client.get(f"/api/ads/sites/{ads.site_id}/{path}", headers=stranger.headers)
        assert refused.status_code == 404
    bad = await client.get(
        f"/api/ads/sites/{ads.site_id}/report?since=2026-12-05&until=2026-12-01", headers=owner.headers
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_range")
    far = await client.get(
        f"/api/ads/sites/{ads.site_id}/report?since=9999-12-01&until=9999-12-31", headers=owner.headers
    )
    assert (far.status_code, far.json()["code"]) == (400, "invalid_range")
    for query in ("until=0001-01-01", "until=0001-01-01&since=0001-01-01", "until=9999-12-31"):
        ancient = await client.get(f"/api/ads/sites/{ads.site_id}/report.csv?{query}", headers=owner.headers)
        assert (ancient.status_code, ancient.json()["code"]) == (400, "invalid_range")  # never a 500
    assert (
        await client.get(f"/api/ads/sites/{ads.site_id}/report?by=zone", headers=owner.headers)
    ).status_code == 422


async def test_a_campaign_report_is_its_advertisers_and_not_the_publishers(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, pricing="cpc", rate_micros=300_000, conversion_goals=["Purchase"])
    await _deliver(client, platform, ads)
    publisher_viewer = await account(platform)
    await grant(platform, publisher_viewer, "ads.site", ads.site_id, "viewer")

    mine = await client.get(f"/api/ads/campaigns/{ads.campaign_id}/report", headers=owner.headers)
    theirs = await client.get(
        f"/api/ads/campaigns/{ads.campaign_id}/report", headers=publisher_viewer.headers
    )
    site = await client.get(f"/api/ads/sites/{ads.site_id}/report", headers=publisher_viewer.headers)

    assert mine.status_code == 200
    assert mine.json()["totals"]["spend_micros"] == 300_000
    assert mine.json()["totals"]["conversions"] == 1
    assert "pageviews" not in mine.json()["totals"]
    assert theirs.status_code == 404
    assert site.status_code == 200


# ------------------------------------------------------------------ with analytics enabled


@pytest.fixture
def settings(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Settings:
    with_analytics = request.node.name.startswith("test_with_analytics")
    return make_settings(
        tmp_path,
        database_url,
        apps=["ads", "analytics"] if with_analytics else ["ads"],
        ratelimit={"enabled": False},
        security={"trusted_proxies": ["127.0.0.1"]},
    )


@pytest.fixture
async def app(settings: Settings, database: Database) -> FastAPI:
    apps = [APP, ANALYTICS] if "analytics" in settings.apps else [APP]
    app = create_app(settings, database=database, apps=apps)
    await app.state.platform.open_resources()
    app.state.platform.ingest._start_flusher = lambda: None
    return app


async def _pageview(
    client: httpx.AsyncClient, domain: str, path: str, address: str, referrer: str = ""
) -> None:
    body = {"n": "pageview", "u": f"https://{domain}{path}", "d": domain, "r": referrer}
    response = await client.post(
        "/api/analytics/event",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain", "User-Agent": FIREFOX, "X-Forwarded-For": address},
    )
    assert response.status_code == 202, response.text


async def test_with_analytics_a_site_report_joins_pageviews_visitors_and_page_rpm(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, pricing="cpm", rate_micros=2_000_000, conversion_goals=["Purchase"])
    tracked = await client.post("/api/analytics/sites", json={"domain": ads.domain}, headers=owner.headers)
    assert tracked.status_code == 201, tracked.text
    for path, address in (
        ("/news/a", GERMANY),
        ("/news/a", BRITAIN),
        ("/news/a", GERMANY),
        ("/news/b", GERMANY),
    ):
        await _pageview(client, ads.domain, path, address)
    await _pageview(client, ads.domain, "/news/b", BRITAIN, "https://www.google.com/")
    await _deliver(client, platform, ads)  # flushes both apps' streams

    body = (await client.get(f"/api/ads/sites/{ads.site_id}/report", headers=owner.headers)).json()
    by_source = (
        await client.get(f"/api/ads/sites/{ads.site_id}/report?by=source", headers=owner.headers)
    ).json()
    exported = await client.get(f"/api/ads/sites/{ads.site_id}/report.csv", headers=owner.headers)

    assert (body["analytics"], body["analytics_note"]) == (True, None)
    rows = {row["key"]: row for row in body["rows"]}
    assert (rows["/news/a"]["pageviews"], rows["/news/a"]["visitors"]) == (3, 2)
    assert rows["/news/a"]["page_rpm_micros"] == pytest.approx(4000 * 1000 / 3)
    assert (rows["/news/b"]["pageviews"], rows["/news/b"]["page_rpm_micros"]) == (2, 0.0)
    assert body["totals"]["pageviews"] == 5
    sources = {row["key"]: row for row in by_source["rows"]}
    assert (sources["direct"]["pageviews"], sources["search"]["pageviews"]) == (4, 1)
    header = next(csv.reader(io.StringIO(exported.text)))
    assert header[-3:] == ["pageviews", "visitors", "page_rpm_micros"]


async def test_with_analytics_a_site_analytics_does_not_track_says_so(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)

    body = (await client.get(f"/api/ads/sites/{ads.site_id}/report", headers=owner.headers)).json()

    assert body["analytics"] is False
    assert body["analytics_note"] == f"Analytics does not track {ads.domain}."
    assert body["rows"] == []
    assert datetime.fromisoformat(body["until"]).date() - datetime.fromisoformat(body["since"]).date() == (
        timedelta(days=29)
    )


async def test_the_report_pages_show_the_table_chart_data_and_csv_to_readers_only(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, pricing="cpm", rate_micros=2_000_000, conversion_goals=["Purchase"])
    await _deliver(client, platform, ads)
    signed_in = await client.post("/login", data={"email": owner.user.email, "password": DEFAULT_PASSWORD})
    assert signed_in.status_code == 303

    page = await client.get(f"/ads/sites/{ads.site_id}/report?by=page")
    campaign_page = await client.get(f"/ads/campaigns/{ads.campaign_id}/report?by=source")
    exported = await client.get(f"/ads/sites/{ads.site_id}/report.csv?by=source")
    bad = await client.get(f"/ads/sites/{ads.site_id}/report?since=yesterday")
    chart = await client.get("/static/vendor/uplot/uPlot.iife.min.js")

    assert page.status_code == 200
    assert '<th scope="row">/news/a</th>' in page.text
    assert "Analytics is not enabled on this server." in page.text
    series = re.search(r'data-series="([^"]+)"', page.text)
    assert series is not None
    assert sum(json.loads(html.unescape(series.group(1)))["served"]) == 3
    assert campaign_page.status_code == 200
    assert '<th scope="row">direct</th>' in campaign_page.text
    assert exported.text.splitlines()[0].startswith("source,served,viewable,clicks")
    assert (bad.status_code, "Give the days as YYYY-MM-DD." in bad.text) == (400, True)
    assert chart.status_code == 200

    stranger = await account(platform)
    await client.post("/logout")
    await client.post("/login", data={"email": stranger.user.email, "password": DEFAULT_PASSWORD})
    for path in (f"/ads/sites/{ads.site_id}/report", f"/ads/campaigns/{ads.campaign_id}/report.csv"):
        assert (await client.get(path)).status_code == 404, path


async def test_with_analytics_a_goal_completed_on_the_site_becomes_the_clicked_campaigns_conversion(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    """End to end through the real analytics app: its ingest flush emits `analytics.goals_completed`, ads'
    subscriber attributes it to the click of the same visitor."""
    ads = await setup(client, owner, conversion_goals=["Signup"])
    tracked = await client.post("/api/analytics/sites", json={"domain": ads.domain}, headers=owner.headers)
    assert tracked.status_code == 201, tracked.text
    goal = await client.post(
        f"/api/analytics/sites/{tracked.json()['id']}/goals",
        json={"kind": "pageview", "path": "/welcome", "name": "Signup"},
        headers=owner.headers,
    )
    assert goal.status_code == 201, goal.text
    answer = (await decide(client, ads.zone_id)).json()  # from GERMANY with FIREFOX, as _pageview posts
    await client.get(answer["ad"]["click"].replace(platform.base_url, ""))
    await _pageview(client, ads.domain, "/welcome", GERMANY)
    await platform.ingest.flush()
    await run_due_jobs(platform)

    stats = (await client.get(f"/api/ads/campaigns/{ads.campaign_id}/stats", headers=owner.headers)).json()
    report = (await client.get(f"/api/ads/campaigns/{ads.campaign_id}/report", headers=owner.headers)).json()
    assert (stats["clicks"], stats["conversions"]) == (1, 1)
    assert report["totals"]["conversions"] == 1
