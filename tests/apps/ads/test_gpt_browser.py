"""GPT zones and HTML5 creatives in a real page (headless Chromium, a real `pentad serve`, the publisher's
page on another origin with tests/fakes/gpt.js standing in for Google's gpt.js):

- a `gpt` zone defines a googletag slot with its ad unit, size and Pentad's key-values, and when GPT
  answers empty (`slotRenderEnded.isEmpty`) the direct ad fills the slot; when GPT fills it, it stays GPT's;
- an HTML5 creative renders in a sandboxed frame, and its click opens the signed click URL it got as
  clickTAG, which lands on the advertiser's destination.

Run it alone with `pytest tests/apps/ads/test_gpt_browser.py -m browser`.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Route, async_playwright, expect

from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _chromium_or_skip
from tests.factories import free_port
from tests.servers import VENV_BIN, running, serving

pytestmark = pytest.mark.browser

FAKE_GPT = Path(__file__).parents[2] / "fakes" / "gpt.js"
REAL_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
DESTINATION = "https://example.org/landing"
AD_UNIT = "/1234/news_top"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Publisher</title>
<script>window.googletag = window.googletag || {cmd: []};</script>
<script async src="gpt.js"></script>
</head><body>
<ins id="gpt" data-pentad-zone="{gpt_zone}" data-pentad-kv="section:news"></ins>
<ins id="h5" data-pentad-zone="{html5_zone}" data-pentad-kv="section:h5"></ins>
<script async src="{server}/static/ads/loader.js"></script>
</body></html>
"""
HTML5 = b"""<!doctype html><html><body style="margin:0">
<button id="buy">Buy now</button>
<script>
document.getElementById('buy').onclick = function () {
  window.open(new URLSearchParams(location.search).get('clickTAG'), '_blank');
};
</script></body></html>"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("ads-gpt")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    port = free_port()
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{port}",
        "PENTAD_APPS": "ads",
    }
    password = secrets.token_urlsafe(18)
    pentad = str(VENV_BIN / "pentad")
    for args in (("migrate",), ("user", "create", "--email", "gpt@example.com", "--password", password)):
        subprocess.run([pentad, *args], env=env, cwd=data_dir, check=True, capture_output=True, timeout=60)
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        login = httpx.post(
            f"{base_url}/api/auth/login", json={"email": "gpt@example.com", "password": password}
        )
        assert login.status_code == 200, login.text
        yield base_url, {"Authorization": f"Bearer {login.json()['access_token']}"}


def _setup(base_url: str, headers: dict[str, str]) -> tuple[str, str]:
    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{base_url}/api/ads{path}", json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    site = post("/sites", {"name": "Local", "domain": "news.localhost", "timezone": "UTC"})
    gpt = post(
        f"/sites/{site['id']}/zones",
        {"name": "Top", "width": 300, "height": 250, "mode": "gpt", "gpt_ad_unit": AD_UNIT},
    )
    direct = post(f"/sites/{site['id']}/zones", {"name": "Side", "width": 300, "height": 250})
    advertiser = post("/advertisers", {"name": "Acme"})
    running = {"starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(), "pacing": "asap"}
    text = post(
        f"/advertisers/{advertiser['id']}/campaigns",
        {"name": "Direct", "pricing": "cpc", "rate_micros": 1, "zone_ids": [gpt["id"]], **running},
    )
    post(
        f"/campaigns/{text['id']}/creatives/text",
        {"name": "Ad", "destination_url": DESTINATION, "headline": "Acme rockets", "body": "Fly today"},
    )
    rich = post(
        f"/advertisers/{advertiser['id']}/campaigns",
        {"name": "Rich", "pricing": "cpc", "rate_micros": 1, "zone_ids": [direct["id"]], **running},
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", HTML5)
    uploaded = httpx.post(
        f"{base_url}/api/ads/campaigns/{rich['id']}/creatives/html5",
        data={"name": "Rich", "destination_url": DESTINATION, "width": "300", "height": "250"},
        files={"file": ("ad.zip", buffer.getvalue(), "application/zip")},
        headers=headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    return gpt["id"], direct["id"]


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory, server: tuple[str, dict[str, str]]) -> Iterator[str]:
    base_url, headers = server
    gpt_zone, html5_zone = _setup(base_url, headers)
    root = tmp_path_factory.mktemp("gpt-publisher")
    page = (
        PAGE.replace("{server}", base_url).replace("{gpt_zone}", gpt_zone).replace("{html5_zone}", html5_zone)
    )
    (root / "index.html").write_text(page)
    shutil.copy(FAKE_GPT, root / "gpt.js")
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
    with running(command, f"http://127.0.0.1:{port}/index.html", root.parent / "gpt-publisher.log"):
        yield f"http://news.localhost:{port}/index.html"


async def test_gpt_slots_get_pentads_targeting_and_fall_back_to_direct_and_html5_clicks_through(
    publisher: str,
) -> None:
    _chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(user_agent=REAL_CHROME, viewport=DESKTOP)

        async def landing(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/html", body="<h1>Landing</h1>")

        await context.route("https://example.org/**", landing)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))

        await page.goto(publisher)  # GPT answers empty: the direct ad fills the slot
        await expect(page.locator("#gpt a")).to_contain_text("Acme rockets")
        calls = await page.evaluate("window.fakeGpt.calls")
        assert ["defineSlot", AD_UNIT, [[300, 250]], "pentad-gpt-1"] in calls
        assert ["slot.setTargeting", "section", "news"] in calls
        assert ["slot.setTargeting", "pt_path", "/index.html"] in calls
        assert ["slot.addService", "pubads"] in calls
        assert calls.index(["enableServices"]) < calls.index(["display", "pentad-gpt-1"])

        frame = page.locator("#h5 iframe")
        assert (
            await frame.get_attribute("sandbox")
            == "allow-scripts allow-popups allow-popups-to-escape-sandbox"
        )
        async with context.expect_page() as opened:
            await page.frame_locator("#h5 iframe").get_by_role("button", name="Buy now").click()
        landed = await opened.value
        await expect(landed.get_by_role("heading", name="Landing")).to_be_visible()
        assert landed.url == DESTINATION

        await page.goto(publisher + "?fill=1")  # GPT fills it: no direct ad
        await expect(page.locator("#gpt .gpt-ad")).to_have_text(f"GPT ad for {AD_UNIT}")
        assert await page.locator("#gpt a").count() == 0
        assert problems == []
        await browser.close()
