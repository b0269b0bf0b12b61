"""Chromium on the plugins page of a served panel (its plugin host running as a worker service) with a
real signed marketplace on a loopback static host: the market lists the webhook notifier, Install puts it
in the installed list waiting for approval, Approve lists and grants its capabilities, Enable starts its
process (its status follows the hub's `panel.plugins` topic to `running` without a reload), its UI page
shows in a sandboxed frame that cannot read the panel's cookies, Disable stops it.

Runs once (SQLite: this is about the browser and the plugin process, not the database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import ConsoleMessage, async_playwright

from pentad.core.db.migrate import upgrade_async
from tests.apps.panel.link_support import ServedPanel, served_panel
from tests.apps.panel.plugin_support import EXAMPLES, Market, static_host
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, _chromium_or_skip, _sign_in
from tests.conftest import ALL_APPS, make_settings
from tests.factories import DEFAULT_PASSWORD, bearer, create_admin, issue_api_key

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
STATUS_IS = """(status) => document.querySelector(
  "[data-plugin='webhook-notifier'] [data-testid='plugin-status']").textContent.trim() === status"""


@dataclass
class Stage:
    panel: ServedPanel
    admin_email: str


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    _chromium_or_skip()
    folder = tmp_path_factory.mktemp("plugin-market")
    with static_host(folder) as url:
        market = Market(folder, url)
        market.publish(EXAMPLES / "webhook_notifier")
        yield market


@pytest.fixture(scope="module")
async def stage(tmp_path_factory: pytest.TempPathFactory, market: Market) -> AsyncIterator[Stage]:
    home = tmp_path_factory.mktemp("plugins-panel")
    url = f"sqlite+aiosqlite:///{home / 'panel.db'}"
    await upgrade_async(url, ALL_APPS)
    settings = make_settings(
        home, url, apps=["panel"], ratelimit={"enabled": False},
        panel={"market_sources": [market.source], "market_trusted_keys": [market.index_public]},
    )  # fmt: skip
    async with served_panel(settings) as panel:
        admin = await create_admin(panel.platform)
        headers = bearer(await issue_api_key(panel.platform, admin))
        async with httpx.AsyncClient(base_url=panel.url, headers=headers) as http:
            body = {"publisher": "pentad-examples", "public_key": market.publisher_public}
            assert (await http.post("/api/panel/plugins/publishers", json=body)).status_code == 201
        yield Stage(panel, admin.email)


async def test_install_approve_enable_and_the_sandboxed_frame(stage: Stage) -> None:
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(base_url=stage.panel.url)
            page.on("console", watch)
            page.set_default_timeout(WAIT_MS)
            await page.goto("/login?next=/panel/plugins")
            await _sign_in(page, stage.admin_email, DEFAULT_PASSWORD)
            await page.goto("/panel/plugins")
            offer = page.locator("[data-offer='webhook-notifier']")
            await offer.get_by_role("button", name="Install Webhook notifier").click()

            row = page.locator("[data-plugin='webhook-notifier']")
            await row.get_by_text("(not approved)").first.wait_for()
            await row.get_by_role("button", name="Approve 4 capabilities").click()
            assert await row.get_by_text("(not approved)").count() == 0
            await row.get_by_role("button", name="Enable").click()

            # The status follows the hub's panel.plugins topic: no reload.
            status = row.get_by_test_id("plugin-status")
            await page.wait_for_function(
                "() => document.getElementById('panel-plugins').dataset.link === 'connected'"
            )
            await page.wait_for_function(STATUS_IS, arg="running")

            frame_element = page.locator("iframe[data-plugin-frame='webhook-notifier']")
            assert await frame_element.get_attribute("sandbox") == "allow-scripts"
            frame = page.frame_locator("iframe[data-plugin-frame='webhook-notifier']")
            await frame.get_by_role("heading", name="Webhook notifier").wait_for()
            assert await frame.locator("#origin").text_content() == "origin: null, cookies: blocked"

            await row.get_by_role("button", name="Disable").click()
            await page.wait_for_function(STATUS_IS, arg="stopped")
            assert (await status.text_content() or "").strip() == "stopped"
        finally:
            await browser.close()
    assert [p for p in problems if "document.cookie" not in p] == []
