"""Sites through the API: the owner manages, a viewer reads and is refused changes (403), a stranger sees
nothing (404) and an analytics admin sees every site; bad input is a 4xx that changes nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.permissions import SITE_RESOURCE
from pentad.core.auth.grants import holders
from pentad.core.platform import Platform
from tests.factories import Account, account


async def _sites(platform: Platform) -> list[tuple[str, str, int]]:
    async with platform.database.transaction(writes=False) as session:
        rows = await session.execute(
            select(AnalyticsSite.domain, AnalyticsSite.name, AnalyticsSite.version).order_by(
                AnalyticsSite.domain
            )
        )
        return [(domain, name, version) for domain, name, version in rows.all()]


async def test_the_owner_creates_lists_changes_and_deletes_a_site(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    assert (site["domain"], site["can_manage"], site["timezone"]) == ("shop.example", True, "UTC")
    listed = (await client.get("/api/analytics/sites", headers=owner.headers)).json()
    assert [s["domain"] for s in listed] == ["shop.example"]

    changed = await client.patch(
        f"/api/analytics/sites/{site['id']}",
        json={"name": "The Shop", "timezone": "Europe/Berlin"},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["timezone"]) == ("The Shop", "Europe/Berlin")
    assert await _sites(platform) == [("shop.example", "The Shop", 2)]

    deleted = await client.delete(f"/api/analytics/sites/{site['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert await _sites(platform) == []
    async with platform.database.transaction(writes=False) as session:
        assert await holders(session, SITE_RESOURCE, site["id"]) == []
    gone = await client.get(f"/api/analytics/sites/{site['id']}", headers=owner.headers)
    assert gone.status_code == 404


async def test_a_viewer_reads_but_may_not_manage_and_a_stranger_sees_nothing(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    viewer, stranger = await account(platform), await account(platform)
    shared = await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert shared.status_code == 201, shared.text
    base = f"/api/analytics/sites/{site['id']}"
    shared_with = (await client.get(base + "/grants", headers=owner.headers)).json()
    assert shared_with == [
        {"user_id": str(owner.user.id), "role": "owner"},
        {"user_id": str(viewer.user.id), "role": "viewer"},
    ]

    seen = await client.get(base, headers=viewer.headers)
    assert seen.status_code == 200
    assert seen.json()["can_manage"] is False
    assert [
        s["domain"] for s in (await client.get("/api/analytics/sites", headers=viewer.headers)).json()
    ] == ["shop.example"]
    for path in ("/stats/aggregate", "/stats/timeseries", "/stats/breakdown/pages", "/drops"):
        assert (await client.get(base + path, headers=viewer.headers)).status_code == 200, path

    writes = [
        ("PATCH", base, {"name": "Mine now"}),
        ("DELETE", base, None),
        ("POST", base + "/grants", {"email": stranger.user.email, "role": "owner"}),
        ("DELETE", base + f"/grants/{viewer.user.id}", None),
        ("GET", base + "/grants", None),
    ]
    before = await _sites(platform)
    for method, path, body in writes:
        refused = await client.request(method, path, json=body, headers=viewer.headers)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["code"] == "site_permission"
    assert await _sites(platform) == before

    reads = [base, base + "/stats/aggregate", base + "/stats/timeseries", base + "/stats/breakdown/sources"]
    for method, path, body in [*writes, *(("GET", path, None) for path in reads)]:
        hidden = await client.request(method, path, json=body, headers=stranger.headers)
        assert hidden.status_code == 404, (method, path, hidden.text)
        assert hidden.json()["code"] == "site_not_found"
    assert (await client.get("/api/analytics/sites", headers=stranger.headers)).json() == []
    assert await _sites(platform) == before

    # The owner takes the role back: the viewer is a stranger again.
    revoked = await client.delete(base + f"/grants/{viewer.user.id}", headers=owner.headers)
    assert revoked.status_code == 204
    assert (await client.get(base, headers=viewer.headers)).status_code == 404


async def test_an_analytics_admin_sees_every_site_and_anonymous_callers_nothing(
    client: httpx.AsyncClient, platform: Platform, site: dict[str, str]
) -> None:
    admin = await account(platform, roles=("admin", "member"))
    listed = (await client.get("/api/analytics/sites", headers=admin.headers)).json()
    assert [(s["domain"], s["can_manage"]) for s in listed] == [("shop.example", True)]
    assert (await client.get("/api/analytics/sites")).status_code == 401
    assert (await client.get(f"/api/analytics/sites/{site['id']}/stats/aggregate")).status_code == 401


async def test_bad_sites_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    cases = [
        ({"domain": "https://example.com/"}, 422),
        ({"domain": "not a domain"}, 422),
        ({"domain": "ok.example", "timezone": "Mars/Olympus"}, 422),
        ({"domain": "ok.example", "excluded_paths": ["admin"]}, 422),
        ({"domain": "ok.example", "surprise": 1}, 422),
        ({"domain": "SHOP.example"}, 409),
    ]
    for body, status in cases:
        response = await client.post("/api/analytics/sites", json=body, headers=owner.headers)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    async with platform.database.transaction(writes=False) as session:
        assert await session.scalar(select(func.count()).select_from(AnalyticsSite)) == 1
    bad = await client.patch(
        f"/api/analytics/sites/{site['id']}", json={"timezone": "Nowhere"}, headers=owner.headers
    )
    assert bad.status_code == 422
    assert await _sites(platform) == [("shop.example", "shop.example", 1)]
