"""Helpers of the serving tests: a site with a zone and a running campaign with one text ad, and a browser
asking for ads from a public address (the test client is a trusted proxy, so X-Forwarded-For counts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from pentad.apps.ads.models import AdsClick, AdsImpression
from pentad.core.platform import Platform
from tests.apps.ads.support import create_advertiser, create_site, create_zone
from tests.factories import Account

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GERMANY, BRITAIN = "194.25.2.129", "81.2.69.160"
"""Public addresses the shipped CC0 country database places in DE and GB."""
DESTINATION = "https://shop.example.com/winter?x=1"


@dataclass
class Setup:
    domain: str
    site_id: str
    zone_id: str
    advertiser_id: str
    campaign_id: str
    creative_id: str


def running(**overrides: Any) -> dict[str, Any]:
    """A campaign body that runs now, asap, without caps unless given."""
    body: dict[str, Any] = {
        "name": "Winter sale",
        "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "pricing": "cpc",
        "rate_micros": 400_000,
        "pacing": "asap",
        "priority": 5,
        "weight": 1,
        "targeting": {},
    }
    body.update(overrides)
    return body


async def text_ad(
    client: httpx.AsyncClient, who: Account, campaign_id: str, headline: str = "Hot deals"
) -> str:
    response = await client.post(
        f"/api/ads/campaigns/{campaign_id}/creatives/text",
        json={
            "name": headline,
            "destination_url": DESTINATION,
            "headline": headline,
            "body": "Up to 50% off",
        },
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    creative_id: str = response.json()["id"]
    return creative_id


async def campaign(
    client: httpx.AsyncClient, who: Account, advertiser_id: str, zone_id: str, **overrides: Any
) -> str:
    response = await client.post(
        f"/api/ads/advertisers/{advertiser_id}/campaigns",
        json=running(zone_ids=[zone_id], **overrides),
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["id"]
    return campaign_id


async def setup(
    client: httpx.AsyncClient, who: Account, zone: dict[str, Any] | None = None, **overrides: Any
) -> Setup:
    site = await create_site(client, who)
    zone_row = await create_zone(
        client,
        who,
        site["id"],
        **{"width": 300, "height": 250, "path_patterns": ["/news/**"], **(zone or {})},
    )
    advertiser = await create_advertiser(client, who)
    campaign_id = await campaign(client, who, advertiser["id"], zone_row["id"], **overrides)
    creative_id = await text_ad(client, who, campaign_id)
    return Setup(site["domain"], site["id"], zone_row["id"], advertiser["id"], campaign_id, creative_id)


async def decide(
    client: httpx.AsyncClient,
    zone_id: str,
    path: str = "/news/today",
    *,
    address: str = GERMANY,
    agent: str = FIREFOX,
    origin: str | None = None,
    **params: Any,
) -> httpx.Response:
    headers = {"User-Agent": agent, "X-Forwarded-For": address}
    if origin is not None:
        headers["Origin"] = origin
    return await client.get("/api/ads/decide", params={"z": zone_id, "p": path, **params}, headers=headers)


async def beacon(client: httpx.AsyncClient, token: str, *, origin: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "text/plain", "User-Agent": FIREFOX, "X-Forwarded-For": GERMANY}
    if origin is not None:
        headers["Origin"] = origin
    return await client.post("/api/ads/v", content=token.encode(), headers=headers)


async def impressions(platform: Platform) -> list[AdsImpression]:
    await platform.ingest.flush()
    async with platform.database.transaction(writes=False) as session:
        return list(await session.scalars(select(AdsImpression).order_by(AdsImpression.ts)))


async def clicks(platform: Platform) -> list[AdsClick]:
    await platform.ingest.flush()
    async with platform.database.transaction(writes=False) as session:
        return list(await session.scalars(select(AdsClick)))
