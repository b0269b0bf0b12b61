"""The market pages without a browser: sign-in required, the dashboard, the station trading and hauling
tables rendered from stored books, the price history the chart draws, the advisor page and its stream
used with the page's session and CSRF token, and uPlot served from /static/vendor. (Drawing the chart and
the chat in Chromium is left to a browser test.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.models import HISTORY
from pentad.core.db.engine import Database
from pentad.core.db.partitions import insert_rows
from pentad.core.platform import Platform
from tests.factories import DEFAULT_PASSWORD, create_user

JITA_STATION, JITA_SYSTEM, JITA_REGION = 60003760, 30000142, 10000002
AMARR_STATION, AMARR_SYSTEM, AMARR_REGION = 60008494, 30002187, 10000043
TRITANIUM = 34
CAPTURED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)


@pytest.fixture
def database(static_db: Database) -> Database:
    return static_db


async def _seed(database: Database) -> None:
    old = CAPTURED - timedelta(days=2)
    books = {
        JITA_REGION: [
            Order(1, TRITANIUM, JITA_STATION, JITA_SYSTEM, False, 4.00, 1000, 1000, 1, "region", old, 90, 1),
            Order(2, TRITANIUM, JITA_STATION, JITA_SYSTEM, True, 3.00, 500, 700, 1, "station", old, 90, 1),
        ],
        AMARR_REGION: [
            Order(3, TRITANIUM, AMARR_STATION, AMARR_SYSTEM, True, 5.00, 600, 600, 1, "station", old, 90, 1)
        ],
    }
    async with database.transaction() as session:
        for region, orders in books.items():
            await store.store_snapshot(
                session, region_id=region, captured_at=CAPTURED, last_modified=None, expires_at=None,
                pages=1, etags={}, orders=orders, stats=book_stats(orders, CAPTURED),
            )  # fmt: skip
        today = date.today()
        await insert_rows(session, HISTORY, [
            {"region_id": JITA_REGION, "type_id": TRITANIUM, "date": today - timedelta(days=n),
             "average": Decimal("3.50") + n, "highest": Decimal("4.00") + n, "lowest": Decimal("3.00"),
             "volume": 1000 * (n + 1), "order_count": 10}
            for n in range(3)
        ])  # fmt: skip


async def _sign_in(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


async def test_the_pages_need_a_signed_in_trader(client: httpx.AsyncClient) -> None:
    for path in ("/market", "/market/trading", "/market/hauling", "/market/advisor"):
        answer = await client.get(path)
        assert answer.status_code in (302, 303)
        assert answer.headers["location"].startswith("/login")


async def test_a_trader_sees_the_hubs_the_trades_the_hauls_and_the_history(
    platform: Platform, client: httpx.AsyncClient, database: Database
) -> None:
    await _seed(database)
    await _sign_in(client, platform)
    dashboard = await client.get("/market")
    assert dashboard.status_code == 200
    assert 'data-hub="jita"' in dashboard.text
    assert "Jita IV - Moon 4 - Caldari Navy Assembly Plant" in dashboard.text
    trading = await client.get("/market/trading", params={"hub": "jita", "accounting": 5})
    assert trading.status_code == 200
    row = re.search(r'data-type="34" data-hub="jita">Tritanium</a></td>\s*<td>([\d.]+)</td><td>([\d.]+)</td>',
                    trading.text)  # fmt: skip
    assert row is not None
    assert row.groups() == ("3.01", "3.99")
    assert "/static/vendor/uplot/uPlot.iife.min.js" in trading.text
    bad = await client.get("/market/trading", params={"hub": "jita", "accounting": 9})
    assert bad.status_code == 200
    assert "Check the form" in bad.text
    hauling = await client.get(
        "/market/hauling", params={"hubs": ["jita", "amarr"], "cargo_m3": 5, "accounting": 5}
    )
    assert hauling.status_code == 200
    assert re.search(
        r"<td>Tritanium</td><td>jita</td><td>amarr</td><td class=\"jumps\">15</td>", hauling.text
    )
    assert '<td class="profit">415.62</td>' in hauling.text
    history = await client.get(f"/api/market/hubs/jita/history/{TRITANIUM}", params={"days": 10})
    assert history.status_code == 200
    days = history.json()["days"]
    assert [(d["volume"], Decimal(d["average"])) for d in days] == [
        (3000, Decimal("5.50")), (2000, Decimal("4.50")), (1000, Decimal("3.50"))]  # fmt: skip
    vendor = await client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert vendor.status_code == 200
    assert "uPlot" in vendor.text[:2000]


async def test_the_advisor_page_streams_an_answer_with_the_session(
    platform: Platform, client: httpx.AsyncClient, database: Database
) -> None:
    await _seed(database)
    await _sign_in(client, platform)
    page = await client.get("/market/advisor")
    assert page.status_code == 200
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token is not None
    without = await client.post("/api/market/advisor/ask/stream", json={"question": "Hauls?"})
    assert without.status_code == 403  # a session needs its CSRF token
    async with client.stream(
        "POST", "/api/market/advisor/ask/stream", json={"question": "Any hauls from jita to amarr?"},
        headers={"X-CSRF-Token": token.group(1)},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        raw = (await response.aread()).decode()
    done = json.loads(raw.strip().split("\n\n")[-1].split("\n")[1].removeprefix("data: "))
    assert done["provider"] == "offline"  # no AI provider is configured here
    assert "Tritanium from jita to amarr" in done["text"]
