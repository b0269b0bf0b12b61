"""Issue 13's Done-when page, end to end in headless Chromium against ONE real `pentad serve`
(http://127.0.0.1:<port>, SQLite): a publisher page on another origin (http://news.localhost:<port>)
carries the analytics tracker and an ad zone.

- analytics: the pageview, a History API navigation, a custom event with a property, a file download and
  an outbound click arrive (202) and show on the site's dashboard, read through the dashboard page after
  signing in; a browser that opted out sends nothing;
- ads: the zone renders the campaign's creative; no viewability beacon is sent (and the stats count no
  viewable impression) while the ad is below the fold or has been in view for less than a second; once
  it has been in view for a second one beacon is sent and the stats count it; a click on the ad goes
  through the signed click URL, lands on the destination and counts.

Run it alone with `pytest tests/browser/test_analytics_ads.py -m browser`.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Request, Route, async_playwright, expect

from pentad.apps import enabled_apps
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade
from tests.browser.test_account_flow import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    SCREENSHOTS,
    _chromium_or_skip,
    _sign_in,
)
from tests.factories import free_port
from tests.servers import running, serving

pytestmark = pytest.mark.browser

EMAIL = "publisher@example.com"
REAL_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
"""Headless Chromium says HeadlessChrome and sets navigator.webdriver: the tracker and the ad server's bot
filters would (rightly) drop it, so the visitor here looks like a person's browser."""
DESTINATION = "https://example.org/landing"
EVENT = "/api/analytics/event"
APPS = ["analytics", "ads"]
SEEN_S = 30.0
"""How long to wait for rows to be stored: the ingest streams flush every second."""
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Publisher</title>
<script>
window.pentad = window.pentad || function () { (window.pentad.q = window.pentad.q || []).push(arguments) }
</script>
<script defer data-domain="news.localhost" src="{server}/analytics/js/script.js"></script>
</head><body>
<h1>Publisher</h1>
<button id="spa" onclick="history.pushState({}, '', '/spa/pricing')">Pricing</button>
<button id="signup" onclick="pentad('Signup', {props: {plan: 'pro'}})">Sign up</button>
<a id="report" href="/files/report.pdf" target="_blank">Report</a>
<a id="out" href="https://example.org/partner">Partner</a>
<div style="height:2000px">Long article</div>
<ins id="slot" data-pentad-zone="{zone}" data-pentad-kv="section:news"></ins>
<div style="height:600px"></div>
<script async src="{server}/static/ads/loader.js"></script>
</body></html>
"""


@dataclass(frozen=True)
class Server:
    base_url: str
    password: str
    headers: dict[str, str]
    """The publisher's bearer token for the stats API."""
    site_id: str
    """The analytics site `news.localhost`."""
    zone_id: str
    campaign_id: str


def _post(base_url: str, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{base_url}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`pentad serve` with its own SQLite database and a publisher (the first admin) who owns the
    analytics site `news.localhost` and an ads site `news.localhost` with one zone and one active campaign
    with a text ad."""
    data_dir = tmp_path_factory.mktemp("analytics-ads-browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    port = free_port()
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{port}",
    }
    password = secrets.token_urlsafe(18)
    env |= {"PENTAD_ADMIN__EMAIL": EMAIL, "PENTAD_ADMIN__PASSWORD": password}  # created by `serve`
    env["PENTAD_APPS"] = ",".join(APPS)
    # Migrated here (what `pentad migrate` runs), without the start-up of another interpreter.
    upgrade(env["PENTAD_DATABASE__URL"], enabled_apps(Settings(_env_file=None, apps=APPS)))
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        login = httpx.post(f"{base_url}/api/auth/login", json={"email": EMAIL, "password": password})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        site = _post(base_url, headers, "/api/analytics/sites", {"domain": "news.localhost"})
        ads_site = _post(
            base_url, headers, "/api/ads/sites",
            {"name": "News", "domain": "news.localhost", "timezone": "UTC"},
        )  # fmt: skip
        zone = _post(
            base_url, headers, f"/api/ads/sites/{ads_site['id']}/zones",
            {"name": "Bottom", "width": 300, "height": 250},
        )  # fmt: skip
        advertiser = _post(base_url, headers, "/api/ads/advertisers", {"name": "Acme"})
        campaign = _post(
            base_url, headers, f"/api/ads/advertisers/{advertiser['id']}/campaigns",
            {
                "name": "Launch", "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                "pricing": "cpc", "rate_micros": 500_000, "pacing": "asap",
                "targeting": {"keys": {"section": ["news"]}}, "zone_ids": [zone["id"]],
            },
        )  # fmt: skip
        _post(
            base_url, headers, f"/api/ads/campaigns/{campaign['id']}/creatives/text",
            {"name": "Ad", "destination_url": DESTINATION, "headline": "Acme rockets", "body": "Fly today"},
        )  # fmt: skip
        yield Server(base_url, password, headers, str(site["id"]), str(zone["id"]), str(campaign["id"]))


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory, server: Server) -> Iterator[str]:
    """A static site on another origin (a plain HTTP server) with the tracker and the zone on its page."""
    root = tmp_path_factory.mktemp("publisher")
    page = PAGE.replace("{server}", server.base_url).replace("{zone}", server.zone_id)
    (root / "index.html").write_text(page)
    (root / "files").mkdir()
    (root / "files" / "report.pdf").write_bytes(b"%PDF-1.4\n")
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory"]
    command.append(str(root))
    with running(command, f"http://127.0.0.1:{port}/index.html", root.parent / "publisher.log"):
        yield f"http://news.localhost:{port}"


async def _visitor(context: BrowserContext) -> Page:
    """A page in `context` that passes for a person's browser; example.org answers from here."""
    await context.add_init_script("Object.defineProperty(navigator, 'webdriver', {get: () => false})")

    async def elsewhere(route: Route) -> None:
        heading = "Landing" if route.request.url == DESTINATION else "Partner"
        await route.fulfill(status=200, content_type="text/html", body=f"<h1>{heading}</h1>")

    await context.route("https://example.org/**", elsewhere)
    return await context.new_page()


async def _stats(server: Server, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The campaign's stats from the API, polled until `until` holds or SEEN_S passed."""
    deadline = time.monotonic() + SEEN_S
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as client:
        while True:
            answer = await client.get(f"/api/ads/campaigns/{server.campaign_id}/stats")
            assert answer.status_code == 200, answer.text
            stats: dict[str, Any] = answer.json()
            if until(stats) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.2)


def _counts(stats: dict[str, Any]) -> tuple[int, int, int]:
    return stats["served"], stats["viewable"], stats["clicks"]


async def test_tracked_events_and_an_ad_on_one_publisher_page(server: Server, publisher: str) -> None:
    _chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--disable-blink-features=AutomationControlled"],
        )
        problems: list[str] = []

        # A browser that opted out of analytics loads the page: the tracker sends nothing.
        quiet = await browser.new_context(user_agent=REAL_CHROME)
        await quiet.add_init_script("localStorage.setItem('pentad_ignore', 'true')")
        quiet_page = await _visitor(quiet)
        await quiet.route("**/static/ads/loader.js", lambda route: route.abort())  # (its ad is no visit)
        tracked: list[str] = []
        quiet_page.on("request", lambda r: tracked.append(r.url) if r.url.endswith(EVENT) else None)
        await quiet_page.goto(f"{publisher}/index.html")
        await quiet_page.wait_for_load_state("networkidle")
        await quiet.close()
        assert tracked == []

        visitor = await browser.new_context(user_agent=REAL_CHROME, viewport=DESKTOP)
        page = await _visitor(visitor)
        page.on("pageerror", lambda error: problems.append(str(error)))
        sent: list[str] = []
        accepted: list[int] = []
        beacons: list[Request] = []

        def on_request(request: Request) -> None:
            if request.url.endswith(EVENT):
                sent.append(request.post_data or "")
            elif request.url.endswith("/api/ads/v"):
                beacons.append(request)

        page.on("request", on_request)
        page.on("response", lambda r: accepted.append(r.status) if r.url.endswith(EVENT) else None)
        await page.goto(f"{publisher}/index.html")
        ad = page.locator("#slot a")
        await expect(ad).to_contain_text("Acme rockets")  # the zone rendered the creative

        # analytics: SPA navigation, a custom event, a file download, all while the ad is below the fold.
        await page.click("#spa")
        await expect(page).to_have_url(f"{publisher}/spa/pricing")
        await page.click("#signup")
        async with visitor.expect_page() as download_tab:
            await page.click("#report")
        await (await download_tab.value).close()

        # ads: served, but never viewable below the fold.
        assert _counts(await _stats(server, lambda s: s["served"] == 1)) == (1, 0, 0)
        assert beacons == []
        # In view for 0.6 s: not yet viewable, nothing sent, nothing counted.
        await page.locator("#slot").scroll_into_view_if_needed()
        await page.wait_for_timeout(600)
        assert beacons == []
        assert _counts(await _stats(server, lambda s: True)) == (1, 0, 0)
        # In view for a second: one beacon, answered 204, counted once.
        async with page.expect_request(lambda r: r.url.endswith("/api/ads/v")) as beacon:
            pass
        answer = await (await beacon.value).response()
        assert answer is not None
        assert answer.status == 204
        assert _counts(await _stats(server, lambda s: s["viewable"] == 1)) == (1, 1, 0)

        # A click on the ad: through the signed click URL to the destination, counted and charged.
        click_url = await ad.get_attribute("href")
        assert click_url is not None
        assert click_url.startswith(f"{server.base_url}/")
        async with visitor.expect_page() as opened:
            await ad.click()
        landed = await opened.value
        await expect(landed.get_by_role("heading", name="Landing")).to_be_visible()
        assert landed.url == DESTINATION
        await landed.close()
        stats = await _stats(server, lambda s: s["clicks"] == 1)
        assert (*_counts(stats), stats["spend_micros"]) == (1, 1, 1, 500_000)
        assert len(beacons) == 1  # once per impression

        # analytics: the outbound click leaves the page.
        await page.click("#out")
        await expect(page.get_by_role("heading", name="Partner")).to_be_visible()
        # pageview, navigation, Signup, download, the ad's outbound click, the partner link.
        assert len(sent) == 6, sent
        assert set(accepted) <= {202}, accepted  # the last answers (keepalive) may come after the page left

        # The publisher reads it all on the dashboard.
        owner = await browser.new_context(viewport=DESKTOP, base_url=server.base_url)
        dashboard = await owner.new_page()
        dashboard.on("pageerror", lambda error: problems.append(str(error)))
        await dashboard.goto(f"/analytics/{server.site_id}")
        await _sign_in(dashboard, EMAIL, server.password)
        # the dashboard keeps its range (and filters) in the query string
        await expect(dashboard).to_have_url(
            re.compile(re.escape(f"{server.base_url}/analytics/{server.site_id}") + r"(\?.*)?$")
        )
        events = dashboard.locator('[data-breakdown="events"] tbody')
        # Two outbound clicks (the ad's and the partner link): the last event sent, stored within a flush.
        outbound = events.locator("tr", has_text="Outbound Link: Click").locator("td")
        deadline = time.monotonic() + SEEN_S
        while True:  # each load gets its time to render (a loaded machine needs seconds), then reload
            try:
                await expect(outbound).to_have_text(["Outbound Link: Click", "1", "2"], timeout=4000)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await dashboard.reload()
        await expect(dashboard.locator('[data-stat="pageviews"]')).to_have_text("2")
        await expect(dashboard.locator('[data-stat="visitors"]')).to_have_text("1")
        await expect(dashboard.locator('[data-stat="visits"]')).to_have_text("1")
        pages = dashboard.locator('[data-breakdown="pages"] tbody')
        await expect(pages).to_contain_text("/index.html")
        await expect(pages).to_contain_text("/spa/pricing")
        for name in ("Signup", "File Download"):
            await expect(events).to_contain_text(name)
        await expect(dashboard.locator("#chart canvas")).to_have_count(1)
        await dashboard.screenshot(path=str(SCREENSHOTS / "pentad-analytics-dashboard.png"), full_page=True)
        assert problems == []
        await browser.close()
