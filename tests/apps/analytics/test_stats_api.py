"""The Stats API (Plausible v1 shape) and its keys, on every engine: a `pas_` key reads the sites it names
with the dashboard's numbers; it reads nothing else (other sites 404, other routes 403), stops at once
when revoked (401) or when its owner loses the site (404); bad questions are 400 and change nothing."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import AnalyticsSite, AnalyticsStatsKey
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.factories import DEFAULT_PASSWORD, Account, account, bearer

API = "/api/analytics/v1/stats"


async def _store_traffic(platform: Platform, site: dict[str, Any]) -> None:
    """Three visitors today (two in the last minutes), one yesterday; pages / and /pricing."""
    async with platform.database.transaction() as session:
        key = await session.scalar(select(AnalyticsSite.key).where(AnalyticsSite.id == uuid.UUID(site["id"])))
        assert key is not None
        now = datetime.now(UTC)
        rows = []
        for visitor, minutes_ago, path in [
            (1, 2, "/"),
            (1, 1, "/pricing"),
            (2, 3, "/pricing"),
            (3, 60 * 26, "/"),
        ]:
            ts = int((now - timedelta(minutes=minutes_ago)).timestamp() * 1000)
            rows.append(
                EventRow(
                    site_key=key, ts=ts, visitor_id=visitor, name="pageview", hostname=site["domain"],
                    path=path, source="Google" if visitor == 2 else None, country="DE",
                )
            )  # fmt: skip
        await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), rows)


async def _make_key(client: httpx.AsyncClient, who: Account, *site_ids: str) -> dict[str, Any]:
    response = await client.post(
        "/api/analytics/keys", json={"name": "reporting", "site_ids": list(site_ids)}, headers=who.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_key_reads_its_site_with_the_dashboards_numbers(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    await _store_traffic(platform, site)
    created = await _make_key(client, owner, site["id"])
    assert created["key"].startswith("pas_")
    assert created["hint"].endswith(created["key"][-4:])
    key = bearer(created["key"])
    domain = site["domain"]

    aggregate = await client.get(
        f"{API}/aggregate",
        params={"site_id": domain, "period": "7d", "metrics": "visitors,pageviews,visits,bounce_rate"},
        headers=key,
    )
    assert aggregate.status_code == 200, aggregate.text
    dashboard = (
        await client.get(
            f"/api/analytics/sites/{site['id']}/stats/aggregate?period=7d", headers=owner.headers
        )
    ).json()
    results = aggregate.json()["results"]
    assert results["visitors"] == {"value": 3}
    assert results["pageviews"] == {"value": 4}
    for name in ("visits", "bounce_rate"):
        assert results[name]["value"] == dashboard[name]

    compared = await client.get(
        f"{API}/aggregate",
        params={"site_id": domain, "period": "day", "compare": "previous_period"},
        headers=key,
    )
    assert set(compared.json()["results"]["visitors"]) == {"value", "change"}

    series = (
        await client.get(
            f"{API}/timeseries",
            params={"site_id": domain, "period": "7d", "metrics": "visitors,pageviews"},
            headers=key,
        )
    ).json()["results"]
    assert len(series) == 7
    assert sum(point["pageviews"] for point in series) == 4
    assert series[-1]["date"] == datetime.now(UTC).date().isoformat()

    pages = (
        await client.get(
            f"{API}/breakdown",
            params={
                "site_id": domain,
                "period": "7d",
                "property": "event:page",
                "metrics": "visitors,pageviews",
            },
            headers=key,
        )
    ).json()["results"]
    assert pages == [
        {"page": "/", "visitors": 2, "pageviews": 2},
        {"page": "/pricing", "visitors": 2, "pageviews": 2},
    ]
    second_page = await client.get(
        f"{API}/breakdown",
        params={"site_id": domain, "period": "7d", "property": "event:page", "limit": 1, "page": 2},
        headers=key,
    )
    assert second_page.json()["results"] == [{"page": "/pricing", "visitors": 2}]
    sources = await client.get(
        f"{API}/breakdown",
        params={"site_id": domain, "period": "7d", "property": "visit:source"},
        headers=key,
    )
    assert {row["source"] for row in sources.json()["results"]} == {"Google", "Direct / None"}

    # Plausible's filter syntax, answered as the dashboard answers the same filter
    filtered = await client.get(
        f"{API}/aggregate",
        params={
            "site_id": domain,
            "period": "7d",
            "metrics": "visitors,pageviews",
            "filters": "event:page==/pricing",
        },
        headers=key,
    )
    assert filtered.status_code == 200, filtered.text
    same = (
        await client.get(
            f"/api/analytics/sites/{site['id']}/stats/aggregate?period=7d&filter=page:is:/pricing",
            headers=owner.headers,
        )
    ).json()
    assert filtered.json()["results"]["visitors"] == {"value": 2}
    assert filtered.json()["results"]["pageviews"] == {"value": same["pageviews"]}
    google = await client.get(
        f"{API}/aggregate",
        params={"site_id": domain, "period": "7d", "filters": "visit:source==Google"},
        headers=key,
    )
    assert google.json()["results"]["visitors"] == {"value": 1}
    not_google = await client.get(
        f"{API}/breakdown",
        params={
            "site_id": domain,
            "period": "7d",
            "property": "event:page",
            "filters": "visit:source!=Google",
        },
        headers=key,
    )
    assert not_google.json()["results"] == [{"page": "/", "visitors": 2}, {"page": "/pricing", "visitors": 1}]
    daily = await client.get(
        f"{API}/timeseries",
        params={
            "site_id": domain,
            "period": "7d",
            "metrics": "visitors",
            "filters": "visit:country==DE;event:page~pric",
        },
        headers=key,
    )
    assert sum(point["visitors"] for point in daily.json()["results"]) == 2

    realtime = await client.get(f"{API}/realtime/visitors", params={"site_id": domain}, headers=key)
    assert realtime.json() == 2

    listed = (await client.get("/api/analytics/keys", headers=owner.headers)).json()
    assert [entry["id"] for entry in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    async with platform.database.transaction() as session:
        stored = await session.get(AnalyticsStatsKey, uuid.UUID(created["id"]))
        assert stored is not None
        assert created["key"].split("_")[-1] not in stored.secret_hash


async def test_a_key_reads_only_its_sites_and_stops_when_revoked(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    other = await client.post("/api/analytics/sites", json={"domain": "blog.example"}, headers=owner.headers)
    stranger = await account(platform)
    strangers_site = await client.post(
        "/api/analytics/sites", json={"domain": "strange.example"}, headers=stranger.headers
    )
    created = await _make_key(client, owner, site["id"])
    key = bearer(created["key"])

    for domain in ("blog.example", "strange.example", "nowhere.example"):
        refused = await client.get(f"{API}/aggregate", params={"site_id": domain}, headers=key)
        assert refused.status_code == 404, domain
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/api/analytics/sites", headers=key)).status_code == 403
    assert (await client.get(f"/api/analytics/sites/{site['id']}", headers=key)).status_code == 403
    assert (
        await client.post("/api/analytics/keys", json={"name": "x", "site_ids": [site["id"]]}, headers=key)
    ).status_code == 403

    # nobody makes a key for a site they cannot read, or revokes another's key
    denied = await client.post(
        "/api/analytics/keys",
        json={"name": "x", "site_ids": [strangers_site.json()["id"]]},
        headers=owner.headers,
    )
    assert denied.status_code == 404
    assert (
        await client.delete(f"/api/analytics/keys/{created['id']}", headers=stranger.headers)
    ).status_code == 404
    assert (
        await client.get(f"{API}/aggregate", params={"site_id": site["domain"]}, headers=key)
    ).status_code == 200

    # a viewer's key ends with the viewer's access
    viewer = await account(platform)
    shared = await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert shared.status_code == 201, shared.text
    viewers_key = bearer((await _make_key(client, viewer, site["id"]))["key"])
    assert (
        await client.get(f"{API}/aggregate", params={"site_id": site["domain"]}, headers=viewers_key)
    ).status_code == 200
    await client.delete(f"/api/analytics/sites/{site['id']}/grants/{viewer.user.id}", headers=owner.headers)
    assert (
        await client.get(f"{API}/aggregate", params={"site_id": site["domain"]}, headers=viewers_key)
    ).status_code == 404

    revoked = await client.delete(f"/api/analytics/keys/{created['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    after = await client.get(f"{API}/aggregate", params={"site_id": site["domain"]}, headers=key)
    assert after.status_code == 401
    assert other.status_code == 201


async def test_bad_questions_are_400(client: httpx.AsyncClient, owner: Account, site: dict[str, Any]) -> None:
    key = bearer((await _make_key(client, owner, site["id"]))["key"])
    domain = site["domain"]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("aggregate", {"metrics": "visitors,unknown"}, "bad_metric"),
        ("timeseries", {"metrics": "bounce_rate"}, "bad_metric"),
        ("aggregate", {"filters": "visit:planet==Mars"}, "bad_filter"),
        ("aggregate", {"filters": "nonsense"}, "bad_filter"),
        ("aggregate", {"period": "custom"}, "bad_date"),
        ("aggregate", {"period": "custom", "date": "2026-01-05,2025-01-01"}, "bad_range"),
        ("aggregate", {"period": "week"}, "bad_period"),
        ("aggregate", {"date": "yesterday"}, "bad_date"),
        ("aggregate", {"compare": "last_year"}, "bad_compare"),
        ("timeseries", {"period": "12mo", "interval": "date"}, "bad_interval"),
        ("breakdown", {"property": "visit:planet"}, "bad_property"),
    ]
    for route, params, code in cases:
        response = await client.get(f"{API}/{route}", params={"site_id": domain, **params}, headers=key)
        assert response.status_code == 400, (route, params, response.text)
        assert response.json()["code"] == code, (route, params)
    custom = await client.get(
        f"{API}/timeseries",
        params={"site_id": domain, "period": "custom", "date": "2026-01-01,2026-01-03"},
        headers=key,
    )
    assert [point["date"] for point in custom.json()["results"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert (
        await client.get(f"{API}/aggregate", params={"site_id": domain}, headers=bearer("pas_garbage"))
    ).status_code == 401


@pytest.mark.one_engine
async def test_the_dashboard_offers_the_integrations_to_each_as_allowed(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    viewer = await account(platform)
    await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    signed_in = await client.post("/login", data={"email": viewer.user.email, "password": DEFAULT_PASSWORD})
    assert signed_in.status_code == 303
    page = await client.get(f"/analytics/{site['id']}")
    assert 'id="integrations"' in page.text
    assert 'id="key-form"' in page.text
    assert 'id="ga4-form"' not in page.text
    assert 'id="import-form"' not in page.text

    # what integrations.js does: the session cookie and the page's CSRF token
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert token is not None
    body = {"name": "from the page", "site_ids": [site["id"]]}
    refused = await client.post("/api/analytics/keys", json=body)
    assert refused.status_code == 403
    made = await client.post("/api/analytics/keys", json=body, headers={"X-CSRF-Token": token.group(1)})
    assert made.status_code == 201
    assert made.json()["key"].startswith("pas_")

    client.cookies.clear()
    assert (
        await client.post("/login", data={"email": owner.user.email, "password": DEFAULT_PASSWORD})
    ).status_code == 303
    owners_page = await client.get(f"/analytics/{site['id']}")
    assert 'id="ga4-form"' in owners_page.text
    assert 'id="import-form"' in owners_page.text
