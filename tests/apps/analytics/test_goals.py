"""Goals: owners add and remove them (viewers 403, strangers 404, bad input 422 changing nothing); the
conversions panel counts unique visitors, completions, the conversion rate and revenue in the goal's
currency; the ingest flush emits `analytics.goals_completed` with the completions of each site (split at
2,000), and nothing for sites without goals."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.analytics import goals
from pentad.apps.analytics.events import GoalsCompleted
from pentad.apps.analytics.models import AnalyticsGoal
from pentad.core.platform import Platform
from tests.apps.analytics.product import RANGE, YESTERDAY, add_goal, visit
from tests.apps.analytics.test_rollups import site_key_of, store
from tests.factories import Account, account


async def _goal_count(platform: Platform) -> int:
    async with platform.database.transaction(writes=False) as session:
        return int(await session.scalar(select(func.count()).select_from(AnalyticsGoal)) or 0)


async def test_owners_manage_goals_viewers_read_strangers_see_nothing(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    url = f"/api/analytics/sites/{site['id']}/goals"
    blog = await add_goal(client, owner, site, kind="pageview", path="/blog/*")
    signup = await add_goal(client, owner, site, kind="event", event_name="Signup", currency="eur")
    listed = (await client.get(url, headers=owner.headers)).json()
    assert [(g["name"], g["kind"], g["path"], g["event_name"], g["currency"]) for g in listed] == [
        ("Visit /blog/*", "pageview", "/blog/*", None, None),
        ("Signup", "event", None, "Signup", "EUR"),
    ]

    for bad in (
        {"kind": "pageview"},
        {"kind": "pageview", "path": "blog"},
        {"kind": "event", "event_name": "Signup", "path": "/x"},
        {"kind": "event", "event_name": "Buy", "currency": "euro"},
        {"kind": "visit", "path": "/"},
    ):
        refused = await client.post(url, json=bad, headers=owner.headers)
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert await _goal_count(platform) == 2

    viewer, stranger = await account(platform), await account(platform)
    await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert len((await client.get(url, headers=viewer.headers)).json()) == 2
    new = {"kind": "event", "event_name": "Other"}
    assert (await client.post(url, json=new, headers=viewer.headers)).status_code == 403
    assert (await client.delete(f"{url}/{blog}", headers=viewer.headers)).status_code == 403
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.post(url, json=new, headers=stranger.headers)).status_code == 404
    assert (await client.delete(f"{url}/{blog}", headers=stranger.headers)).status_code == 404
    assert await _goal_count(platform) == 2

    # a goal of another site is not found through this one
    other = await client.post("/api/analytics/sites", json={"domain": "other.example"}, headers=owner.headers)
    assert (await client.delete(f"/api/analytics/sites/{other.json()['id']}/goals/{signup}",
                                headers=owner.headers)).status_code == 404  # fmt: skip
    assert (await client.delete(f"{url}/{blog}", headers=owner.headers)).status_code == 204
    assert (await client.delete(f"{url}/{blog}", headers=owner.headers)).status_code == 404
    assert [g["name"] for g in (await client.get(url, headers=owner.headers)).json()] == ["Signup"]


async def test_conversions_count_uniques_completions_rate_and_revenue(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await add_goal(client, owner, site, kind="pageview", path="/blog/*")
    await add_goal(client, owner, site, kind="event", event_name="Signup", currency="EUR")
    await add_goal(client, owner, site, kind="pageview", path="/never")
    rows = [
        *visit(key, 1, [("pageview", "/"), ("pageview", "/pricing"), ("Signup", "/pricing"),
                        ("Signup", "/x")], revenue=[None, None, (9_500_000, "EUR"), (2_000_000, "USD")]),
        *visit(key, 2, [("pageview", "/"), ("pageview", "/blog/a"), ("pageview", "/blog/b")]),
        *visit(key, 3, [("pageview", "/blog")]),
    ]  # fmt: skip
    await store(platform, rows)
    answer = await client.get(f"/api/analytics/sites/{site['id']}/stats/goals?{RANGE}", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["visitors"] == 3
    found = {g["name"]: (g["visitors"], g["completions"], g["conversion_rate"], g["revenue"], g["currency"])
             for g in body["goals"]}  # fmt: skip
    assert found == {
        "Visit /blog/*": (1, 2, 33.3, None, None),
        "Signup": (1, 2, 33.3, 9.5, "EUR"),  # the USD purchase converts but earns no EUR
        "Visit /never": (0, 0, 0.0, None, None),
    }


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[GoalsCompleted]:
    """The goals_completed payloads the flush emits (the real emit still runs)."""
    seen: list[GoalsCompleted] = []
    real = goals.emit

    async def spy(session: Any, name: str, payload: Any) -> uuid.UUID:
        assert name == "analytics.goals_completed"
        seen.append(payload)
        return await real(session, name, payload)

    monkeypatch.setattr(goals, "emit", spy)
    return seen


async def test_the_flush_emits_goals_completed_per_site_in_chunks(
    client: httpx.AsyncClient,
    platform: Platform,
    owner: Account,
    site: dict[str, str],
    emitted: list[GoalsCompleted],
) -> None:
    key = await site_key_of(platform, site)
    signup = await add_goal(client, owner, site, kind="event", event_name="Signup", currency="EUR")
    pricing = await add_goal(client, owner, site, kind="pageview", path="/pricing*", name="Pricing")
    other = await client.post("/api/analytics/sites", json={"domain": "other.example"}, headers=owner.headers)
    other_key = await site_key_of(platform, other.json())  # no goals: nothing emitted for it

    rows = [
        *visit(key, 7, [("pageview", "/"), ("pageview", "/pricing/team"), ("Signup", "/pricing/team")],
               source="Google", revenue=[None, None, (12_340_000, "EUR")]),
        *visit(other_key, 8, [("Signup", "/pricing")]),
    ]  # fmt: skip
    await store(platform, rows)
    assert len(emitted) == 1
    event = emitted[0]
    assert event.site_domain == "shop.example"
    done = [(str(c.goal_id), c.goal_name, c.visitor_id, c.path, c.source, c.revenue_micros, c.currency)
            for c in event.completions]  # fmt: skip
    assert done == [
        (pricing, "Pricing", 7, "/pricing/team", None, None, None),
        (signup, "Signup", 7, "/pricing/team", None, 12_340_000, "EUR"),
    ]
    assert event.completions[1].ts == YESTERDAY.replace(minute=2)
    assert event.completions[1].day == YESTERDAY.date()

    emitted.clear()
    many = [row for n in range(2001) for row in visit(key, 100 + n, [("Signup", "/")])]
    await store(platform, many[:2000])  # one flush of 2,000 rows
    await store(platform, many[2000:])
    assert [len(e.completions) for e in emitted] == [2000, 1]
    big = [
        row for n in range(1001) for row in visit(key, 5000 + n, [("pageview", "/pricing"), ("Signup", "/")])
    ]
    emitted.clear()
    await store(platform, big[:2000])  # 2,000 rows completing 2,000 goals, then 2 more
    await store(platform, big[2000:])
    assert [len(e.completions) for e in emitted] == [2000, 2]
