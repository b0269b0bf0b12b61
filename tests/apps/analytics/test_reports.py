"""E-mail reports, on every engine, through a real SMTP server on loopback: a due weekly report reaches
its subscriber once (HTML + text, the week's numbers, a chart without images); an added address gets
nothing before it confirms, and stops with its unsubscribe link; an account that lost the site gets no
more; others may not read or change subscriptions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from pentad.apps.analytics import reports
from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import AnalyticsReportSubscription, AnalyticsSite
from pentad.core.config import Settings
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.core.auth.test_password_reset import Inbox
from tests.factories import Account, account, free_port, run_due_jobs

BASE = "https://pentad.test"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    smtp[0].messages.clear()
    return smtp[0]


@pytest.fixture
def settings(tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["analytics"],
        ratelimit={"enabled": False},
        mail={"host": "127.0.0.1", "port": smtp[1]},
        server={"base_url": BASE},
        analytics={"report_hour": 8},
    )


def _next_monday_morning() -> datetime:
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, 9, 30, tzinfo=UTC)


async def _store_this_week(platform: Platform, site: dict[str, Any]) -> None:
    """Two visitors a minute ago: this week, the one the next Monday's report covers."""
    async with platform.database.transaction() as session:
        key = await session.scalar(select(AnalyticsSite.key).where(AnalyticsSite.id == uuid.UUID(site["id"])))
        assert key is not None
        ts = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp() * 1000)
        rows = [
            EventRow(
                site_key=key, ts=ts, visitor_id=visitor, name="pageview", hostname="shop.example", path=path
            )
            for visitor, path in ((1, "/"), (2, "/pricing"), (2, "/"))
        ]
        await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), rows)


def _part(message: Message, content_type: str) -> str:
    (part,) = (p for p in message.walk() if p.get_content_type() == content_type)
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


async def _send(platform: Platform, now: datetime) -> int:
    queued = await reports.send_due_reports(platform, now)
    await run_due_jobs(platform)
    return queued


async def test_a_due_weekly_report_is_mailed_once(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], inbox: Inbox
) -> None:
    created = await client.post(
        f"/api/analytics/sites/{site['id']}/reports", json={"period": "weekly"}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["recipient"] == owner.user.email
    assert created.json()["confirmed"] is True
    await _store_this_week(platform, site)

    assert await _send(platform, datetime.now(UTC)) == 0  # last week's report is not this subscriber's
    monday = _next_monday_morning()
    assert await _send(platform, monday.replace(hour=7)) == 0  # before the report hour
    assert await _send(platform, monday) == 1
    assert await _send(platform, monday + timedelta(hours=1)) == 0
    assert await _send(platform, monday + timedelta(days=2)) == 0

    (message,) = inbox.messages
    assert message["To"] == owner.user.email
    assert "weekly" in message["Subject"]
    assert "shop.example" in message["Subject"] or site["name"] in message["Subject"]
    text, html = _part(message, "text/plain"), _part(message, "text/html")
    assert "Visitors: 2" in text
    assert "Pageviews: 3" in text
    first = monday.date() - timedelta(days=7)
    assert f"{first.isoformat()} to {(monday.date() - timedelta(days=1)).isoformat()}" in text
    assert "<img" not in html
    assert "src=" not in html
    bars = re.findall(r"height:(\d+)px;background", html)
    assert len(bars) == 7  # one a day of the week
    assert bars.count("80") == 1  # today's is the tallest
    assert f"{BASE}/analytics/reports/unsubscribe?token=" in text


async def test_an_added_address_confirms_first_and_can_unsubscribe(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], inbox: Inbox
) -> None:
    path = f"/api/analytics/sites/{site['id']}/reports"
    added = await client.post(
        path, json={"period": "weekly", "email": "Boss@Example.com"}, headers=owner.headers
    )
    assert added.status_code == 201, added.text
    assert added.json()["confirmed"] is False
    again = await client.post(
        path, json={"period": "weekly", "email": "boss@example.com"}, headers=owner.headers
    )
    assert again.status_code == 409
    bad = await client.post(path, json={"period": "weekly", "email": "not an address"}, headers=owner.headers)
    assert bad.status_code == 400
    assert (await client.post(path, json={"period": "daily"}, headers=owner.headers)).status_code == 422
    async with platform.database.transaction() as session:
        stored = (await session.scalars(select(AnalyticsReportSubscription))).all()
        assert len(stored) == 1
        assert stored[0].email is not None
        assert "example.com" not in stored[0].email.lower()

    await run_due_jobs(platform)
    (confirmation,) = inbox.messages
    assert confirmation["To"] == "boss@example.com"
    link = re.search(
        r"https://pentad\.test(/analytics/reports/confirm\?token=\S+)", _part(confirmation, "text/plain")
    )
    assert link is not None
    token = link.group(1).split("token=")[1]

    await _store_this_week(platform, site)
    monday = _next_monday_morning()
    assert await _send(platform, monday) == 0  # not confirmed: nothing

    page = await client.get(link.group(1))
    assert page.status_code == 200
    assert 'name="token"' in page.text
    forged = await client.post("/analytics/reports/confirm", data={"token": token[:-2] + "00"})
    assert forged.status_code == 404
    confirmed = await client.post("/analytics/reports/confirm", data={"token": token})
    assert confirmed.status_code == 200
    listed = (await client.get(path, headers=owner.headers)).json()
    assert [(entry["recipient"], entry["confirmed"]) for entry in listed] == [("boss@example.com", True)]

    assert await _send(platform, monday + timedelta(days=7)) == 1
    report = inbox.messages[-1]
    assert report["To"] == "boss@example.com"
    unsubscribe = re.search(r"token=(\S+)", _part(report, "text/plain").split("Stop it:")[1])
    assert unsubscribe is not None
    assert (
        await client.post("/analytics/reports/confirm", data={"token": unsubscribe.group(1)})
    ).status_code == 404
    stopped = await client.post("/analytics/reports/unsubscribe", data={"token": unsubscribe.group(1)})
    assert stopped.status_code == 200
    assert (await client.get(path, headers=owner.headers)).json() == []
    assert await _send(platform, monday + timedelta(days=14)) == 0


async def test_only_readers_subscribe_and_lost_access_ends_reports(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any], inbox: Inbox
) -> None:
    path = f"/api/analytics/sites/{site['id']}/reports"
    viewer, stranger = await account(platform), await account(platform)
    await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert (await client.post(path, json={"period": "monthly"}, headers=stranger.headers)).status_code == 404
    assert (await client.get(path, headers=stranger.headers)).status_code == 404
    refused = await client.post(
        path, json={"period": "monthly", "email": "x@example.com"}, headers=viewer.headers
    )
    assert refused.status_code == 403
    mine = await client.post(path, json={"period": "monthly"}, headers=viewer.headers)
    assert mine.status_code == 201
    owners = await client.post(path, json={"period": "monthly"}, headers=owner.headers)
    assert [entry["id"] for entry in (await client.get(path, headers=viewer.headers)).json()] == [
        mine.json()["id"]
    ]
    assert len((await client.get(path, headers=owner.headers)).json()) == 2
    assert (await client.delete(f"{path}/{owners.json()['id']}", headers=viewer.headers)).status_code == 404
    assert (await client.delete(f"{path}/{mine.json()['id']}", headers=stranger.headers)).status_code == 404

    await client.delete(f"/api/analytics/sites/{site['id']}/grants/{viewer.user.id}", headers=owner.headers)
    today = datetime.now(UTC).date()
    next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    sent = await _send(platform, datetime(next_month.year, next_month.month, 1, 9, tzinfo=UTC))
    assert sent == 1
    assert [m["To"] for m in inbox.messages] == [owner.user.email]
    async with platform.database.transaction() as session:
        left = (await session.scalars(select(AnalyticsReportSubscription.user_id))).all()
        assert left == [owner.user.id]


def test_periods_close_in_the_sites_time_zone() -> None:
    assert reports.last_closed_period("weekly", date(2026, 3, 18)) == (date(2026, 3, 9), date(2026, 3, 15))
    assert reports.last_closed_period("weekly", date(2026, 3, 16)) == (date(2026, 3, 9), date(2026, 3, 15))
    assert reports.last_closed_period("monthly", date(2026, 3, 1)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert reports.last_closed_period("monthly", date(2026, 1, 31)) == (date(2025, 12, 1), date(2025, 12, 31))
    # Sunday 20:30 UTC is already Monday 09:30 in Auckland: its week is over there, not in UTC
    sunday_evening = datetime(2026, 3, 15, 20, 30, tzinfo=UTC)
    assert reports.due_period("weekly", sunday_evening, "Pacific/Auckland", 8) == date(2026, 3, 9)
    assert reports.due_period("weekly", sunday_evening, "UTC", 8) == date(2026, 3, 2)
    assert reports.due_period("weekly", sunday_evening.replace(hour=18), "Pacific/Auckland", 8) is None
