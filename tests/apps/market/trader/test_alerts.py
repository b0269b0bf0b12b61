"""Alerts end to end: rules over the API (validation, deny side), an undercut found by a character sync
fires once — a frame on the user's own topic, a mail to a real SMTP server on loopback, a Web Push the
subscribed browser decrypts — and re-arms when it clears; hub rules (price crossing, margin from the
character's own fees) fire from the current book; quiet hours hold mail and push back, and past the
hourly limit alerts fold into one digest."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from pentad.apps.market import sde
from pentad.apps.market.alert_tasks import DIGEST, EVALUATE_HUB, ON_SNAPSHOT
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.ingest.orders import refresh_region
from pentad.apps.market.models import MarketAlertEvent, MarketPushSubscription
from pentad.apps.market.sso_tasks import REFRESH_TOKEN
from pentad.core.jobs.models import Job
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform
from tests.apps.chat.sockets import connected
from tests.apps.chat.test_push import Device, FakePushService
from tests.apps.market.esi_support import FakeEsiServer
from tests.apps.market.trader_support import PYERITE, TRADER, TRITANIUM, Account, account, link, sync
from tests.core.auth.test_password_reset import Inbox
from tests.factories import run_due_jobs
from tests.fakes.market.esi import JITA_REGION, JITA_STATION, JITA_SYSTEM
from tests.fakes.market.esi_characters import CharacterEsi, order
from tests.fakes.market.sso import FakeSso


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    await platform.hub.start()
    yield
    await platform.hub.stop()


@pytest.fixture
def push_service() -> Any:
    from tests.apps.chat import test_push

    yield from test_push.push_service.__wrapped__()  # type: ignore[attr-defined]


def token(who: Account) -> str:
    return who["Authorization"].removeprefix("Bearer ")


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


async def store_book(platform: Platform, esi: FakeEsiServer, orders: list[dict[str, Any]]) -> None:
    esi.fake.set_book(JITA_REGION, orders)
    client = platform.resource(ESI_CLIENT)
    assert client is not None
    assert (await refresh_region(platform, client, JITA_REGION, force=True)).status == "ok"


async def rule(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/market/alerts/rules", headers=who, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def events(platform: Platform) -> list[MarketAlertEvent]:
    async with platform.database.transaction(writes=False) as session:
        return list(await session.scalars(select(MarketAlertEvent).order_by(MarketAlertEvent.fired_at)))


async def test_rules_api_checks_input_and_keeps_to_the_owner(
    client: httpx.AsyncClient, platform: Platform, alice: Account
) -> None:
    created = await rule(client, alice, kind="expiring", params={"hours": 6}, channels=["hub", "mail"])
    assert created["params"] == {"hours": 6}
    assert created["channels"] == ["hub", "mail"]
    price = await rule(
        client,
        alice,
        kind="price_cross",
        params={"hub": "jita", "type_id": TRITANIUM, "side": "sell", "direction": "below", "price": 5},
    )
    assert price["params"]["price"] == "5.00"
    bad_bodies = [
        {"kind": "expiring", "params": {"hours": 0}},
        {"kind": "expiring", "params": {"minutes": 5}},
        {
            "kind": "price_cross",
            "params": {"hub": "nowhere", "type_id": 34, "side": "sell", "direction": "above", "price": 1},
        },
        {
            "kind": "price_cross",
            "params": {"hub": "jita", "type_id": 34, "side": "sell", "direction": "up", "price": 1},
        },
        {
            "kind": "price_cross",
            "params": {"hub": "jita", "type_id": 34, "side": "sell", "direction": "above", "price": "NaN"},
        },
        {"kind": "margin", "params": {"hub": "jita", "types": [], "min_margin": 0.1}},
        {
            "kind": "margin",
            "params": {"hub": "jita", "types": [34], "min_margin": 0.1, "character": str(uuid.uuid4())},
        },
        {"kind": "undercut", "params": {"characters": [str(uuid.uuid4())]}},
    ]
    for body in bad_bodies:
        response = await client.post("/api/market/alerts/rules", headers=alice, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    unknown_kind = await client.post("/api/market/alerts/rules", headers=alice, json={"kind": "moon"})
    assert unknown_kind.status_code == 422
    listed = (await client.get("/api/market/alerts/rules", headers=alice)).json()
    assert [r["id"] for r in listed] == [created["id"], price["id"]]

    patched = await client.patch(
        f"/api/market/alerts/rules/{created['id']}", headers=alice, json={"enabled": False}
    )
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False

    bob = await account(platform)
    assert (await client.get("/api/market/alerts/rules", headers=bob)).json() == []
    attempts: list[tuple[str, dict[str, Any] | None]] = [("PATCH", {"enabled": True}), ("DELETE", None)]
    for method, payload in attempts:
        response = await client.request(
            method, f"/api/market/alerts/rules/{created['id']}", headers=bob, json=payload
        )
        assert response.status_code == 404
        assert response.json()["code"] == "alert_rule_not_found"
    assert (await client.get("/api/market/alerts/rules")).status_code == 401
    assert (
        await client.delete(f"/api/market/alerts/rules/{created['id']}", headers=alice)
    ).status_code == 204
    assert len((await client.get("/api/market/alerts/rules", headers=alice)).json()) == 1

    prefs = await client.put(
        "/api/market/alerts/prefs",
        headers=alice,
        json={"timezone": "Europe/Berlin", "quiet_start": 1320, "quiet_end": 420, "alerts_per_hour": 5},
    )
    assert prefs.status_code == 200
    assert (await client.get("/api/market/alerts/prefs", headers=alice)).json()["quiet_start"] == 1320
    for bad in ({"timezone": "Mars/Olympus"}, {"quiet_start": 60}):
        assert (await client.put("/api/market/alerts/prefs", headers=alice, json=bad)).status_code == 400
    assert (await client.get("/api/market/alerts/prefs", headers=bob)).json()["quiet_start"] is None

    metadata = Device("https://169.254.169.254/push").subscription()
    refused = await client.post("/api/market/push/subscriptions", headers=alice, json=metadata)
    assert refused.status_code == 400
    assert refused.json()["code"] == "destination_not_allowed"
    assert (await client.post("/api/market/push/subscriptions", json=metadata)).status_code == 401
    assert (await client.get("/api/market/push/vapid-public-key", headers=alice)).status_code == 200


async def test_the_user_topic_is_for_its_user_only(
    app: FastAPI, platform: Platform, alice: Account, hub: None
) -> None:
    bob = await account(platform)
    topic = f"market.user.{alice.user.id}"
    async with connected(app, token(alice)) as socket:
        assert (await socket.request("subscribe", topic=topic))["ok"]
    async with connected(app, token(bob)) as socket:
        refused = await socket.request("subscribe", topic=topic)
        assert not refused["ok"]
        assert refused["error"]["code"] == "forbidden"
        assert not (await socket.request("subscribe", topic="market.user.not-a-uuid"))["ok"]
    async with connected(app, token(alice)) as socket:
        assert not (await socket.request("publish", topic=topic, data={"type": "alert.fired"}))["ok"]


async def test_an_undercut_alert_end_to_end(
    app: FastAPI,
    client: httpx.AsyncClient,
    platform: Platform,
    alice: Account,
    sso: FakeSso,
    chars: CharacterEsi,
    esi: FakeEsiServer,
    inbox: Inbox,
    push_service: FakePushService,
    hub: None,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    mine_at = now - timedelta(days=1)
    chars.data(TRADER).orders = [order(5001, TRITANIUM, 5.5, volume_total=1000, issued=stamp(mine_at))]
    await store_book(
        platform, esi, [book_order(5001, TRITANIUM, 5.5, mine_at), book_order(8001, TRITANIUM, 5.4, now)]
    )
    link_id = await link(client, alice, TRADER, sso)
    device = Device(push_service.url("/push/alice"))
    subscribed = await client.post(
        "/api/market/push/subscriptions", headers=alice, json=device.subscription()
    )
    assert subscribed.status_code == 201, subscribed.text
    async with platform.database.transaction(writes=False) as session:
        raw = (
            await session.execute(select(MarketPushSubscription.endpoint, MarketPushSubscription.keys))
        ).one()
    assert "/push/alice" not in raw[0]  # encrypted at rest
    assert device.subscription()["keys"]["auth"] not in raw[1]
    await rule(client, alice, kind="undercut", channels=["hub", "mail", "push"])

    async with connected(app, token(alice)) as socket:
        assert (await socket.request("subscribe", topic=f"market.user.{alice.user.id}"))["ok"]
        assert (await sync(platform, link_id)).status == "ok"
        frames = [await socket.event(), await socket.event()]
    by_type = {frame["data"]["type"]: frame["data"] for frame in frames}
    assert by_type["character.synced"]["status"] == "ok"
    fired = by_type["alert.fired"]
    assert fired["kind"] == "undercut"
    assert fired["subject"] == f"order:{TRADER}:5001"
    assert fired["detail"]["best_competitor"] == "5.40"
    assert "undercut" in fired["title"]

    await run_due_jobs(platform)
    (mail,) = inbox.messages
    assert mail["To"] == alice.user.email
    assert "undercut" in mail["Subject"]
    (received,) = push_service.to("/push/alice")
    pushed = device.decrypt(received.body)
    assert pushed["alert_id"] == fired["id"]
    assert "undercut" in pushed["body"]
    assert received.headers["authorization"].startswith("vapid t=")

    # Still undercut at the next sync: nothing fires again.
    chars.data(TRADER).orders[0]["volume_remain"] = 900
    await _expire_character_routes(platform)
    assert (await sync(platform, link_id)).status == "ok"
    assert len(await events(platform)) == 1
    # The undercutter leaves: re-armed; they come back: it fires again.
    await store_book(platform, esi, [book_order(5001, TRITANIUM, 5.5, mine_at)])
    await _expire_character_routes(platform)
    assert (await sync(platform, link_id)).status == "ok"
    assert await events(platform) == []
    await store_book(
        platform, esi, [book_order(5001, TRITANIUM, 5.5, mine_at), book_order(8002, TRITANIUM, 5.3, now)]
    )
    await _expire_character_routes(platform)
    assert (await sync(platform, link_id)).status == "ok"
    assert len(await events(platform)) == 1
    listed = (await client.get("/api/market/alerts/events", headers=alice)).json()
    assert listed[0]["detail"]["best_competitor"] == "5.30"
    assert (await client.get("/api/market/alerts/events", headers=await account(platform))).json() == []

    # A gone subscription is deleted at the next push.
    push_service.statuses["/push/alice"] = 410
    await run_due_jobs(platform)
    async with platform.database.transaction(writes=False) as session:
        assert list(await session.scalars(select(MarketPushSubscription))) == []


async def _expire_character_routes(platform: Platform) -> None:
    from pentad.apps.market.models import MarketEsiCache

    async with platform.database.transaction() as session:
        await session.execute(
            update(MarketEsiCache).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_hub_rules_fire_from_the_current_book(
    client: httpx.AsyncClient,
    platform: Platform,
    alice: Account,
    sso: FakeSso,
    chars: CharacterEsi,
    esi: FakeEsiServer,
) -> None:
    async with platform.database.transaction() as session:
        await sde.import_subset(session)
    now = datetime.now(UTC).replace(microsecond=0)
    chars.data(TRADER).skills = {16622: 5, 3446: 5}
    link_id = await link(client, alice, TRADER, sso)
    assert (await sync(platform, link_id)).status == "ok"
    await store_book(
        platform,
        esi,
        [
            book_order(1, TRITANIUM, 4.5, now),
            book_order(2, TRITANIUM, 4.0, now, is_buy=True),
            book_order(3, PYERITE, 10.8, now),
            book_order(4, PYERITE, 10.0, now, is_buy=True),
        ],
    )
    await rule(
        client,
        alice,
        kind="price_cross",
        params={"hub": "jita", "type_id": TRITANIUM, "side": "sell", "direction": "below", "price": 5},
    )
    # Pyerite: bid 10, ask 10.8. Base rates (broker 3 %, tax 7.5 %): 10.8 x 0.895 - 10.3 = -0.634: no.
    # With Accounting 5 and Broker Relations 5 (broker 1.5 %, tax 3.375 %):
    # 10.8 x (1 - 0.015 - 0.03375) - 10 x 1.015 = 10.2735 - 10.15 = 0.1235; / 10.15 = 1.22 %.
    await rule(client, alice, kind="margin", params={"hub": "jita", "types": [PYERITE], "min_margin": 0.01})
    await rule(
        client,
        alice,
        kind="margin",
        params={"hub": "jita", "types": [PYERITE], "min_margin": 0.01, "character": str(link_id)},
    )
    async with platform.database.transaction() as session:
        await enqueue(session, EVALUATE_HUB)
    await run_due_jobs(platform)
    fired = await events(platform)
    assert sorted(e.subject_key for e in fired) == [f"margin:jita:{PYERITE}", f"price:jita:{TRITANIUM}:sell"]
    margin = next(e for e in fired if e.subject_key.startswith("margin"))
    assert margin.detail is not None
    assert margin.detail["margin"] == "0.0122"
    assert Decimal(margin.detail["broker_rate"]) == Decimal("0.015")

    # Evaluated again on the same book: nothing new.
    async with platform.database.transaction() as session:
        await enqueue(session, EVALUATE_HUB)
    await run_due_jobs(platform)
    assert len(await events(platform)) == 2


async def test_a_new_book_fires_alerts_right_after_its_commit(
    client: httpx.AsyncClient,
    platform: Platform,
    alice: Account,
    sso: FakeSso,
    chars: CharacterEsi,
    esi: FakeEsiServer,
) -> None:
    """No timer and no character sync: the snapshot's `market.snapshot_stored` event evaluates the hub
    rules and the undercut rules on the book just committed."""
    async with platform.database.transaction() as session:
        await sde.import_subset(session)
    now = datetime.now(UTC).replace(microsecond=0)
    mine_at = now - timedelta(days=1)
    chars.data(TRADER).orders = [order(5001, TRITANIUM, 5.5, volume_total=1000, issued=stamp(mine_at))]
    await store_book(platform, esi, [book_order(5001, TRITANIUM, 5.5, mine_at)])
    link_id = await link(client, alice, TRADER, sso)
    assert (await sync(platform, link_id)).status == "ok"
    await rule(client, alice, kind="undercut")
    cross = {"hub": "jita", "type_id": TRITANIUM, "side": "sell", "direction": "below", "price": 5.45}
    await rule(client, alice, kind="price_cross", params=cross)
    await run_due_jobs(platform)  # the first book's event and the new rule's evaluation: nothing holds
    assert await events(platform) == []

    await store_book(
        platform, esi, [book_order(5001, TRITANIUM, 5.5, mine_at), book_order(8001, TRITANIUM, 5.4, now)]
    )
    async with platform.database.transaction(writes=False) as session:
        queued = list(await session.scalars(select(Job.name).where(Job.status == "queued")))
    assert ON_SNAPSHOT in queued
    assert EVALUATE_HUB not in queued
    await run_due_jobs(platform)
    fired = await events(platform)
    assert sorted(e.subject_key for e in fired) == [f"order:{TRADER}:5001", f"price:jita:{TRITANIUM}:sell"]
    undercut = next(e for e in fired if e.subject_key.startswith("order:"))
    assert undercut.detail is not None
    assert undercut.detail["best_competitor"] == "5.40"


async def test_quiet_hours_hold_delivery_and_the_hourly_limit_folds_into_a_digest(
    client: httpx.AsyncClient,
    platform: Platform,
    alice: Account,
    sso: FakeSso,
    chars: CharacterEsi,
    inbox: Inbox,
) -> None:
    now = datetime.now(UTC)
    soon = stamp(now - timedelta(days=89, hours=20))
    chars.data(TRADER).orders = [order(5000 + i, TRITANIUM, 5.0 + i, issued=soon) for i in range(3)]
    link_id = await link(client, alice, TRADER, sso)
    await rule(client, alice, kind="expiring", params={"hours": 24}, channels=["mail"])
    minute = now.hour * 60 + now.minute
    quiet = {"timezone": "UTC", "quiet_start": (minute - 30) % 1440, "quiet_end": (minute + 30) % 1440}
    assert (await client.put("/api/market/alerts/prefs", headers=alice, json=quiet)).status_code == 200
    assert (await sync(platform, link_id)).status == "ok"
    assert len(await events(platform)) == 3
    await run_due_jobs(platform)
    assert inbox.messages == []  # held until the quiet hours end
    async with platform.database.transaction(writes=False) as session:
        waiting = list(await session.scalars(select(Job).where(Job.name == "market.deliver_alert")))
    assert len(waiting) == 3
    assert all(job.run_at > now + timedelta(minutes=25) for job in waiting)

    limited = {"timezone": "UTC", "alerts_per_hour": 1}
    assert (await client.put("/api/market/alerts/prefs", headers=alice, json=limited)).status_code == 200
    async with platform.database.transaction() as session:
        await session.execute(update(Job).where(Job.name == "market.deliver_alert").values(run_at=now))
    await run_due_jobs(platform)
    assert len(inbox.messages) == 1  # one alert mailed, two folded
    async with platform.database.transaction() as session:
        digest = await session.scalar(select(Job).where(Job.name == DIGEST))
        assert digest is not None
        assert digest.run_at > now + timedelta(minutes=55)
        await session.execute(update(Job).where(Job.name == DIGEST).values(run_at=now))
    await run_due_jobs(platform)
    assert len(inbox.messages) == 2
    assert inbox.messages[1]["Subject"] == "2 market alerts"
    assert all((e.delivered or {}).get("sent") for e in await events(platform))


async def test_a_dead_link_is_told_once_per_transition_live_and_by_mail(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, inbox: Inbox,
    hub: None,
) -> None:  # fmt: skip
    link_id = await link(client, alice, TRADER, sso)
    sso.revoke_character(TRADER)  # the player removed our application's access
    async with connected(app, token(alice)) as socket:
        assert (await socket.request("subscribe", topic=f"market.user.{alice.user.id}"))["ok"]
        async with platform.database.transaction() as session:
            await enqueue(session, REFRESH_TOKEN, {"character": str(link_id)})
        await run_due_jobs(platform)
        frame = (await socket.event())["data"]
    assert frame == {
        "type": "character.status", "character": str(link_id), "character_id": TRADER, "name": "Trader Joe",
        "status": "needs_reauth", "reason": "refresh_refused",
    }  # fmt: skip
    await run_due_jobs(platform)
    (mail,) = inbox.messages
    assert mail["To"] == alice.user.email
    assert "Trader Joe" in mail["Subject"]
    (text,) = (part for part in mail.walk() if part.get_content_type() == "text/plain")
    body = text.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "https://pentad.test/market" in body.decode()
    # Still dead: checking it again tells nobody again.
    async with platform.database.transaction() as session:
        await enqueue(session, REFRESH_TOKEN, {"character": str(link_id)})
    await run_due_jobs(platform)
    await run_due_jobs(platform)
    assert len(inbox.messages) == 1
    # Linked again, then sold to another EVE account: a new transition, a new mail.
    assert await link(client, alice, TRADER, sso) == link_id
    sso.transfer(TRADER)
    async with platform.database.transaction() as session:
        await enqueue(session, REFRESH_TOKEN, {"character": str(link_id)})
    await run_due_jobs(platform)
    await run_due_jobs(platform)
    assert len(inbox.messages) == 2
