"""Funnels: owners define 2 to 8 ordered steps (goals or pageview patterns; viewers 403, strangers 404,
bad steps 422 changing nothing); the report counts, per step, the visits (or visitor-days) that reached it
in order, the conversion and the drop-off, with the range's filters; over a range the raw tier no longer
keeps it is a 422."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from pentad.apps.analytics.models import AnalyticsFunnel
from pentad.core.platform import Platform
from tests.apps.analytics.product import RANGE, add_goal, visit
from tests.apps.analytics.test_rollups import site_key_of, store
from tests.factories import Account, account


async def test_funnels_report_steps_in_order_within_a_visit_or_a_day(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    signup = await add_goal(client, owner, site, kind="event", event_name="Signup")
    url = f"/api/analytics/sites/{site['id']}/funnels"
    steps = [{"path": "/"}, {"path": "/pricing*"}, {"goal_id": signup}]
    created = await client.post(url, json={"name": "Signup flow", "steps": steps}, headers=owner.headers)
    assert created.status_code == 201, created.text
    daily = await client.post(
        url, json={"name": "Over the day", "steps": steps, "scope": "day"}, headers=owner.headers
    )
    await store(
        platform,
        [
            # all three steps in order
            *visit(key, 1, [("pageview", "/"), ("pageview", "/pricing/team"), ("Signup", "/pricing")],
                   country="DE"),
            # steps out of order: only the first counts (the signup came before pricing)
            *visit(key, 2, [("pageview", "/"), ("Signup", "/"), ("pageview", "/pricing")], country="FR"),
            # the first step only
            *visit(key, 3, [("pageview", "/"), ("pageview", "/docs")], country="DE"),
            # never enters
            *visit(key, 4, [("pageview", "/docs")], country="DE"),
            # pricing in one visit, the signup two hours later in another: a day completes it
            *visit(key, 5, [("pageview", "/"), ("pageview", "/pricing")], country="DE"),
            *visit(key, 5, [("Signup", "/")], minute=120, country="DE"),
        ],
    )  # fmt: skip

    report = await client.get(f"{url}/{created.json()['id']}/report?{RANGE}", headers=owner.headers)
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["name"], body["scope"], body["units"]) == ("Signup flow", "visit", 6)
    found = [(s["label"], s["units"], s["visitors"], s["conversion_rate"], s["overall_rate"], s["dropoff"])
             for s in body["steps"]]  # fmt: skip
    assert found == [
        ("Visit /", 4, 4, 66.7, 100.0, 0),
        ("Visit /pricing*", 3, 3, 75.0, 75.0, 1),
        ("Signup", 1, 1, 33.3, 25.0, 2),
    ]
    day = (await client.get(f"{url}/{daily.json()['id']}/report?{RANGE}", headers=owner.headers)).json()
    assert day["units"] == 5
    assert [s["units"] for s in day["steps"]] == [4, 3, 2]
    german = await client.get(
        f"{url}/{created.json()['id']}/report?{RANGE}&filter=country:is:DE", headers=owner.headers
    )
    assert [s["units"] for s in german.json()["steps"]] == [3, 2, 1]

    today = datetime.now(UTC).date()
    await client.patch(f"/api/analytics/sites/{site['id']}", json={"retention": {"raw": "7d"}},
                       headers=owner.headers)  # fmt: skip
    old = f"period=custom&from={today - timedelta(days=30)}&to={today}"
    expired = await client.get(f"{url}/{created.json()['id']}/report?{old}", headers=owner.headers)
    assert (expired.status_code, expired.json()["code"]) == (422, "filter_needs_raw_data")


async def test_funnel_definitions_and_the_deny_side(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    url = f"/api/analytics/sites/{site['id']}/funnels"
    other = await client.post("/api/analytics/sites", json={"domain": "other.example"}, headers=owner.headers)
    foreign = await add_goal(client, owner, other.json(), kind="event", event_name="Buy")
    for bad in (
        {"name": "One", "steps": [{"path": "/"}]},
        {"name": "Nine", "steps": [{"path": f"/{n}"} for n in range(9)]},
        {"name": "Both", "steps": [{"path": "/"}, {"path": "/a", "goal_id": foreign}]},
        {"name": "Neither", "steps": [{"path": "/"}, {}]},
        {"name": "Foreign goal", "steps": [{"path": "/"}, {"goal_id": foreign}]},
        {"name": "Bad path", "steps": [{"path": "/"}, {"path": "pricing"}]},
        {"name": "", "steps": [{"path": "/"}, {"path": "/a"}]},
    ):
        refused = await client.post(url, json=bad, headers=owner.headers)
        assert refused.status_code == 422, (bad, refused.text)
    async with platform.database.transaction(writes=False) as session:
        assert await session.scalar(select(func.count()).select_from(AnalyticsFunnel)) == 0

    good = {"name": "Pricing", "steps": [{"path": "/"}, {"path": "/pricing"}]}
    funnel = (await client.post(url, json=good, headers=owner.headers)).json()
    viewer, stranger = await account(platform), await account(platform)
    await client.post(f"/api/analytics/sites/{site['id']}/grants",
                      json={"email": viewer.user.email, "role": "viewer"}, headers=owner.headers)  # fmt: skip
    assert [f["name"] for f in (await client.get(url, headers=viewer.headers)).json()] == ["Pricing"]
    report = f"{url}/{funnel['id']}/report?{RANGE}"
    assert (await client.get(report, headers=viewer.headers)).status_code == 200
    assert (await client.post(url, json=good, headers=viewer.headers)).status_code == 403
    assert (await client.delete(f"{url}/{funnel['id']}", headers=viewer.headers)).status_code == 403
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.get(report, headers=stranger.headers)).status_code == 404
    # the funnel is not reachable through another site
    other_url = f"/api/analytics/sites/{other.json()['id']}/funnels/{funnel['id']}"
    assert (await client.get(f"{other_url}/report?{RANGE}", headers=owner.headers)).status_code == 404
    assert (await client.delete(f"{url}/{funnel['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(report, headers=owner.headers)).status_code == 404
