"""The tracker in a real page: a publisher page on another origin (http://localhost:<port>) loads the
tracker from a real `pentad serve` (http://127.0.0.1:<port>) in headless Chromium; its pageview, a
History API navigation, a custom event, a file download and an outbound click arrive and show on the
site's dashboard (live counter, map, properties); a click on a row filters the dashboard, the owner adds
a goal and makes a shared link that opens read-only without signing in; a browser that opted out sends
nothing.

Run it alone with `pytest tests/browser/test_analytics.py -m browser`.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.async_api import BrowserContext, Page, Route, async_playwright, expect

from tests.browser.test_account_flow import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    SCREENSHOTS,
    _chromium_or_skip,
    _sign_in,
)
from tests.factories import free_port
from tests.servers import VENV_BIN, running, serving

pytestmark = pytest.mark.browser

EMAIL = "owner@example.com"
REAL_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
"""Headless Chromium says HeadlessChrome and sets navigator.webdriver: the tracker's own bot filter would
drop it (as it should), so the visitor here looks like a person's browser."""
SEEN_MS = 15_000
PUBLISHER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Publisher</title>
<script>
window.pentad = window.pentad || function () { (window.pentad.q = window.pentad.q || []).push(arguments) }
</script>
<script defer data-domain="localhost" src="{server}/analytics/js/script.js"></script>
</head><body>
<h1>Publisher</h1>
<button id="spa" onclick="history.pushState({}, '', '/spa/pricing')">Pricing</button>
<button id="signup" onclick="pentad('Signup', {props: {plan: 'pro'}})">Sign up</button>
<a id="report" href="/files/report.pdf" target="_blank">Report</a>
<a id="out" href="https://example.org/partner">Partner</a>
</body></html>
"""


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[tuple[str, str]]:
    """`pentad serve` with its own SQLite database, an owner and the site `localhost`; (base URL, site id)."""
    data_dir = tmp_path_factory.mktemp("analytics-browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    port = free_port()
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{port}",
    }
    pentad = str(VENV_BIN / "pentad")

    def run(*args: str) -> str:
        done = subprocess.run(
            [pentad, *args], env=env, cwd=data_dir, check=True, capture_output=True, timeout=60
        )
        return done.stdout.decode()

    run("migrate")
    run("user", "create", "--email", EMAIL, "--password", password)
    created = run("analytics", "site", "create", "localhost", "--owner", EMAIL)
    found = re.search(r"\(([0-9a-f-]{36})\)", created)
    assert found, created
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        yield base_url, found.group(1)


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory, server: tuple[str, str]) -> Iterator[str]:
    """A static site on another origin (a plain HTTP server) with the tracker on its page."""
    root = tmp_path_factory.mktemp("publisher")
    (root / "index.html").write_text(PUBLISHER_PAGE.replace("{server}", server[0]))
    (root / "files").mkdir()
    (root / "files" / "report.pdf").write_bytes(b"%PDF-1.4\n")
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
        yield f"http://localhost:{port}"


async def _visitor(context: BrowserContext) -> Page:
    await context.add_init_script("Object.defineProperty(navigator, 'webdriver', {get: () => false})")
    page = await context.new_page()

    async def partner(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<h1>Partner</h1>")

    await page.route("https://example.org/**", partner)
    return page


async def test_tracked_events_show_on_the_dashboard(
    server: tuple[str, str], publisher: str, password: str
) -> None:
    _chromium_or_skip()
    base_url, site_id = server
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--disable-blink-features=AutomationControlled"],
        )
        problems: list[str] = []

        # A browser that opted out loads the page: nothing is sent.
        quiet = await browser.new_context(user_agent=REAL_CHROME)
        await quiet.add_init_script("localStorage.setItem('pentad_ignore', 'true')")
        quiet_page = await _visitor(quiet)
        posted: list[str] = []
        quiet_page.on(
            "request", lambda request: posted.append(request.url) if request.method == "POST" else None
        )
        await quiet_page.goto(f"{publisher}/index.html")
        await quiet_page.wait_for_load_state("networkidle")
        assert posted == []

        visitor = await browser.new_context(user_agent=REAL_CHROME, viewport=DESKTOP)
        page = await _visitor(visitor)
        page.on("pageerror", lambda error: problems.append(str(error)))
        sent: list[str] = []
        accepted: list[int] = []
        page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/api/analytics/event") else None)
        page.on(
            "response",
            lambda r: accepted.append(r.status) if r.url.endswith("/api/analytics/event") else None,
        )
        await page.goto(f"{publisher}/index.html")
        await page.wait_for_load_state("networkidle")
        await page.click("#spa")
        await expect(page).to_have_url(f"{publisher}/spa/pricing")
        await page.click("#signup")
        async with visitor.expect_page() as download_tab:
            await page.click("#report")
        await (await download_tab.value).close()
        await page.click("#out")
        await expect(page.get_by_role("heading", name="Partner")).to_be_visible()
        # Five events sent; the outbound click's answer (keepalive) may come after the page left.
        assert len(sent) == 5, sent
        assert set(accepted) == {202}, accepted

        owner = await browser.new_context(viewport=DESKTOP, base_url=base_url)
        dashboard = await owner.new_page()
        dashboard.on("pageerror", lambda error: problems.append(str(error)))
        await dashboard.goto(f"/analytics/{site_id}")
        await _sign_in(dashboard, EMAIL, password)
        # the dashboard keeps its range and filters in its URL
        await expect(dashboard).to_have_url(
            re.compile(re.escape(f"{base_url}/analytics/{site_id}") + r"\?period=30d$")
        )
        # Stored within the ingest stream's flush interval (1 s): reload until the numbers are there.
        pageviews = dashboard.locator('[data-stat="pageviews"]')
        deadline = time.monotonic() + SEEN_MS / 1000
        while (await pageviews.text_content()) != "2" and time.monotonic() < deadline:
            await dashboard.wait_for_timeout(300)
            await dashboard.reload()
        await expect(pageviews).to_have_text("2")
        await expect(dashboard.locator('[data-stat="visitors"]')).to_have_text("1")
        await expect(dashboard.locator('[data-stat="visits"]')).to_have_text("1")
        pages = dashboard.locator('[data-breakdown="pages"] tbody')
        await expect(pages).to_contain_text("/index.html")
        await expect(pages).to_contain_text("/spa/pricing")
        events = dashboard.locator('[data-breakdown="events"] tbody')
        for name in ("Signup", "File Download", "Outbound Link: Click"):
            await expect(events).to_contain_text(name)
        await expect(dashboard.locator("#chart canvas")).to_have_count(1)
        await expect(dashboard.locator("#live-visitors")).to_have_text("1")  # within the last 5 minutes
        assert await dashboard.locator("#map path[data-country]").count() > 150
        await expect(dashboard.locator("[data-props] tbody")).to_contain_text("plan")

        # A click on a row filters every panel by it; the URL keeps the filter.
        await pages.get_by_role("button", name="/spa/pricing").click()
        await expect(dashboard.locator("#filters")).to_contain_text("Page is /spa/pricing")
        await expect(pageviews).to_have_text("1")
        assert "filter=page%3Ais%3A%2Fspa%2Fpricing" in dashboard.url
        await dashboard.get_by_role("button", name=re.compile("Remove the filter")).click()
        await expect(pageviews).to_have_text("2")

        # The owner adds a goal; its conversions show.
        await dashboard.select_option("#goal-kind", "event")
        await dashboard.fill("#goal-target", "Signup")
        await dashboard.get_by_role("button", name="Add goal").click()
        goals = dashboard.locator("[data-goals] tbody")
        await expect(goals).to_contain_text("Signup")
        await expect(goals.locator("tr").first).to_contain_text("100 %")
        await dashboard.screenshot(path=str(SCREENSHOTS / "pentad-analytics-dashboard.png"), full_page=True)

        # A public shared link opens the dashboard read-only, without signing in.
        await dashboard.fill("#share-label", "press")
        await dashboard.get_by_role("button", name="Make a link").click()
        link = dashboard.locator("#shares a")
        await expect(link).to_have_text("press")
        stranger = await browser.new_context(viewport=DESKTOP)
        public = await stranger.new_page()
        public.on("pageerror", lambda error: problems.append(str(error)))
        await public.goto(str(await link.get_attribute("href")))
        await expect(public.locator('[data-stat="pageviews"]')).to_have_text("2")
        await expect(public.locator("[data-goals] tbody")).to_contain_text("Signup")
        assert await public.locator("#goal-form, #share-form, #snippet").count() == 0
        assert problems == []
        await browser.close()
