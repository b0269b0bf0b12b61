"""Sharing advertisers and sites through core grants: managers give and take roles, the shared account
sees what it was given (and lists it), and deleting the resource takes its grants along."""

from __future__ import annotations

import httpx

from pentad.core.auth.grants import holders
from pentad.core.platform import Platform
from tests.apps.ads.support import create_advertiser, create_site, snapshot
from tests.factories import Account


async def test_a_site_owner_shares_with_a_viewer_and_takes_it_back(
    client: httpx.AsyncClient, owner: Account, stranger: Account
) -> None:
    site = await create_site(client, owner)
    path = f"/api/ads/sites/{site['id']}/grants/{stranger.id}/viewer"

    hidden = await client.get(f"/api/ads/sites/{site['id']}", headers=stranger.headers)
    shared = await client.put(path, headers=owner.headers)
    again = await client.put(path, headers=owner.headers)
    listed = await client.get("/api/ads/sites", headers=stranger.headers)
    seen = await client.get(f"/api/ads/sites/{site['id']}", headers=stranger.headers)
    grants = await client.get(f"/api/ads/sites/{site['id']}/grants", headers=owner.headers)
    viewer_shares = await client.put(
        f"/api/ads/sites/{site['id']}/grants/{stranger.id}/owner", headers=stranger.headers
    )
    revoked = await client.delete(path, headers=owner.headers)
    revoked_twice = await client.delete(path, headers=owner.headers)
    after = await client.get(f"/api/ads/sites/{site['id']}", headers=stranger.headers)

    assert hidden.status_code == 404
    assert (shared.status_code, again.status_code) == (204, 204)
    assert [s["id"] for s in listed.json()] == [site["id"]]
    assert seen.json()["role"] == "viewer"
    assert [(g["user_id"], g["role"]) for g in grants.json()] == [(stranger.id, "viewer")]
    assert viewer_shares.status_code == 403
    assert revoked.status_code == 204
    assert (revoked_twice.status_code, revoked_twice.json()["code"]) == (404, "grant_not_found")
    assert after.status_code == 404


async def test_a_shared_owner_of_an_advertiser_lists_and_manages_it(
    client: httpx.AsyncClient, owner: Account, stranger: Account
) -> None:
    advertiser = await create_advertiser(client, owner)
    await client.put(
        f"/api/ads/advertisers/{advertiser['id']}/grants/{stranger.id}/owner", headers=owner.headers
    )

    listed = await client.get("/api/ads/advertisers", headers=stranger.headers)
    renamed = await client.patch(
        f"/api/ads/advertisers/{advertiser['id']}", json={"name": "Shared"}, headers=stranger.headers
    )

    assert [(a["id"], a["role"]) for a in listed.json()] == [(advertiser["id"], "owner")]
    assert renamed.status_code == 200


async def test_sharing_refuses_strangers_unknown_accounts_and_roles(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    advertiser = await create_advertiser(client, owner)
    base = f"/api/ads/advertisers/{advertiser['id']}/grants"
    before = await snapshot(platform)

    stranger_lists = await client.get(base, headers=stranger.headers)
    stranger_grants = await client.put(f"{base}/{stranger.id}/owner", headers=stranger.headers)
    nobody = await client.put(f"{base}/00000000-0000-0000-0000-000000000001/viewer", headers=owner.headers)
    bad_role = await client.put(f"{base}/{stranger.id}/admin", headers=owner.headers)

    assert (stranger_lists.status_code, stranger_grants.status_code) == (404, 404)
    assert nobody.status_code == 404
    assert bad_role.status_code == 422
    assert await snapshot(platform) == before


async def test_deleting_a_resource_takes_its_grants_along(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    site = await create_site(client, owner)
    advertiser = await create_advertiser(client, owner)
    await client.put(f"/api/ads/sites/{site['id']}/grants/{stranger.id}/viewer", headers=owner.headers)
    await client.put(
        f"/api/ads/advertisers/{advertiser['id']}/grants/{stranger.id}/viewer", headers=owner.headers
    )

    deleted = await client.delete(f"/api/ads/sites/{site['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    await client.delete(f"/api/ads/advertisers/{advertiser['id']}", headers=owner.headers)

    async with platform.database.transaction(writes=False) as session:
        assert await holders(session, "ads.site", site["id"]) == []
        assert await holders(session, "ads.advertiser", advertiser["id"]) == []
