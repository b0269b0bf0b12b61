"""/api/market/hubs/{hub}/station-trading and /api/market/hauling over stored books: the figures the pure
analysis gives, fee rates from the skills asked, the five-minute cache per book, the deny side and bad input
as problem+json."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from pentad.apps.market.actions import scans
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.factories import bearer, create_admin, create_user, issue_api_key

JITA_STATION, JITA_SYSTEM, JITA_REGION = 60003760, 30000142, 10000002
AMARR_STATION, AMARR_SYSTEM, AMARR_REGION = 60008494, 30002187, 10000043
TRITANIUM = 34
CAPTURED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)


@pytest.fixture
def database(static_db: Database) -> Database:
    return static_db


async def _headers(platform: Platform, *, scopes: tuple[str, ...] = ("*",)) -> dict[str, str]:
    return bearer(await issue_api_key(platform, await create_user(platform), scopes))


async def _store(database: Database, region: int, orders: list[Order], captured: datetime = CAPTURED) -> None:
    async with database.transaction() as session:
        await store.store_snapshot(
            session, region_id=region, captured_at=captured, last_modified=None, expires_at=None, pages=1,
            etags={}, orders=orders, stats=book_stats(orders, captured),
        )  # fmt: skip


def _books() -> tuple[list[Order], list[Order]]:
    old = CAPTURED - timedelta(days=2)
    jita = [
        Order(1, TRITANIUM, JITA_STATION, JITA_SYSTEM, False, 4.00, 1000, 1000, 1, "region", old, 90, 1),
        Order(2, TRITANIUM, JITA_STATION, JITA_SYSTEM, True, 3.00, 500, 700, 1, "station", old, 90, 1),
    ]
    amarr = [Order(3, TRITANIUM, AMARR_STATION, AMARR_SYSTEM, True, 5.00, 600, 600, 1, "station", old, 90, 1)]
    return jita, amarr


async def test_hauling_answers_the_analysis_and_caches_it(
    platform: Platform, client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await _headers(platform)
    jita, amarr = _books()
    await _store(database, JITA_REGION, jita)
    await _store(database, AMARR_REGION, amarr)
    calls: list[Any] = []
    real = scans.hauling_search

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await real(*args, **kwargs)

    monkeypatch.setattr(scans, "hauling_search", counted)
    params = {"hubs": ["jita", "amarr"], "cargo_m3": 5, "collateral": 1_000_000, "accounting": 5}
    answer = await client.get("/api/market/hauling", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["hubs"] == ["jita", "amarr"]
    assert body["preference"] == "secure"
    assert Decimal(body["sales_tax"]) == Decimal("0.03375")
    (haul,) = body["hauls"]
    # 5 m3 / 0.01 m3 = 500 units: cost 2000.00, revenue 2500.00, tax 84.375 -> 84.38, profit 415.62;
    # secure Jita -> Amarr is 15 jumps: 27.71 a jump.
    assert (haul["type_name"], haul["source"], haul["destination"], haul["units"], haul["limited_by"]) == (
        "Tritanium", "jita", "amarr", 500, "cargo")  # fmt: skip
    assert [Decimal(haul[k]) for k in ("cost", "revenue", "tax", "profit", "profit_per_jump")] == [
        Decimal("2000.00"), Decimal("2500.00"), Decimal("84.38"), Decimal("415.62"),
        Decimal("27.71")]  # fmt: skip
    assert haul["jumps"] == 15
    again = await client.get("/api/market/hauling", params=params, headers=headers)
    assert again.json() == body
    assert len(calls) == 1  # the same question on the same books: from the cache
    shortest = await client.get(
        "/api/market/hauling", params=params | {"preference": "shortest"}, headers=headers
    )
    assert shortest.json()["hauls"][0]["jumps"] == 5
    assert len(calls) == 2
    # A new Amarr book is a new answer at once (the key names the snapshots).
    await _store(database, AMARR_REGION, amarr[:0], CAPTURED + timedelta(minutes=1))
    emptied = await client.get("/api/market/hauling", params=params, headers=headers)
    assert emptied.json()["hauls"] == []
    assert len(calls) == 3


async def test_station_trading_at_a_hub(
    platform: Platform, client: httpx.AsyncClient, database: Database
) -> None:
    headers = await _headers(platform)
    jita, _ = _books()
    await _store(database, JITA_REGION, jita)
    answer = await client.get(
        "/api/market/hubs/jita/station-trading",
        params={"broker_relations": 5, "accounting": 5, "faction_standing": "2.5"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["hub"], body["station_id"], body["region_id"]) == ("jita", JITA_STATION, JITA_REGION)
    # Broker: 3 % - 5 x 0.3 % - 2.5 x 0.03 % = 1.425 %; tax 7.5 % x (1 - 0.55) = 3.375 %.
    assert {k: Decimal(v) for k, v in body["rates"].items()} == {
        "broker": Decimal("0.01425"), "sales_tax": Decimal("0.03375"),
        "relist": Decimal("0.007125")}  # fmt: skip
    (trade,) = body["trades"]
    assert (trade["type_name"], Decimal(trade["best_bid"]), Decimal(trade["best_ask"])) == (
        "Tritanium", Decimal("3.00"), Decimal("4.00"))  # fmt: skip
    # Book activity: 200 units over 2 days = 100 a day, one more trader on the thinner side: 50 a day.
    assert trade["volume_source"] == "book"
    assert Decimal(trade["units_per_day"]) == Decimal("50")
    # One tick (0.01 ISK at least) inside the best prices.
    assert (Decimal(trade["buy_price"]), Decimal(trade["sell_price"])) == (Decimal("3.01"), Decimal("3.99"))
    filtered = await client.get(
        "/api/market/hubs/jita/station-trading", params={"min_daily_volume": 1000}, headers=headers
    )
    assert filtered.json()["trades"] == []


@pytest.mark.parametrize("path", ["/api/market/hubs/jita/station-trading", "/api/market/hauling"])
async def test_without_credentials_or_permission_nothing_is_answered(
    platform: Platform, client: httpx.AsyncClient, path: str
) -> None:
    assert (await client.get(path)).status_code == 401
    admin = await create_admin(platform)
    unscoped = bearer(await issue_api_key(platform, admin, ("core.api_keys.own",)))
    answer = await client.get(path, headers=unscoped)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/market/hubs/nowhere/station-trading", 404, "unknown_hub"),
        ("/api/market/hubs/jita/station-trading", 409, "no_market_data"),
        ("/api/market/hubs/Jita!/station-trading", 422, None),
        ("/api/market/hubs/jita/station-trading?accounting=6", 422, None),
        ("/api/market/hubs/jita/station-trading?faction_standing=11", 422, None),
        ("/api/market/hubs/jita/station-trading?limit=0", 422, None),
        ("/api/market/hubs/jita/station-trading?max_capital=-5", 422, None),
        ("/api/market/hubs/jita/station-trading?surprise=1", 422, None),
        ("/api/market/hauling?hubs=jita&hubs=atlantis", 404, "unknown_hub"),
        ("/api/market/hauling", 409, "no_market_data"),
        ("/api/market/hauling?preference=fastest", 422, None),
        ("/api/market/hauling?cargo_m3=0", 422, None),
        ("/api/market/hauling?collateral=abc", 422, None),
    ],
)
async def test_bad_input_is_a_problem(
    platform: Platform, client: httpx.AsyncClient, path: str, status: int, code: str | None
) -> None:
    answer = await client.get(path, headers=await _headers(platform))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    if code:
        assert answer.json()["code"] == code
