"""Sites and zones over the API: domains and timezones, zone validation, house creatives, and who may
see and change them."""

from __future__ import annotations

from typing import Any

import httpx

from pentad.core.platform import Platform
from tests.apps.ads.support import (
    create_advertiser,
    create_campaign,
    create_site,
    create_zone,
    grant,
    snapshot,
)
from tests.factories import Account


async def test_an_owner_manages_a_site_and_its_zones(client: httpx.AsyncClient, owner: Account) -> None:
    created = await client.post(
        "/api/ads/sites",
        json={"name": "Daily", "domain": "News.Example.COM.", "timezone": "Asia/Tokyo"},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    site = created.json()
    assert (site["domain"], site["timezone"], site["role"]) == ("news.example.com", "Asia/Tokyo", "owner")

    zone = await create_zone(client, owner, site["id"], mode="gpt", gpt_ad_unit="/1234/home_top")
    replaced = await client.put(
        f"/api/ads/zones/{zone['id']}",
        json={"name": "Side", "width": 300, "height": 250, "path_patterns": []},
        headers=owner.headers,
    )
    renamed = await client.patch(
        f"/api/ads/sites/{site['id']}", json={"timezone": "UTC"}, headers=owner.headers
    )
    zones = await client.get(f"/api/ads/sites/{site['id']}/zones", headers=owner.headers)

    assert zone["gpt_ad_unit"] == "/1234/home_top"
    assert (replaced.json()["mode"], replaced.json()["gpt_ad_unit"], replaced.json()["width"]) == (
        "direct",
        None,
        300,
    )
    assert renamed.json()["timezone"] == "UTC"
    assert [z["id"] for z in zones.json()] == [zone["id"]]

    assert (await client.delete(f"/api/ads/sites/{site['id']}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"/api/ads/zones/{zone['id']}", headers=owner.headers)).status_code == 404


async def test_a_domain_belongs_to_one_site(
    client: httpx.AsyncClient, owner: Account, stranger: Account
) -> None:
    await create_site(client, owner, "taken.example.com")
    other = await create_site(client, stranger, "free.example.com")
    again = await client.post(
        "/api/ads/sites", json={"name": "x", "domain": "TAKEN.example.com"}, headers=stranger.headers
    )
    moved = await client.patch(
        f"/api/ads/sites/{other['id']}", json={"domain": "taken.example.com"}, headers=stranger.headers
    )
    assert (again.status_code, again.json()["code"]) == (409, "domain_taken")
    assert moved.status_code == 409


INVALID_SITES: list[dict[str, Any]] = [
    {"name": "x", "domain": "https://news.example.com"},
    {"name": "x", "domain": "news.example.com/path"},
    {"name": "x", "domain": "localhost"},
    {"name": "x", "domain": "news.example.com:8080"},
    {"name": "x", "domain": "a.example.com", "timezone": "Mars/Olympus"},
    {"name": "x", "domain": "a.example.com", "timezone": "../../etc/passwd"},
    {"name": "", "domain": "a.example.com"},
]
INVALID_ZONES: list[dict[str, Any]] = [
    {"name": "z", "width": 0, "height": 90},
    {"name": "z", "width": 728, "height": 5000},
    {"name": "z", "width": 728, "height": 90, "mode": "gpt"},
    {"name": "z", "width": 728, "height": 90, "mode": "gpt", "gpt_ad_unit": "home_top"},
    {"name": "z", "width": 728, "height": 90, "mode": "popup"},
    {"name": "z", "width": 728, "height": 90, "path_patterns": ["news/*"]},
]


async def test_bad_sites_and_zones_are_refused_with_422_and_nothing_changes(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    site = await create_site(client, owner)
    zone = await create_zone(client, owner, site["id"])
    before = await snapshot(platform)
    for body in INVALID_SITES:
        response = await client.post("/api/ads/sites", json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
    for body in INVALID_ZONES:
        created = await client.post(f"/api/ads/sites/{site['id']}/zones", json=body, headers=owner.headers)
        replaced = await client.put(f"/api/ads/zones/{zone['id']}", json=body, headers=owner.headers)
        assert (created.status_code, replaced.status_code) == (422, 422), body
    assert await snapshot(platform) == before


async def test_viewers_read_a_site_strangers_do_not_see_it(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    site = await create_site(client, owner)
    zone = await create_zone(client, owner, site["id"])
    zone_body = {"name": "z", "width": 1, "height": 1}
    before = await snapshot(platform)
    for method, path, body in [
        ("GET", f"/api/ads/sites/{site['id']}", None),
        ("PATCH", f"/api/ads/sites/{site['id']}", {"name": "x"}),
        ("DELETE", f"/api/ads/sites/{site['id']}", None),
        ("GET", f"/api/ads/sites/{site['id']}/zones", None),
        ("POST", f"/api/ads/sites/{site['id']}/zones", zone_body),
        ("GET", f"/api/ads/zones/{zone['id']}", None),
        ("PUT", f"/api/ads/zones/{zone['id']}", zone_body),
        ("DELETE", f"/api/ads/zones/{zone['id']}", None),
    ]:
        response = await client.request(method, path, json=body, headers=stranger.headers)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/api/ads/sites", headers=stranger.headers)).json() == []

    await grant(platform, stranger, "ads.site", site["id"], "viewer")
    seen = await client.get(f"/api/ads/sites/{site['id']}", headers=stranger.headers)
    zones = await client.get(f"/api/ads/sites/{site['id']}/zones", headers=stranger.headers)
    refused = [
        await client.patch(f"/api/ads/sites/{site['id']}", json={"name": "x"}, headers=stranger.headers),
        await client.post(f"/api/ads/sites/{site['id']}/zones", json=zone_body, headers=stranger.headers),
        await client.put(f"/api/ads/zones/{zone['id']}", json=zone_body, headers=stranger.headers),
        await client.delete(f"/api/ads/zones/{zone['id']}", headers=stranger.headers),
        await client.delete(f"/api/ads/sites/{site['id']}", headers=stranger.headers),
    ]
    assert seen.json()["role"] == "viewer"
    assert [z["id"] for z in zones.json()] == [zone["id"]]
    assert [r.status_code for r in refused] == [403] * 5
    rows = {k: v for k, v in (await snapshot(platform)).items() if k != "audit_events"}
    assert rows == {k: v for k, v in before.items() if k != "audit_events"}


async def test_a_house_creative_must_be_one_you_manage_and_goes_when_it_is_deleted(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    site = await create_site(client, owner)
    theirs = await create_advertiser(client, stranger)
    their_campaign = await create_campaign(client, stranger, theirs["id"])
    mine = await create_advertiser(client, owner)
    my_campaign = await create_campaign(client, owner, mine["id"])
    creatives = []
    for campaign, who in ((their_campaign, stranger), (my_campaign, owner)):
        response = await client.post(
            f"/api/ads/campaigns/{campaign['id']}/creatives/text",
            json={"name": "House", "destination_url": "https://a.example/", "headline": "H"},
            headers=who.headers,
        )
        creatives.append(response.json())
    body = {"name": "z", "width": 728, "height": 90}

    refused = await client.post(
        f"/api/ads/sites/{site['id']}/zones", json={**body, "house_creative_id": creatives[0]["id"]},
        headers=owner.headers,
    )  # fmt: skip
    zone = await create_zone(client, owner, site["id"], house_creative_id=creatives[1]["id"])
    await client.delete(f"/api/ads/creatives/{creatives[1]['id']}", headers=owner.headers)
    after = await client.get(f"/api/ads/zones/{zone['id']}", headers=owner.headers)

    assert (refused.status_code, refused.json()["code"]) == (404, "creative_not_found")
    assert zone["house_creative_id"] == creatives[1]["id"]
    assert after.json()["house_creative_id"] is None
