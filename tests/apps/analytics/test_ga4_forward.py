"""GA4 forwarding, on every engine, against the fake Measurement Protocol server on loopback: owners link
a site (the API secret encrypted at rest, never shown); each flushed event reaches GA4 once, valid, at
most 25 per request and one client per request; a 5xx is retried with what was not sent, a 4xx drops,
and the attempts end; others may not see or change the link."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.analytics import ga4
from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import AnalyticsGA4Link, AnalyticsSite
from pentad.core.config import Settings
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import Account, account, run_due_jobs
from tests.fakes.ga4 import FakeGA4, serving, validate

MEASUREMENT = "G-TEST1234"
SECRET = "s3cr3t-api_SECRET"
TS = 1_764_806_400_000
REAL_BACKOFF = ga4._backoff


@pytest.fixture(scope="module")
def fake_ga4() -> Iterator[FakeGA4]:
    with serving({MEASUREMENT: SECRET}) as fake:
        yield fake


@pytest.fixture
def fake(fake_ga4: FakeGA4) -> FakeGA4:
    fake_ga4.received.clear()
    fake_ga4.discarded.clear()
    fake_ga4.failures.clear()
    return fake_ga4


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake_ga4: FakeGA4) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["analytics"],
        ratelimit={"enabled": False},
        security={"trusted_proxies": ["127.0.0.1"]},
        outbound={"allowed_networks": ["127.0.0.1/32"]},
        analytics={"ga4_endpoint": fake_ga4.endpoint, "ga4_max_attempts": 3, "ga4_batch": 25},
    )


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries are due at once here (the backoff itself is checked below)."""
    monkeypatch.setattr(ga4, "_backoff", lambda attempt: timedelta(0))


async def _link(client: httpx.AsyncClient, site: dict[str, Any], who: Account) -> httpx.Response:
    return await client.put(
        f"/api/analytics/sites/{site['id']}/ga4",
        json={"measurement_id": MEASUREMENT, "api_secret": SECRET},
        headers=who.headers,
    )


async def _flush(platform: Platform, site: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    async with platform.database.transaction() as session:
        key = await session.scalar(select(AnalyticsSite.key).where(AnalyticsSite.id == uuid.UUID(site["id"])))
        assert key is not None
        events = [
            EventRow(site_key=key, hostname="shop.example", **{"name": "pageview", "path": "/", **row})
            for row in rows
        ]
        await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), events)


def _visit(visitor: int, count: int) -> list[dict[str, Any]]:
    return [{"visitor_id": visitor, "ts": TS + index * 1000, "path": f"/p{index}"} for index in range(count)]


async def _counters(platform: Platform) -> AnalyticsGA4Link:
    async with platform.database.transaction() as session:
        link = await session.scalar(select(AnalyticsGA4Link))
        assert link is not None
        return link


async def test_owners_link_a_site_and_the_secret_stays_secret(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], fake: FakeGA4
) -> None:
    bad = await client.put(
        f"/api/analytics/sites/{site['id']}/ga4",
        json={"measurement_id": "UA-1234-1", "api_secret": SECRET},
        headers=owner.headers,
    )
    assert bad.status_code == 422
    assert (
        await client.get(f"/api/analytics/sites/{site['id']}/ga4", headers=owner.headers)
    ).status_code == 404

    linked = await _link(client, site, owner)
    assert linked.status_code == 200, linked.text
    assert linked.json() == {
        "measurement_id": MEASUREMENT, "enabled": True, "forwarded": 0, "dropped": 0, "last_error": None,
    }  # fmt: skip
    stored = await _counters(platform)
    assert SECRET not in stored.api_secret
    assert platform.keyring.decrypt(stored.api_secret, context=ga4._secret_context(stored.site_id)) == SECRET

    checked = await client.post(f"/api/analytics/sites/{site['id']}/ga4/check", headers=owner.headers)
    assert checked.json() == {"valid": True, "validation_messages": []}

    viewer, stranger = await account(platform), await account(platform)
    await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert (await _link(client, site, viewer)).status_code == 403
    assert (await _link(client, site, stranger)).status_code == 404
    assert (
        await client.get(f"/api/analytics/sites/{site['id']}/ga4", headers=viewer.headers)
    ).status_code == 403
    assert (
        await client.delete(f"/api/analytics/sites/{site['id']}/ga4", headers=stranger.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/analytics/sites/{site['id']}/ga4", headers=owner.headers)
    ).status_code == 204
    await _flush(platform, site, _visit(1, 3))
    await run_due_jobs(platform)
    assert fake.received == []


async def test_flushed_events_reach_ga4_once_in_its_format(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], fake: FakeGA4
) -> None:
    assert (await _link(client, site, owner)).status_code == 200
    custom = {
        "visitor_id": -7, "ts": TS + 60_000, "name": "Outbound Link: Click", "path": "/p1",
        "props": {"url": "https://elsewhere.example/", "Plan Name": "pro"}, "revenue_micros": 9_500_000,
        "currency": "EUR", "referrer_host": "google.com",
    }  # fmt: skip
    await _flush(platform, site, [*_visit(-7, 30), custom, *_visit(2, 2)])
    await run_due_jobs(platform)

    assert fake.discarded == []
    assert sorted(len(c.body["events"]) for c in fake.received) == [2, 6, 25]
    clients = {c.body["client_id"] for c in fake.received}
    assert clients == {f"{-7 & 0xFFFFFFFFFFFFFFFF}.{TS // 86_400_000}", f"2.{TS // 86_400_000}"}
    events = fake.events()
    assert len(events) == 33
    assert {e["name"] for e in events} == {"page_view", "outbound_link_click"}
    (click,) = (e for e in events if e["name"] == "outbound_link_click")
    assert click["timestamp_micros"] == (TS + 60_000) * 1000
    assert click["params"]["value"] == 9.5
    assert click["params"]["currency"] == "EUR"
    assert click["params"]["plan_name"] == "pro"
    assert click["params"]["page_referrer"] == "https://google.com"
    assert (await _counters(platform)).forwarded == 33

    # a deleted site takes its link along; what was queued for it goes nowhere
    await _flush(platform, site, _visit(9, 2))
    assert (
        await client.delete(f"/api/analytics/sites/{site['id']}", headers=owner.headers)
    ).status_code == 204
    fake.received.clear()
    await run_due_jobs(platform)
    assert fake.received == []
    async with platform.database.transaction() as session:
        assert (await session.scalars(select(AnalyticsGA4Link))).all() == []


async def test_failures_retry_what_was_not_sent_and_4xx_drops(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], fake: FakeGA4
) -> None:
    assert (await _link(client, site, owner)).status_code == 200
    await _flush(platform, site, [*_visit(1, 3), *_visit(2, 3), *_visit(3, 3)])
    fake.fail_next(0)  # the first request goes through, the second meets an outage once
    fake.fail_next(503)
    await run_due_jobs(platform)
    events = fake.events()
    assert len(events) == 9
    assert (
        len({(c.body["client_id"], e["timestamp_micros"]) for c in fake.received for e in c.body["events"]})
        == 9
    )
    link = await _counters(platform)
    assert (link.forwarded, link.dropped, link.last_error) == (9, 0, "GA4 answered 503")

    fake.received.clear()
    fake.fail_next(400)
    await _flush(platform, site, _visit(4, 2))
    await run_due_jobs(platform)
    assert fake.received == []
    link = await _counters(platform)
    assert (link.forwarded, link.dropped) == (9, 2)
    assert link.last_error is not None
    assert "400" in link.last_error

    fake.fail_next(500, 3)  # every attempt (ga4_max_attempts = 3) fails: dropped, never sent
    await _flush(platform, site, _visit(5, 2))
    await run_due_jobs(platform)
    assert fake.received == []
    assert (await _counters(platform)).dropped == 4
    assert fake.failures == []


async def test_events_through_the_collect_route_reach_ga4(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], fake: FakeGA4
) -> None:
    assert (await _link(client, site, owner)).status_code == 200
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    for body in (
        {"n": "pageview", "u": "https://shop.example/", "d": "shop.example", "r": "https://www.google.com/"},
        {"n": "pageview", "u": "https://shop.example/pricing?utm_source=x", "d": "shop.example"},
        {"n": "Signup", "u": "https://shop.example/pricing", "d": "shop.example", "p": {"plan": "pro"}},
    ):
        accepted = await client.post(
            "/api/analytics/event",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "text/plain", "User-Agent": agent, "X-Forwarded-For": "198.51.100.7"},
        )
        assert accepted.status_code == 202, accepted.text
    await platform.ingest.flush()
    await run_due_jobs(platform)
    (request,) = fake.received
    assert request.measurement_id == MEASUREMENT
    assert [e["name"] for e in request.body["events"]] == ["page_view", "page_view", "signup"]
    assert request.body["events"][0]["params"]["page_location"] == "https://shop.example/"
    assert request.body["events"][0]["params"]["page_referrer"] == "https://google.com/"  # as stored
    assert request.body["events"][2]["params"]["plan"] == "pro"
    assert "198.51.100.7" not in json.dumps(request.body)
    assert agent not in json.dumps(request.body)


def test_names_limits_and_backoff() -> None:
    assert ga4.event_name("Outbound Link: Click") == "outbound_link_click"
    assert ga4.event_name("404") == "event_404"
    assert ga4.event_name("session_start") == "pentad_session_start"
    assert ga4.event_name("x" * 60) == "x" * 40
    many = [{"c": "1.1", "t": TS + i, "n": "page_view", "u": "https://a.example/"} for i in range(60)]
    assert [len(body["events"]) for body in ga4.requests_of(many)] == [25, 25, 10]
    assert [REAL_BACKOFF(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]


def test_the_fake_validates_like_ga4() -> None:
    assert (
        validate({"client_id": "1.1", "events": [{"name": "page_view", "params": {"page_location": "x"}}]})
        == []
    )
    (message,) = validate({"client_id": "1.1", "events": [{"name": "_badEventName"}]})
    assert message == {
        "fieldPath": "events",
        "description": "Event at index: [0] has invalid name [_badEventName]. "
        "Names must start with an alphabetic character.",
        "validationCode": "NAME_INVALID",
    }
    codes = [m["validationCode"] for m in validate({"events": [{"name": "session_start"}] * 26})]
    assert codes == ["VALUE_REQUIRED", "EXCEEDED_MAX_ENTITIES", *["NAME_RESERVED"] * 26]
    # what Pentad sends passes
    many = [
        {"c": "1.1", "t": TS + i, "n": ga4.event_name(f"Event {i}!"), "u": "https://a.example/"}
        for i in range(30)
    ]
    for body in ga4.requests_of(many):
        body.pop("_pentad_events")
        assert validate(body) == []
