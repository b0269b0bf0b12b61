"""The loader in a real page: a publisher page on another origin (http://news.localhost:<port>) loads
`loader.js` from a real `pentad serve` (http://127.0.0.1:<port>) in headless Chromium. The slot gets its
ad; no viewability beacon is sent while the ad is below the fold, one is sent once it has been in view for a
second, and the campaign's stats then show one served, one viewable and, after a click on the ad (which
lands on the stored destination), one click.

Run it alone with `pytest tests/apps/ads/test_loader_browser.py -m browser`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Route, async_playwright, expect

from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _chromium_or_skip
from tests.factories import free_port
from tests.servers import VENV_BIN, running, serving

pytestmark = pytest.mark.browser

EMAIL = "publisher@example.com"
REAL_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
"""Headless Chromium says HeadlessChrome: the core's bot rules would (rightly) serve it nothing."""
DESTINATION = "https://example.org/landing"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Publisher</title></head><body>
<h1>News</h1>
<div style="height:2000px">Long article</div>
<ins id="slot" data-pentad-zone="{zone}" data-pentad-kv="section:news"></ins>
<script async src="{server}/static/ads/loader.js"></script>
</body></html>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], str]]:
    """`pentad serve` with its own SQLite database; (base URL, owner's auth headers, zone id, campaign id)."""
    data_dir = tmp_path_factory.mktemp("ads-browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    port = free_port()
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{port}",
    }
    password = secrets.token_urlsafe(18)
    pentad = str(VENV_BIN / "pentad")
    for args in (("migrate",), ("user", "create", "--email", EMAIL, "--password", password)):
        subprocess.run([pentad, *args], env=env, cwd=data_dir, check=True, capture_output=True, timeout=60)
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        login = httpx.post(f"{base_url}/api/auth/login", json={"email": EMAIL, "password": password})
        assert login.status_code == 200, login.text
        yield base_url, {"Authorization": f"Bearer {login.json()['access_token']}"}, password


def _setup(base_url: str, headers: dict[str, str]) -> tuple[str, str]:
    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{base_url}/api/ads{path}", json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    site = post("/sites", {"name": "Local", "domain": "news.localhost", "timezone": "UTC"})
    zone = post(f"/sites/{site['id']}/zones", {"name": "Bottom", "width": 300, "height": 250})
    advertiser = post("/advertisers", {"name": "Acme"})
    campaign = post(
        f"/advertisers/{advertiser['id']}/campaigns",
        {
            "name": "Launch",
            "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "pricing": "cpc",
            "rate_micros": 500_000,
            "pacing": "asap",
            "targeting": {"keys": {"section": ["news"]}},
            "zone_ids": [zone["id"]],
        },
    )
    post(
        f"/campaigns/{campaign['id']}/creatives/text",
        {"name": "Ad", "destination_url": DESTINATION, "headline": "Acme rockets", "body": "Fly today"},
    )
    return zone["id"], campaign["id"]


@pytest.fixture(scope="module")
def publisher(
    tmp_path_factory: pytest.TempPathFactory, server: tuple[str, dict[str, str], str]
) -> Iterator[tuple[str, str]]:
    """A static page on another origin with one slot; (page URL, campaign id)."""
    base_url, headers, _ = server
    zone_id, campaign_id = _setup(base_url, headers)
    root = tmp_path_factory.mktemp("publisher")
    (root / "index.html").write_text(PAGE.replace("{server}", base_url).replace("{zone}", zone_id))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(root),
    ]
    with running(command, f"http://127.0.0.1:{port}/index.html", root.parent / "publisher.log"):
        yield f"http://news.localhost:{port}/index.html", campaign_id


async def test_the_loader_renders_counts_a_viewable_impression_and_a_click(
    server: tuple[str, dict[str, str], str], publisher: tuple[str, str]
) -> None:
    _chromium_or_skip()
    base_url, headers, _ = server
    page_url, campaign_id = publisher
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(user_agent=REAL_CHROME, viewport=DESKTOP)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        beacons: list[int] = []
        page.on("request", lambda r: beacons.append(1) if r.url.endswith("/api/ads/v") else None)

        async def landing(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/html", body="<h1>Landing</h1>")

        await context.route("https://example.org/**", landing)
        await page.goto(page_url)
        ad = page.locator("#slot a")
        await expect(ad).to_contain_text("Acme rockets")
        await page.wait_for_timeout(1500)  # below the fold: never viewable
        assert beacons == []

        await page.locator("#slot").scroll_into_view_if_needed()
        await page.wait_for_timeout(300)
        assert beacons == []  # in view, but not for a second yet
        async with page.expect_request(lambda r: r.url.endswith("/api/ads/v")) as sent:
            pass
        answer = await (await sent.value).response()
        assert answer is not None
        assert answer.status == 204
        await page.wait_for_timeout(1500)
        assert len(beacons) == 1  # once per impression

        async with context.expect_page() as opened:
            await ad.click()
        landed = await opened.value
        await expect(landed.get_by_role("heading", name="Landing")).to_be_visible()
        assert landed.url == DESTINATION
        assert problems == []
        await browser.close()

    deadline = time.monotonic() + 15
    stats: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        while time.monotonic() < deadline:  # stored within the ingest streams' flush interval (1 s)
            stats = (await client.get(f"/api/ads/campaigns/{campaign_id}/stats")).json()
            if (stats["served"], stats["viewable"], stats["clicks"]) == (1, 1, 1):
                break
            await asyncio.sleep(0.3)
    assert (stats["served"], stats["viewable"], stats["clicks"], stats["spend_micros"]) == (1, 1, 1, 500_000)
