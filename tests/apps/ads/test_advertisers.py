"""Advertisers over the API: who may create, read, change and delete them; the contact e-mail encrypted
at rest and shown to managers only."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from pentad.core.platform import Platform
from tests.apps.ads.support import campaign_body, create_advertiser, create_campaign, grant, snapshot
from tests.factories import Account, account


async def test_an_owner_creates_reads_renames_and_deletes_an_advertiser(
    client: httpx.AsyncClient, owner: Account
) -> None:
    created = await create_advertiser(client, owner, contact_email="Buyer@Example.com")
    assert created["role"] == "owner"
    assert created["owner_id"] == owner.id
    assert created["contact_email"] == "buyer@example.com"

    listed = await client.get("/api/ads/advertisers", headers=owner.headers)
    renamed = await client.patch(
        f"/api/ads/advertisers/{created['id']}",
        json={"name": "Acme GmbH", "contact_email": None},
        headers=owner.headers,
    )
    deleted = await client.delete(f"/api/ads/advertisers/{created['id']}", headers=owner.headers)
    gone = await client.get(f"/api/ads/advertisers/{created['id']}", headers=owner.headers)

    assert [a["id"] for a in listed.json()] == [created["id"]]
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Acme GmbH"
    assert renamed.json()["contact_email"] is None
    assert deleted.status_code == 204
    assert gone.status_code == 404


async def test_the_contact_email_is_stored_encrypted(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    created = await create_advertiser(client, owner, contact_email="secret-buyer@example.com")
    async with platform.database.transaction(writes=False) as session:
        stored = (await session.execute(text("SELECT contact_email FROM ads_advertisers"))).scalars().all()
    assert len(stored) == 1
    assert "secret-buyer" not in str(stored[0])
    fetched = await client.get(f"/api/ads/advertisers/{created['id']}", headers=owner.headers)
    assert fetched.json()["contact_email"] == "secret-buyer@example.com"


async def test_a_viewer_reads_but_cannot_change_and_does_not_see_the_contact(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    created = await create_advertiser(client, owner, contact_email="buyer@example.com")
    campaign = await create_campaign(client, owner, created["id"])
    await grant(platform, stranger, "ads.advertiser", created["id"], "viewer")
    before = await snapshot(platform)

    seen = await client.get(f"/api/ads/advertisers/{created['id']}", headers=stranger.headers)
    campaigns = await client.get(f"/api/ads/advertisers/{created['id']}/campaigns", headers=stranger.headers)
    renamed = await client.patch(
        f"/api/ads/advertisers/{created['id']}", json={"name": "x"}, headers=stranger.headers
    )
    deleted = await client.delete(f"/api/ads/advertisers/{created['id']}", headers=stranger.headers)
    new_campaign = await client.post(
        f"/api/ads/advertisers/{created['id']}/campaigns", json=campaign_body(), headers=stranger.headers
    )
    changed_campaign = await client.delete(f"/api/ads/campaigns/{campaign['id']}", headers=stranger.headers)

    assert seen.status_code == 200
    assert seen.json()["role"] == "viewer"
    assert seen.json()["contact_email"] is None
    assert [c["id"] for c in campaigns.json()] == [campaign["id"]]
    assert (renamed.status_code, deleted.status_code, changed_campaign.status_code) == (403, 403, 403)
    assert renamed.json()["code"] == "ads_permission"
    assert new_campaign.status_code == 403
    assert await snapshot(platform) == before


async def test_a_granted_owner_manages_like_the_creator(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    created = await create_advertiser(client, owner)
    await grant(platform, stranger, "ads.advertiser", created["id"], "owner")
    renamed = await client.patch(
        f"/api/ads/advertisers/{created['id']}", json={"name": "Shared"}, headers=stranger.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["role"] == "owner"


async def test_a_stranger_gets_404_for_everything_of_an_advertiser(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    created = await create_advertiser(client, owner)
    campaign = await create_campaign(client, owner, created["id"])
    before = await snapshot(platform)
    paths = [
        ("GET", f"/api/ads/advertisers/{created['id']}"),
        ("PATCH", f"/api/ads/advertisers/{created['id']}"),
        ("DELETE", f"/api/ads/advertisers/{created['id']}"),
        ("GET", f"/api/ads/advertisers/{created['id']}/campaigns"),
        ("GET", f"/api/ads/campaigns/{campaign['id']}"),
        ("DELETE", f"/api/ads/campaigns/{campaign['id']}"),
        ("GET", f"/api/ads/campaigns/{campaign['id']}/creatives"),
    ]
    for method, path in paths:
        response = await client.request(
            method, path, json={} if method == "PATCH" else None, headers=stranger.headers
        )
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get("/api/ads/advertisers", headers=stranger.headers)).json() == []
    assert await snapshot(platform) == before


async def test_ads_use_is_needed_and_ads_admin_sees_everything(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    created = await create_advertiser(client, owner)
    outsider = await account(platform, roles=())
    admin = await account(platform, admin=True)

    refused = await client.get("/api/ads/advertisers", headers=outsider.headers)
    refused_create = await client.post("/api/ads/advertisers", json={"name": "x"}, headers=outsider.headers)
    anonymous = await client.get("/api/ads/advertisers")
    everything = await client.get("/api/ads/advertisers", headers=admin.headers)
    renamed = await client.patch(
        f"/api/ads/advertisers/{created['id']}", json={"name": "By admin"}, headers=admin.headers
    )

    assert refused.status_code == 403
    assert refused_create.status_code == 403
    assert anonymous.status_code == 401
    assert created["id"] in [a["id"] for a in everything.json()]
    assert renamed.json()["role"] == "admin"


BAD_BODIES: list[dict[str, object]] = [
    {},
    {"name": ""},
    {"name": "x" * 201},
    {"name": "Acme", "contact_email": "not-an-address"},
    {"name": "A", "x": 1},
]


async def test_a_bad_advertiser_is_refused_with_422_and_nothing_stored(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    existing = await create_advertiser(client, owner)
    before = await snapshot(platform)
    for body in BAD_BODIES:
        created = await client.post("/api/ads/advertisers", json=body, headers=owner.headers)
        assert created.status_code == 422, body
        assert created.headers["content-type"].startswith("application/problem+json")
    changed = await client.patch(
        f"/api/ads/advertisers/{existing['id']}", json={"contact_email": "nope"}, headers=owner.headers
    )
    assert changed.status_code == 422
    assert await snapshot(platform) == before
