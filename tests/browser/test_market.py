"""The market pages in headless Chromium against a real `pentad serve` (SQLite, the shipped static data,
order books for Jita and Amarr and Tritanium's history stored by a seeding script): the dashboard, the
station trading table and its uPlot price/volume chart, the hauling search whose route choice changes the
jumps, and the advisor chat: the configured Anthropic endpoint refuses connections, so the page shows the
failover notice and the offline answer streamed from the data.

Run it alone with `pytest tests/browser/test_market.py -m browser`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _chromium_or_skip, _sign_in
from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = pytest.mark.browser

EMAIL = "trader@example.com"
SEED = """
import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from pentad.app import create_app
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.models import HISTORY
from pentad.core.config import Settings
from pentad.core.db.partitions import insert_rows


async def main() -> None:
    platform = create_app(Settings()).state.platform
    captured = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    old = captured - timedelta(days=2)
    books = {
        10000002: [Order(1, 34, 60003760, 30000142, False, 4.00, 1000, 1000, 1, "region", old, 90, 1),
                   Order(2, 34, 60003760, 30000142, True, 3.00, 500, 700, 1, "station", old, 90, 1)],
        10000043: [Order(3, 34, 60008494, 30002187, True, 5.00, 600, 600, 1, "station", old, 90, 1)],
    }
    async with platform.database.transaction() as session:
        for region, orders in books.items():
            await store.store_snapshot(session, region_id=region, captured_at=captured, last_modified=None,
                                       expires_at=None, pages=1, etags={}, orders=orders,
                                       stats=book_stats(orders, captured))
        await insert_rows(session, HISTORY, [
            {"region_id": 10000002, "type_id": 34, "date": date.today() - timedelta(days=n),
             "average": Decimal("3.50") + n, "highest": Decimal("4.00") + n, "lowest": Decimal("3.00"),
             "volume": 1000 * (n + 1), "order_count": 10} for n in range(10)])
    await platform.database.dispose()


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("market-browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    port = free_port()
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_APPS": "market",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{port}",
        # Anthropic is configured, but nothing listens there: the advisor fails over to its offline answer.
        "PENTAD_MARKET__ANTHROPIC_API_KEY": "sk-ant-browser-test-000000000000000000",
        "PENTAD_MARKET__ANTHROPIC_MODEL": "claude-test",
        "PENTAD_MARKET__ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }
    pentad = str(VENV_BIN / "pentad")

    def run(*args: str) -> None:
        subprocess.run([*args], env=env, cwd=data_dir, check=True, capture_output=True, timeout=300)

    run(pentad, "migrate")
    run(pentad, "user", "create", "--email", EMAIL, "--password", password)
    run(pentad, "market", "sde", "import")
    run(sys.executable, "-c", SEED)
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        yield base_url


async def test_trading_hauling_and_the_advisor_in_a_browser(server: str, password: str) -> None:
    _chromium_or_skip()
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        await page.goto(f"{server}/login?next=/market")
        await _sign_in(page, EMAIL, password)
        await expect(page.locator('#hubs tr[data-hub="jita"]')).to_contain_text("captured")

        await page.goto(f"{server}/market/trading?hub=jita&accounting=5")
        row = page.locator("#trades tbody tr").first
        await expect(row).to_contain_text("Tritanium")
        await expect(row).to_contain_text("3.01")
        await row.get_by_role("link", name="Tritanium").click()
        await expect(page.locator("#history-title")).to_have_text("Price history: Tritanium")
        await expect(page.locator("#history-chart canvas")).to_have_count(1)
        # Two series besides time: the average price line and the volume bars.
        await expect(page.locator("#history-chart")).to_have_attribute("data-series", "2")
        await expect(page.locator("#history-chart .u-legend .u-series")).to_have_count(3)

        await page.goto(f"{server}/market/hauling?hubs=jita&hubs=amarr&cargo_m3=5&accounting=5")
        await expect(page.locator("#hauls td.jumps").first).to_have_text("15")  # high-sec only
        await page.get_by_label("Route").select_option("shortest")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("#hauls td.jumps").first).to_have_text("5")
        await expect(page.locator("#hauls td.profit").first).to_have_text("415.62")

        await page.goto(f"{server}/market/advisor")
        await page.get_by_label("Your question").fill("What can I station trade at jita?")
        await page.get_by_role("button", name="Ask").click()
        answer = page.locator("#advisor-log li.advisor-assistant")
        await expect(answer.locator(".advisor-reset")).to_have_text(
            "anthropic failed (connection failed); offline answers instead."
        )
        await expect(answer).to_contain_text("Best station trades at jita")
        await expect(answer).to_contain_text("Tritanium")
        await expect(answer.locator(".advisor-badge")).to_contain_text("offline")
        await browser.close()
    assert problems == []
