"""The trader's pages in headless Chromium against one real `pentad serve` (SQLite, the market app): a
signed-in trader sees their character and orders, the P&L page draws its uPlot chart from
/static/vendor, an alert rule is added through the alerts page's form, and when the server's job fires it
the alert appears on the open page live, over the hub (market.user.{id}).

The trader's character data is written straight into the server's database (the ESI and SSO sides are
covered by tests/apps/market/trader/). Run it alone with `pytest tests/apps/market/test_trader_browser.py
-m browser`."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import select, update

from pentad.apps import enabled_apps
from pentad.apps.market.alert_tasks import EVALUATE_HUB
from pentad.apps.market.models import (
    BOOK_STATS,
    MarketCharacter,
    MarketCharOrder,
    MarketRealized,
    MarketRegionState,
    MarketSnapshot,
)
from pentad.core.auth.models import User
from pentad.core.config import DatabaseSettings, Settings
from pentad.core.db.engine import Database
from pentad.core.db.migrate import upgrade
from pentad.core.db.partitions import insert_rows, insert_target
from pentad.core.jobs.queue import enqueue
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, DESKTOP, _chromium_or_skip, _sign_in
from tests.factories import free_port
from tests.servers import serving

pytestmark = pytest.mark.browser

EMAIL = "trader@example.com"
TRADER = 2112625428
JITA_REGION, JITA_STATION = 10000002, 60003760
TRITANIUM = 34
SEEN_S = 30.0


@dataclass(frozen=True)
class Server:
    base_url: str
    database_url: str
    password: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("market-trader-browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"
    password = secrets.token_urlsafe(18)
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": database_url,
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{port}",
        "PENTAD_ADMIN__EMAIL": EMAIL,
        "PENTAD_ADMIN__PASSWORD": password,
        "PENTAD_APPS": "market",
    }
    upgrade(database_url, enabled_apps(Settings(_env_file=None, apps=["market"])))
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        login = httpx.post(f"{base_url}/api/auth/login", json={"email": EMAIL, "password": password})
        assert login.status_code == 200, login.text
        yield Server(
            base_url, database_url, password, {"Authorization": f"Bearer {login.json()['access_token']}"}
        )


async def _seed(server: Server) -> None:
    """The trader's character with two open orders and a month of realised trades, and Jita's book."""
    database = Database.from_settings(DatabaseSettings(url=server.database_url))
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with database.transaction() as session:
            user_id = await session.scalar(select(User.id).where(User.email == EMAIL))
            assert user_id is not None
            session.add(
                MarketCharacter(
                    user_id=user_id,
                    character_id=TRADER,
                    name="Trader Joe",
                    owner_hash="owner",
                    scopes=["esi-markets.read_character_orders.v1"],
                    status="ok",
                    last_sync={
                        "status": "ok",
                        "at": now.isoformat(),
                        "next_at": (now + timedelta(minutes=20)).isoformat(),
                    },
                )
            )
            for order_id, price, remain in ((5001, "5.50", 400), (5002, "6.10", 1000)):
                session.add(
                    MarketCharOrder(
                        character_id=TRADER,
                        order_id=order_id,
                        type_id=TRITANIUM,
                        location_id=JITA_STATION,
                        region_id=JITA_REGION,
                        is_buy=False,
                        price=Decimal(price),
                        volume_total=1000,
                        volume_remain=remain,
                        issued=now - timedelta(days=1),
                        duration=90,
                        range="region",
                        state="open",
                    )
                )
            for day in range(20):
                session.add(
                    MarketRealized(
                        pool=str(TRADER),
                        type_id=TRITANIUM,
                        character_id=TRADER,
                        sell_transaction_id=9000 + day,
                        date=now - timedelta(days=day),
                        quantity=100,
                        unknown_quantity=0,
                        proceeds=Decimal(600),
                        cost=Decimal(500),
                        tax=Decimal(20),
                        fees=Decimal(0),
                    )
                )
            snapshot = MarketSnapshot(region_id=JITA_REGION, captured_at=now, pages=1, orders=2)
            session.add(snapshot)
            await session.flush()
            session.add(
                MarketRegionState(region_id=JITA_REGION, current_snapshot_id=snapshot.id, captured_at=now)
            )
            await insert_rows(
                session,
                BOOK_STATS,
                [
                    {
                        "captured_at": now,
                        "snapshot_id": snapshot.id,
                        "location_id": JITA_STATION,
                        "type_id": TRITANIUM,
                        "best_bid": Decimal("4.00"),
                        "best_ask": Decimal("4.50"),
                        "bid_count": 1,
                        "ask_count": 1,
                        "bid_units": 100,
                        "ask_units": 100,
                        "updates_last_hour": 0,
                    }
                ],
            )
    finally:
        await database.dispose()


async def _fire_hub_alerts(server: Server) -> None:
    """Tritanium's best ask at Jita falls to 3.90 (as a new book would say) and the hub rules are
    evaluated on it."""
    database = Database.from_settings(DatabaseSettings(url=server.database_url))
    try:
        async with database.transaction() as session:
            state = await session.get(MarketRegionState, JITA_REGION)
            assert state is not None
            assert state.captured_at is not None
            stats = insert_target(BOOK_STATS, "sqlite", state.captured_at)
            await session.execute(
                update(stats).where(stats.c.type_id == TRITANIUM).values(best_ask=Decimal("3.90"))
            )
            await enqueue(session, EVALUATE_HUB, {"region_id": JITA_REGION})
    finally:
        await database.dispose()


async def test_orders_pnl_and_a_live_alert_in_chromium(server: Server) -> None:
    _chromium_or_skip()
    await _seed(server)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=DESKTOP)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{server.base_url}/login?next=/market/orders")
            await _sign_in(page, EMAIL, server.password)
            await expect(page.get_by_role("heading", name="My orders")).to_be_visible()
            await expect(
                page.locator('[data-character="2112625428"] [data-sync-status="ok"]')
            ).to_be_visible()
            await expect(page.locator('[data-order="5001"]')).to_contain_text("60 % (600/1000)")
            await expect(page.locator('[data-order="5002"]')).to_contain_text("sell")

            await page.goto(f"{server.base_url}/market/pnl?days=30")
            await expect(page.locator("[data-total-profit]")).to_contain_text("1,600.00 ISK")
            await expect(page.locator('#pnl-chart[data-chart-ready="true"] canvas')).to_have_count(1)

            await page.goto(f"{server.base_url}/market/alerts")
            await page.get_by_label("Kind").select_option("price_cross")
            await page.get_by_label("Parameters (JSON)").fill(
                '{"hub": "jita", "type_id": 34, "side": "sell", "direction": "below", "price": 4}'
            )  # the best ask is 4.50: nothing fires when the rule is added
            await page.get_by_role("button", name="Add rule").click()
            await expect(page.locator("[data-rule]")).to_have_count(1)
            await expect(page.locator("#alerts-live")).to_have_attribute(
                "data-live-state", "connected", timeout=SEEN_S * 1000
            )
            await _fire_hub_alerts(server)
            live = page.locator("#alerts-fired li[data-live]")
            await expect(live).to_have_count(1, timeout=SEEN_S * 1000)
            await expect(live).to_contain_text("below 4.00")
            assert errors == []
        finally:
            await browser.close()
    async with httpx.AsyncClient() as client:
        events = (
            await client.get(f"{server.base_url}/api/market/alerts/events", headers=server.headers)
        ).json()
    assert [event["subject"] for event in events] == ["price:jita:34:sell"]
