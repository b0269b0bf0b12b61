"""Helpers of the ads tests: accounts with API keys, grants, a snapshot of the ads tables, and bodies."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.db.base import Base
from pentad.core.platform import Platform
from tests.factories import Account


async def grant(platform: Platform, who: Account, resource_type: str, resource_id: str, role: str) -> None:
    async with platform.database.transaction() as session:
        await AuthService(session, platform).grant(
            who.user.id, resource_type, resource_id, role, actor=audit.SYSTEM
        )


SNAPSHOT_TABLES = sorted(
    name for name in Base.metadata.tables if name.startswith("ads_") or name == "audit_events"
)


async def snapshot(platform: Platform) -> dict[str, list[str]]:
    """Every row of every ads table and of the audit log, to show that a refused request changed nothing."""
    found: dict[str, list[str]] = {}
    async with platform.database.transaction(writes=False) as session:
        for name in SNAPSHOT_TABLES:
            rows = (await session.execute(select(Base.metadata.tables[name]))).all()
            found[name] = sorted(repr(tuple(row)) for row in rows)
    return found


def campaign_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Winter sale",
        "starts_at": "2026-12-01T00:00:00Z",
        "ends_at": "2027-01-31T23:59:59+01:00",
        "pricing": "cpm",
        "rate_micros": 2_500_000,
        "budget_micros": 1_000_000_000,
        "daily_budget_micros": 50_000_000,
        "pacing": "even",
        "priority": 7,
        "weight": 3,
        "frequency_cap": 5,
        "targeting": {
            "countries": ["de", "AT"],
            "devices": ["mobile"],
            "paths": ["/news/**"],
            "hours": [8, 9],
        },
    }
    body.update(overrides)
    return body


async def create_advertiser(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/ads/advertisers", json={"name": "Acme", **body}, headers=who.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def create_campaign(
    client: httpx.AsyncClient, who: Account, advertiser_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/ads/advertisers/{advertiser_id}/campaigns", json=campaign_body(**body), headers=who.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def create_site(client: httpx.AsyncClient, who: Account, domain: str | None = None) -> dict[str, Any]:
    domain = domain or f"news-{uuid.uuid4().hex[:8]}.example.com"
    response = await client.post(
        "/api/ads/sites",
        json={"name": "News", "domain": domain, "timezone": "Europe/Berlin"},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def create_zone(client: httpx.AsyncClient, who: Account, site_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/api/ads/sites/{site_id}/zones",
        json={"name": "Top banner", "width": 728, "height": 90, "path_patterns": ["/news/**"], **body},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
