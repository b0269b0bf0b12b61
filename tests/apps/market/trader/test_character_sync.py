"""A linked character's data from ESI end to end: the real SSO client refreshes the token at the fake SSO,
the real ESI client asks the fake ESI's authenticated character routes, and one transaction stores orders,
wallet, skills, standings and the FIFO P&L; ESI failures store nothing, a revoked token shows
`needs_reauth`, routes are not asked again before their Expires and answer 304 after it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select, update

from pentad.apps.market.ingest.character import SCHEDULE, SYNC
from pentad.apps.market.models import (
    MarketCharacter,
    MarketCharOrder,
    MarketEsiCache,
    MarketIngestRun,
    MarketRealized,
    MarketSkill,
    MarketStanding,
    MarketWalletJournal,
    MarketWalletTransaction,
)
from pentad.core.db.base import utcnow
from pentad.core.platform import Platform
from tests.apps.market.esi_support import CONTACT
from tests.apps.market.trader_support import TRADER, Account, account, link, sync, trader_data
from tests.factories import run_due_jobs
from tests.fakes.market.esi_characters import CharacterEsi
from tests.fakes.market.sso import FakeSso


async def count(platform: Platform, model: Any, character_id: int = TRADER) -> int:
    async with platform.database.transaction(writes=False) as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(model).where(model.character_id == character_id)
            )
            or 0
        )


async def runs(platform: Platform) -> list[MarketIngestRun]:
    async with platform.database.transaction(writes=False) as session:
        return list(
            await session.scalars(
                select(MarketIngestRun)
                .where(MarketIngestRun.kind == "character")
                .order_by(MarketIngestRun.started_at)
            )
        )


async def test_a_sync_stores_everything_with_the_characters_token(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    outcome = await sync(platform, link_id)
    assert outcome.status == "ok", outcome
    seen = chars.requests(TRADER)
    assert {s.path for s in seen} == {
        f"/characters/{TRADER}/{p}"
        for p in (
            "orders/",
            "orders/history/",
            "wallet/transactions/",
            "wallet/journal/",
            "skills/",
            "standings/",
        )
    }
    assert all(s.status == 200 and (s.authorization or "").startswith("Bearer ey") for s in seen)
    assert all(CONTACT in (s.user_agent or "") for s in seen)
    async with platform.database.transaction(writes=False) as session:
        orders = {o.order_id: o for o in await session.scalars(select(MarketCharOrder))}
        assert {k: o.state for k, o in orders.items()} == {
            5001: "open",
            5002: "open",
            4001: "filled",
            4002: "cancelled",
        }
        assert orders[5002].is_buy
        assert not orders[5001].is_buy
        assert orders[5001].volume_remain == 400
        assert orders[5001].price == Decimal("5.50")
        skills = {s.skill_id: s.level for s in await session.scalars(select(MarketSkill))}
        assert skills == {16622: 4, 3446: 5, 16597: 3, 3443: 2}
        standings = {s.from_id: s.standing for s in await session.scalars(select(MarketStanding))}
        assert standings == {1000035: 2.5, 500001: -1.25}
        # FIFO by hand: 12 sold at 150 = 1800; cost 10 x 100 + 2 x 120 = 1240; tax 54 -> 506.
        (realized,) = await session.scalars(select(MarketRealized))
        assert (realized.quantity, realized.proceeds, realized.cost, realized.tax) == (
            12,
            Decimal("1800.00"),
            Decimal("1240.00"),
            Decimal("54.00"),
        )
        character = await session.get(MarketCharacter, link_id)
        assert character is not None
        assert character.last_sync is not None
        assert character.last_sync["status"] == "ok"
    assert await count(platform, MarketWalletTransaction) == 3
    assert await count(platform, MarketWalletJournal) == 2
    assert [r.status for r in await runs(platform)] == ["ok"]

    # Nothing is asked again before the routes' Expires.
    before = len(chars.requests())
    assert (await sync(platform, link_id)).status == "ok"
    assert len(chars.requests()) == before


async def test_after_expires_routes_are_asked_with_their_etag_and_304_keeps_the_data(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    assert (await sync(platform, link_id)).status == "ok"
    async with platform.database.transaction() as session:
        await session.execute(update(MarketEsiCache).values(expires_at=utcnow() - timedelta(seconds=1)))
    before = len(chars.requests())
    chars.data(TRADER).orders[0]["volume_remain"] = 300  # only the open orders changed
    assert (await sync(platform, link_id)).status == "ok"
    again = chars.requests()[before:]
    assert len(again) == 6
    assert all(s.if_none_match for s in again)
    assert sorted(s.status for s in again) == [200, 304, 304, 304, 304, 304]
    async with platform.database.transaction(writes=False) as session:
        changed = await session.scalar(select(MarketCharOrder).where(MarketCharOrder.order_id == 5001))
        assert changed is not None
        assert changed.volume_remain == 300
    assert await count(platform, MarketWalletTransaction) == 3


async def test_an_esi_failure_mid_run_stores_nothing(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    chars.fail("journal", 503, times=5)
    outcome = await sync(platform, link_id)
    assert outcome.status == "deferred"
    assert outcome.retry_after
    assert "esi_unavailable" in (outcome.detail or "")
    for model in (MarketCharOrder, MarketWalletTransaction, MarketSkill):
        assert await count(platform, model) == 0
    async with platform.database.transaction(writes=False) as session:
        assert await session.scalar(select(func.count()).select_from(MarketEsiCache)) == 0
    assert [r.status for r in await runs(platform)] == ["deferred"]

    chars.faults.clear()
    chars.malformed("skills")  # one cut body: retried, then fine
    assert (await sync(platform, link_id)).status == "ok"
    assert await count(platform, MarketSkill) == 4


async def test_a_revoked_token_shows_needs_reauth_and_asks_nothing(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    sso.revoke_character(TRADER)
    outcome = await sync(platform, link_id)
    assert outcome.status == "needs_reauth"
    assert chars.requests() == []
    listed = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed[0]["status"] == "needs_reauth"
    status = (await client.get(f"/api/market/characters/{link_id}/sync", headers=alice)).json()
    assert status["status"] == "needs_reauth"
    assert "link it again" in status["detail"]
    assert [r.status for r in await runs(platform)] == ["needs_reauth"]


async def test_the_schedule_queues_due_characters_and_the_job_syncs(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    response = await client.post(f"/api/market/characters/{link_id}/sync", headers=alice)
    assert response.status_code == 202, response.text
    await run_due_jobs(platform)
    status = (await client.get(f"/api/market/characters/{link_id}/sync", headers=alice)).json()
    assert status["status"] == "ok"
    assert status["next_at"]
    assert await count(platform, MarketCharOrder) == 4
    from pentad.core.jobs.queue import enqueue

    async with platform.database.transaction() as session:
        await enqueue(session, SCHEDULE, {})
    await run_due_jobs(platform)  # not due yet: nothing queued, nothing asked
    assert len([s for s in chars.requests() if s.path.endswith("/orders/")]) == 1
    assert SYNC.startswith("market.")


async def test_sync_routes_deny_others(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    link_id = await link(client, alice, TRADER, sso)
    bob = await account(platform)
    for method in ("GET", "POST"):
        response = await client.request(method, f"/api/market/characters/{link_id}/sync", headers=bob)
        assert response.status_code == 404
        assert response.json()["code"] == "character_not_found"
        response = await client.request(method, f"/api/market/characters/{uuid.uuid4()}/sync", headers=alice)
        assert response.status_code == 404
        assert (await client.request(method, f"/api/market/characters/{link_id}/sync")).status_code == 401


async def test_esi_refusing_the_token_fails_the_run_and_stores_nothing(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    trader_data(chars)
    link_id = await link(client, alice, TRADER, sso)
    chars.fail("standings", 403)
    outcome = await sync(platform, link_id)
    assert outcome.status == "failed"
    assert "ESI refused the character's token (403)" in (outcome.detail or "")
    assert await count(platform, MarketCharOrder) == 0
    status = (await client.get(f"/api/market/characters/{link_id}/sync", headers=alice)).json()
    assert status["status"] == "failed"
    assert status["next_at"] is not None  # tried again later, not at once
    listed = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed[0]["status"] == "ok"  # the SSO link itself is fine
