"""My orders against the current book (undercut, outbid, beaten since my update, expiry, fill), P&L
per item and per day by hand, fee rates from the character's synced skills and standings, and the deny
side of each route."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from pentad.apps.market import sde
from pentad.apps.market.advisor.tools import ToolBox
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.ingest.orders import refresh_region
from pentad.core.auth.principal import Principal
from pentad.core.platform import Platform
from tests.apps.market.esi_support import FakeEsiServer
from tests.apps.market.trader_support import (
    ALT,
    PYERITE,
    TRADER,
    TRITANIUM,
    Account,
    account,
    expire_routes,
    link,
    sync,
    trader_data,
    tx,
)
from tests.fakes.market.esi import JITA_REGION, JITA_STATION, JITA_SYSTEM
from tests.fakes.market.esi_characters import CharacterEsi, order
from tests.fakes.market.sso import FakeSso

D = Decimal


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def book_order(
    order_id: int, type_id: int, price: float, issued: datetime, *, is_buy: bool = False
) -> dict[str, Any]:
    return {
        "duration": 90,
        "is_buy_order": is_buy,
        "issued": stamp(issued),
        "location_id": JITA_STATION,
        "min_volume": 1,
        "order_id": order_id,
        "price": price,
        "range": "region",
        "system_id": JITA_SYSTEM,
        "type_id": type_id,
        "volume_remain": 100,
        "volume_total": 100,
    }


async def test_my_orders_against_the_current_book(
    client: httpx.AsyncClient,
    platform: Platform,
    alice: Account,
    sso: FakeSso,
    chars: CharacterEsi,
    esi: FakeEsiServer,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    mine_at = now - timedelta(days=2)
    data = chars.data(TRADER)
    data.orders = [
        order(5001, TRITANIUM, 5.5, volume_total=1000, volume_remain=400, issued=stamp(mine_at)),
        order(5002, PYERITE, 9.0, is_buy=True, volume_total=200, issued=stamp(mine_at)),
        order(5003, TRITANIUM, 6.0, volume_total=10, issued=stamp(now - timedelta(days=89, hours=12))),
    ]
    chars.data(ALT).orders = [order(6001, TRITANIUM, 5.0, volume_total=5, issued=stamp(now))]
    esi.fake.set_book(
        JITA_REGION,
        [
            book_order(5001, TRITANIUM, 5.5, mine_at),  # mine: not competition
            book_order(5003, TRITANIUM, 6.0, mine_at),
            book_order(6001, TRITANIUM, 5.0, now),  # my alt's: not competition either
            book_order(8001, TRITANIUM, 5.4, now - timedelta(hours=1)),  # undercuts me, after my update
            book_order(8002, TRITANIUM, 5.6, now),
            book_order(8003, PYERITE, 8.9, now, is_buy=True),
            book_order(8004, PYERITE, 9.1, mine_at - timedelta(days=1), is_buy=True),  # outbid me before
        ],
    )
    client_esi = platform.resource(ESI_CLIENT)
    assert client_esi is not None
    assert (await refresh_region(platform, client_esi, JITA_REGION)).status == "ok"
    trader = await link(client, alice, TRADER, sso)
    alt = await link(client, alice, ALT, sso)
    assert (await sync(platform, trader)).status == "ok"
    assert (await sync(platform, alt)).status == "ok"

    response = await client.get("/api/market/orders", headers=alice, params={"character": str(trader)})
    assert response.status_code == 200, response.text
    found = {o["order_id"]: o for o in response.json()}
    assert set(found) == {5001, 5002, 5003}
    sell = found[5001]
    assert (sell["undercut"], sell["beaten_since_update"], sell["competitors_ahead"]) == (True, True, 1)
    assert D(sell["best_competitor"]) == D("5.40")
    assert sell["filled"] == 0.6
    assert sell["expiring"] is False
    assert sell["book_captured_at"] is not None
    buy = found[5002]
    assert (buy["undercut"], buy["beaten_since_update"], buy["competitors_ahead"]) == (True, False, 1)
    assert D(buy["best_competitor"]) == D("9.10")
    old = found[5003]
    assert old["expiring"] is True  # 12 h left, within EXPIRY_WARNING_HOURS
    assert old["competitors_ahead"] == 2  # 5.40 and 5.60 are both below 6.00

    everyone = (await client.get("/api/market/orders", headers=alice)).json()
    assert {o["order_id"] for o in everyone} == {5001, 5002, 5003, 6001}

    # The advisor's `my_orders` tool answers from the same data, undercut orders first.
    principal = Principal(
        kind="user", id=alice.user.id, label=alice.user.email, roles=frozenset({"member"}),
        permissions=frozenset({"market.use", "market.advisor"}), via="api_key", credential_id=uuid.uuid4(),
    )  # fmt: skip
    answer = await ToolBox(platform, principal, principal.actor()).call("my_orders", {})
    assert (answer["open_orders"], answer["undercut"]) == (4, sum(o["undercut"] for o in everyone))
    assert [o["undercut"] for o in answer["orders"]] == sorted(
        (o["undercut"] for o in answer["orders"]), reverse=True
    )
    assert {o["price_isk"] for o in answer["orders"]} == {str(D(o["price"])) for o in everyone}

    # The deny side: another user sees none of it, and cannot name alice's character.
    bob = await account(platform)
    assert (await client.get("/api/market/orders", headers=bob)).json() == []
    denied = await client.get("/api/market/orders", headers=bob, params={"character": str(trader)})
    assert denied.status_code == 404
    assert denied.json()["code"] == "character_not_found"
    assert (await client.get("/api/market/orders")).status_code == 401
    bad = await client.get("/api/market/orders", headers=alice, params={"state": "sideways"})
    assert bad.status_code == 422


async def test_pnl_per_item_and_per_day_by_hand(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    assert (await sync(platform, link_id)).status == "ok"
    response = await client.get("/api/market/pnl", headers=alice, params={"until": "2026-02-05", "days": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    (item,) = body["items"]
    # 12 sold at 150 = 1800; FIFO cost 10 x 100 + 2 x 120 = 1240; tax 54; broker fee 30 on order 5001
    # (a Tritanium order) -> 476.
    assert item["type_id"] == TRITANIUM
    assert (item["quantity_sold"], D(item["proceeds"]), D(item["cost"])) == (12, D(1800), D(1240))
    assert (D(item["sales_tax"]), D(item["broker_fees"]), D(item["profit"])) == (D(54), D(30), D(476))
    assert D(body["total"]["profit"]) == D(476)
    assert D(body["open_lots_value"]) == D(360)  # 3 units left of the lot at 120
    daily = {p["day"]: (D(p["profit"]), D(p["cumulative"])) for p in body["daily"]}
    assert len(daily) == 7
    assert daily["2026-02-01"] == (D(-30), D(-30))
    assert daily["2026-02-03"] == (D(506), D(476))
    assert daily["2026-02-05"] == (D(0), D(476))

    one = await client.get(f"/api/market/pnl/types/{PYERITE}", headers=alice, params={"until": "2026-02-05"})
    assert one.status_code == 200
    assert one.json()["items"] == []
    assert D(one.json()["total"]["profit"]) == 0

    bob = await account(platform)
    assert (
        await client.get("/api/market/pnl", headers=bob, params={"character": str(link_id)})
    ).status_code == 404
    assert D((await client.get("/api/market/pnl", headers=bob)).json()["total"]["profit"]) == 0
    assert (await client.get("/api/market/pnl", headers=alice, params={"days": 0})).status_code == 422


async def test_fees_come_from_the_characters_synced_skills_and_standings(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    async with platform.database.transaction() as session:
        await sde.import_subset(session)
    link_id = await link(client, alice, TRADER, sso)
    before = (
        await client.get(
            f"/api/market/characters/{link_id}/fees", headers=alice, params={"station_id": JITA_STATION}
        )
    ).json()
    assert before["skills_synced"] is False
    assert D(before["broker_rate"]) == D("0.03")
    trader_data(
        chars
    )  # Accounting 4, Broker Relations 5, Advanced BR 3; Caldari Navy +2.5, Caldari State -1.25
    assert (await sync(platform, link_id)).status == "ok"
    fees = (
        await client.get(
            f"/api/market/characters/{link_id}/fees", headers=alice, params={"station_id": JITA_STATION}
        )
    ).json()
    assert fees["skills_synced"] is True
    assert (fees["accounting"], fees["broker_relations"], fees["advanced_broker_relations"]) == (4, 5, 3)
    # broker = 0.03 - 0.003 x 5 - 0.0003 x (-1.25) - 0.0002 x 2.5 = 0.014875
    assert D(fees["broker_rate"]) == D("0.014875")
    # tax = 0.075 x (1 - 0.11 x 4) = 0.042; relist = (0.5 - 0.05 x 3) x 0.014875 = 0.00520625
    assert D(fees["sales_tax_rate"]) == D("0.042")
    assert D(fees["relist_rate"]) == D("0.00520625")

    unknown = await client.get(
        f"/api/market/characters/{link_id}/fees", headers=alice, params={"station_id": 1}
    )
    assert unknown.status_code == 404
    bob = await account(platform)
    other = await client.get(
        f"/api/market/characters/{link_id}/fees", headers=bob, params={"station_id": JITA_STATION}
    )
    assert other.status_code == 404
    missing = await client.get(
        f"/api/market/characters/{uuid.uuid4()}/fees", headers=alice, params={"station_id": JITA_STATION}
    )
    assert missing.status_code == 404


async def test_pooled_pnl_matches_a_sell_with_a_buy_on_another_character(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    chars.data(ALT).transactions = [tx(9101, "2026-02-01T10:00:00Z", TRITANIUM, 10, 100.0, True)]
    chars.data(TRADER).transactions = [tx(9102, "2026-02-02T10:00:00Z", TRITANIUM, 10, 150.0, False)]
    trader = await link(client, alice, TRADER, sso)
    alt = await link(client, alice, ALT, sso)
    assert (await sync(platform, trader)).status == "ok"
    assert (await sync(platform, alt)).status == "ok"
    window = {"until": "2026-02-03", "days": 5}
    apart = (await client.get("/api/market/pnl", headers=alice, params=window)).json()
    assert (apart["total"]["unknown_cost_quantity"], D(apart["total"]["profit"])) == (10, D(0))

    prefs = await client.put(
        "/api/market/alerts/prefs", headers=alice, json={"pool_characters_for_pnl": True}
    )
    assert prefs.status_code == 200
    assert prefs.json()["pool_characters_for_pnl"] is True
    pooled = (await client.get("/api/market/pnl", headers=alice, params=window)).json()
    # 10 sold at 150 by the trader, bought at 100 by the alt: 500.
    assert (pooled["total"]["unknown_cost_quantity"], D(pooled["total"]["profit"])) == (0, D(500))
    one = await client.get("/api/market/pnl", headers=alice, params={**window, "character": str(trader)})
    assert D(one.json()["total"]["cost"]) == D(1000)
    # A later sync keeps the pool up to date.
    chars.data(ALT).transactions.append(tx(9103, "2026-02-02T12:00:00Z", TRITANIUM, 5, 90.0, False))
    await expire_routes(platform)
    assert (await sync(platform, alt)).status == "ok"
    again = (await client.get("/api/market/pnl", headers=alice, params=window)).json()
    assert (again["total"]["unknown_cost_quantity"], D(again["total"]["proceeds"])) == (5, D(1500))
