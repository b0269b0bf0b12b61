"""Shared links: owners make public or password-protected links (viewers 403, strangers 404), the
password kept only as an argon2 hash; a link opens its site's dashboard and read-only JSON, nothing of
another site; a protected link needs the password first (wrong: 401, one attempt too many in a minute: 429),
then a cookie scoped to the link; revoking ends the link and its cookies at once."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.analytics import sharing
from pentad.apps.analytics.models import AnalyticsShare
from pentad.core.platform import Platform
from tests.apps.analytics.product import RANGE, add_goal, visit
from tests.apps.analytics.test_rollups import site_key_of, store
from tests.factories import Account, account


async def test_public_and_password_links(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await add_goal(client, owner, site, kind="event", event_name="Signup")
    await store(platform, [*visit(key, 1, [("pageview", "/"), ("Signup", "/")]),
                           *visit(key, 2, [("pageview", "/docs")])])  # fmt: skip
    other = (await client.post("/api/analytics/sites", json={"domain": "other.example"},
                               headers=owner.headers)).json()  # fmt: skip
    await store(platform, visit(await site_key_of(platform, other), 9, [("pageview", "/secret")]))
    steps = [{"path": "/"}, {"path": "/secret"}]
    funnel = await client.post(f"/api/analytics/sites/{other['id']}/funnels",
                               json={"name": "Other", "steps": steps}, headers=owner.headers)  # fmt: skip

    shares = f"/api/analytics/sites/{site['id']}/shares"
    viewer, stranger = await account(platform), await account(platform)
    await client.post(f"/api/analytics/sites/{site['id']}/grants",
                      json={"email": viewer.user.email, "role": "viewer"}, headers=owner.headers)  # fmt: skip
    assert (await client.post(shares, json={}, headers=viewer.headers)).status_code == 403
    assert (await client.get(shares, headers=viewer.headers)).status_code == 403
    assert (await client.post(shares, json={}, headers=stranger.headers)).status_code == 404
    assert (await client.post(shares, json={"password": "short"}, headers=owner.headers)).status_code == 422

    public = (await client.post(shares, json={"label": "press"}, headers=owner.headers)).json()
    assert not public["password_protected"]
    path = httpx.URL(public["url"]).path
    page = await client.get(path)
    assert page.status_code == 200
    assert "shop.example" in page.text
    assert "Install the tracker" not in page.text
    top = await client.get(f"{path}/api/stats/aggregate?{RANGE}")
    assert (top.status_code, top.json()["visitors"], top.json()["pageviews"]) == (200, 2, 2)
    pages = (await client.get(f"{path}/api/stats/breakdown/pages?{RANGE}")).json()
    assert [r["value"] for r in pages["rows"]] == ["/", "/docs"]  # never the other site's /secret
    assert (await client.get(f"{path}/api/stats/goals?{RANGE}")).json()["goals"][0]["visitors"] == 1
    assert (await client.get(f"{path}/api/funnels/{funnel.json()['id']}/report?{RANGE}")).status_code == 404
    assert (await client.get(f"{path}/api/funnels")).json() == []
    assert (await client.get(f"{path}/api/export/pages.csv?{RANGE}")).status_code == 200
    # read-only: nothing that changes the site is reachable through the link
    assert (await client.post(f"{path}/api/stats/aggregate")).status_code == 405
    assert (await client.get(f"/api/analytics/sites/{site['id']}")).status_code == 401
    assert (await client.get("/analytics/share/nosuchlinkatall")).status_code == 404

    protected = (await client.post(shares, json={"password": "correct horse"}, headers=owner.headers)).json()
    async with platform.database.transaction(writes=False) as session:
        query = select(AnalyticsShare.password_hash).where(AnalyticsShare.id == uuid.UUID(protected["id"]))
        stored = await session.scalar(query)
    assert stored is not None
    assert stored.startswith("$argon2")
    locked = httpx.URL(protected["url"]).path
    form = await client.get(locked)
    assert (form.status_code, 'name="password"' in form.text) == (200, True)
    assert (await client.get(f"{locked}/api/stats/aggregate?{RANGE}")).status_code == 401
    forged = {"Cookie": "pentad_share=9999999999.00"}
    assert (await client.get(f"{locked}/api/stats/aggregate?{RANGE}", headers=forged)).status_code == 401
    wrong = await client.post(locked, data={"password": "wrong horse"})
    assert wrong.status_code == 401
    assert (await client.get(f"{locked}/api/stats/aggregate?{RANGE}")).status_code == 401
    right = await client.post(locked, data={"password": "correct horse"})
    assert right.status_code == 303
    assert (await client.get(f"{locked}/api/stats/aggregate?{RANGE}")).json()["visitors"] == 2

    listed = (await client.get(shares, headers=owner.headers)).json()
    assert [(s["label"], s["password_protected"]) for s in listed] == [("press", False), ("", True)]
    assert (await client.delete(f"{shares}/{protected['id']}", headers=viewer.headers)).status_code == 403
    other_shares = f"/api/analytics/sites/{other['id']}/shares/{protected['id']}"
    assert (await client.delete(other_shares, headers=owner.headers)).status_code == 404
    assert (await client.delete(f"{shares}/{protected['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"{locked}/api/stats/aggregate?{RANGE}")).status_code == 404
    assert (await client.get(locked)).status_code == 404
    assert (await client.get(f"{path}/api/stats/aggregate?{RANGE}")).status_code == 200


@pytest.mark.one_engine
async def test_password_attempts_are_limited_per_link(
    client: httpx.AsyncClient, owner: Account, site: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sharing, "SHARE_ATTEMPTS", 3)  # each wrong attempt costs an argon2 check
    shares = f"/api/analytics/sites/{site['id']}/shares"
    link = (await client.post(shares, json={"password": "correct horse"}, headers=owner.headers)).json()
    locked = httpx.URL(link["url"]).path
    for _ in range(3):
        assert (await client.post(locked, data={"password": "guess guess"})).status_code == 401
    refused = await client.post(locked, data={"password": "correct horse"})
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert "pentad_share" not in client.cookies
