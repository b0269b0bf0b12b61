"""Campaigns over the API: the fields a campaign keeps, what validation refuses (nothing stored), and
placing a campaign in zones, which needs the zones' site too."""

from __future__ import annotations

from typing import Any

import httpx

from pentad.core.platform import Platform
from tests.apps.ads.support import (
    campaign_body,
    create_advertiser,
    create_campaign,
    create_site,
    create_zone,
    grant,
    snapshot,
)
from tests.factories import Account


async def test_a_campaign_keeps_what_it_was_given(client: httpx.AsyncClient, owner: Account) -> None:
    advertiser = await create_advertiser(client, owner)
    site = await create_site(client, owner)
    zone = await create_zone(client, owner, site["id"])

    created = await create_campaign(client, owner, advertiser["id"], zone_ids=[zone["id"]])
    fetched = await client.get(f"/api/ads/campaigns/{created['id']}", headers=owner.headers)

    campaign = fetched.json()
    assert campaign == created
    assert campaign["starts_at"].startswith("2026-12-01T00:00:00")
    assert campaign["ends_at"].startswith("2027-01-31T22:59:59")  # +01:00 stored as UTC
    assert (campaign["pricing"], campaign["pacing"], campaign["priority"], campaign["weight"]) == (
        "cpm",
        "even",
        7,
        3,
    )
    assert (campaign["rate_micros"], campaign["daily_budget_micros"]) == (2_500_000, 50_000_000)
    assert campaign["targeting"]["countries"] == ["DE", "AT"]
    assert campaign["targeting"]["paths"] == ["/news/**"]
    assert campaign["zone_ids"] == [zone["id"]]


async def test_put_replaces_the_whole_campaign_and_its_zones(
    client: httpx.AsyncClient, owner: Account
) -> None:
    advertiser = await create_advertiser(client, owner)
    site = await create_site(client, owner)
    first, second = await create_zone(client, owner, site["id"]), await create_zone(client, owner, site["id"])
    created = await create_campaign(client, owner, advertiser["id"], zone_ids=[first["id"]])

    body = campaign_body(
        name="Spring", pricing="cpc", pacing="asap", status="paused", targeting={}, zone_ids=[second["id"]],
        ends_at=None, daily_budget_micros=None,
    )  # fmt: skip
    replaced = await client.put(f"/api/ads/campaigns/{created['id']}", json=body, headers=owner.headers)

    assert replaced.status_code == 200, replaced.text
    campaign = replaced.json()
    assert (campaign["name"], campaign["pricing"], campaign["pacing"], campaign["status"]) == (
        "Spring", "cpc", "asap", "paused"
    )  # fmt: skip
    assert campaign["ends_at"] is None
    assert campaign["targeting"]["countries"] == []
    assert campaign["zone_ids"] == [second["id"]]


INVALID: list[dict[str, Any]] = [
    {"ends_at": "2026-11-30T00:00:00Z"},
    {"starts_at": "2026-12-01T00:00:00"},
    {"starts_at": "not a date"},
    {"pricing": "cpa"},
    {"pacing": "fast"},
    {"priority": 0},
    {"priority": 11},
    {"weight": 0},
    {"rate_micros": -1},
    {"rate_micros": 10**16},
    {"budget_micros": 1_000, "daily_budget_micros": 2_000},
    {"daily_impressions": 0},
    {"frequency_cap": 0},
    {"status": "deleted"},
    {"targeting": {"countries": ["Germany"]}},
    {"targeting": {"hours": [25]}},
    {"targeting": {"devices": ["toaster"]}},
    {"targeting": {"nonsense": 1}},
    {"targeting": {"utm": {"colour": ["x"]}}},
    {"name": "   "},
    {"zone_ids": ["00000000-0000-0000-0000-000000000001"] * 2},
]


async def test_a_bad_campaign_is_refused_with_422_and_nothing_changes(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    advertiser = await create_advertiser(client, owner)
    existing = await create_campaign(client, owner, advertiser["id"])
    before = await snapshot(platform)

    for change in INVALID:
        created = await client.post(
            f"/api/ads/advertisers/{advertiser['id']}/campaigns",
            json=campaign_body(**change),
            headers=owner.headers,
        )
        replaced = await client.put(
            f"/api/ads/campaigns/{existing['id']}", json=campaign_body(**change), headers=owner.headers
        )
        assert created.status_code == 422, (change, created.text)
        assert replaced.status_code == 422, (change, replaced.text)
        assert created.json()["code"] == "validation_failed"

    assert await snapshot(platform) == before


async def test_placing_a_campaign_needs_the_zones_site(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    advertiser = await create_advertiser(client, stranger)
    site = await create_site(client, owner)
    zone = await create_zone(client, owner, site["id"])
    before = await snapshot(platform)

    unseen = await client.post(
        f"/api/ads/advertisers/{advertiser['id']}/campaigns", json=campaign_body(zone_ids=[zone["id"]]),
        headers=stranger.headers,
    )  # fmt: skip
    await grant(platform, stranger, "ads.site", site["id"], "viewer")
    read_only = await client.post(
        f"/api/ads/advertisers/{advertiser['id']}/campaigns", json=campaign_body(zone_ids=[zone["id"]]),
        headers=stranger.headers,
    )  # fmt: skip
    after_refusals = await snapshot(platform)
    await grant(platform, stranger, "ads.site", site["id"], "owner")
    placed = await client.post(
        f"/api/ads/advertisers/{advertiser['id']}/campaigns", json=campaign_body(zone_ids=[zone["id"]]),
        headers=stranger.headers,
    )  # fmt: skip

    assert unseen.status_code == 404
    assert unseen.json()["code"] == "zone_not_found"
    assert read_only.status_code == 403
    assert {k: v for k, v in after_refusals.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    assert placed.status_code == 201
    assert placed.json()["zone_ids"] == [zone["id"]]


async def test_deleting_a_campaign_or_its_zone_removes_the_placement(
    client: httpx.AsyncClient, owner: Account
) -> None:
    advertiser = await create_advertiser(client, owner)
    site = await create_site(client, owner)
    zone, other = await create_zone(client, owner, site["id"]), await create_zone(client, owner, site["id"])
    campaign = await create_campaign(client, owner, advertiser["id"], zone_ids=[zone["id"], other["id"]])

    assert (await client.delete(f"/api/ads/zones/{zone['id']}", headers=owner.headers)).status_code == 204
    left = await client.get(f"/api/ads/campaigns/{campaign['id']}", headers=owner.headers)
    assert left.json()["zone_ids"] == [other["id"]]

    assert (
        await client.delete(f"/api/ads/campaigns/{campaign['id']}", headers=owner.headers)
    ).status_code == 204
    assert (
        await client.get(f"/api/ads/campaigns/{campaign['id']}", headers=owner.headers)
    ).status_code == 404
    assert (
        await client.get(f"/api/ads/advertisers/{advertiser['id']}/campaigns", headers=owner.headers)
    ).json() == []
