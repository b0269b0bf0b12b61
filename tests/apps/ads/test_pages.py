"""The /ads pages without a browser: who may open them, and that their forms run the API's rules."""

from __future__ import annotations

import re
import uuid

import httpx

from pentad.apps.ads import repository
from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.apps.ads.support import snapshot
from tests.factories import DEFAULT_PASSWORD, bearer, create_user, issue_api_key


async def _sign_in(client: httpx.AsyncClient, user: User) -> str:
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text
    page = await client.get("/ads")
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found, "the page has no CSRF meta tag"
    return found.group(1)


async def test_anonymous_visitors_sign_in_and_accounts_without_ads_use_are_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    anonymous = await client.get("/ads")
    await _sign_in_without_ads(client, platform)
    refused = await client.get("/ads")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fads"
    assert refused.status_code == 403


async def _sign_in_without_ads(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform, roles=())
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303


async def test_an_account_sets_up_an_advertiser_campaign_site_and_zone_through_the_pages(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    csrf = await _sign_in(client, await create_user(platform))

    advertiser = await client.post("/ads/advertisers", data={"csrf_token": csrf, "name": "Acme"})
    assert advertiser.status_code == 303
    advertiser_path = advertiser.headers["location"]
    campaign = await client.post(
        f"{advertiser_path}/campaigns",
        data={
            "csrf_token": csrf, "name": "Winter", "starts_at": "2026-12-01T00:00:00Z", "pricing": "cpc",
            "rate_micros": "150000", "targeting": '{"countries": ["DE"]}',
        },
    )  # fmt: skip
    assert campaign.status_code == 303, campaign.text
    campaign_page = await client.get(campaign.headers["location"])
    text_ad = await client.post(
        f"{campaign.headers['location']}/creatives/text",
        data={
            "csrf_token": csrf,
            "name": "T",
            "headline": "Warm socks",
            "destination_url": "https://shop.example/",
        },
    )
    site = await client.post(
        "/ads/sites", data={"csrf_token": csrf, "name": "News", "domain": "news.example.org"}
    )
    zone = await client.post(
        f"{site.headers['location']}/zones",
        data={
            "csrf_token": csrf,
            "name": "Top",
            "width": "728",
            "height": "90",
            "path_patterns": "/a/** /b/*",
        },
    )
    overview = await client.get("/ads")
    site_page = await client.get(site.headers["location"])

    assert campaign_page.status_code == 200
    assert "Winter" in campaign_page.text
    assert text_ad.status_code == 303
    assert "Warm socks" in (await client.get(campaign.headers["location"])).text
    assert zone.status_code == 303
    assert "Acme" in overview.text
    assert "news.example.org" in overview.text
    assert "/a/** /b/*" in site_page.text


async def test_a_bad_form_shows_the_error_and_stores_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    csrf = await _sign_in(client, await create_user(platform))
    advertiser = await client.post("/ads/advertisers", data={"csrf_token": csrf, "name": "Acme"})
    before = await snapshot(platform)

    bad_json = await client.post(
        f"{advertiser.headers['location']}/campaigns",
        data={
            "csrf_token": csrf,
            "name": "W",
            "starts_at": "2026-12-01T00:00:00Z",
            "rate_micros": "1",
            "targeting": "{",
        },
    )
    bad_domain = await client.post("/ads/sites", data={"csrf_token": csrf, "name": "x", "domain": "http://x"})
    no_csrf = await client.post("/ads/advertisers", data={"name": "Sneaky"})

    assert bad_json.status_code == 400
    assert "Targeting: not valid JSON" in bad_json.text
    assert bad_domain.status_code == 400
    assert "Domain" in bad_domain.text
    assert no_csrf.status_code == 403
    assert await snapshot(platform) == before


async def test_managers_pause_campaigns_and_delete_creatives_and_zones_others_cannot(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    me, other = await create_user(platform), await create_user(platform)
    csrf = await _sign_in(client, me)
    advertiser = await client.post("/ads/advertisers", data={"csrf_token": csrf, "name": "Acme"})
    campaign = await client.post(
        f"{advertiser.headers['location']}/campaigns",
        data={"csrf_token": csrf, "name": "W", "starts_at": "2026-12-01T00:00:00Z", "rate_micros": "1",
              "targeting": '{"countries": ["FR"]}'},
    )  # fmt: skip
    campaign_path = campaign.headers["location"]
    await client.post(
        f"{campaign_path}/creatives/text",
        data={
            "csrf_token": csrf,
            "name": "T",
            "headline": "Socks",
            "destination_url": "https://shop.example/",
        },
    )
    site = await client.post(
        "/ads/sites", data={"csrf_token": csrf, "name": "N", "domain": "pages.example.org"}
    )
    await client.post(
        f"{site.headers['location']}/zones",
        data={"csrf_token": csrf, "name": "Top", "width": "1", "height": "1"},
    )
    campaign_id = campaign_path.rsplit("/", 1)[1]
    site_id = site.headers["location"].rsplit("/", 1)[1]
    async with platform.database.transaction(writes=False) as session:
        creative_id = (await repository.list_creatives(session, uuid.UUID(campaign_id)))[0].id
        zone_id = (await repository.list_zones(session, uuid.UUID(site_id)))[0].id

    paused = await client.post(f"{campaign_path}/status", data={"csrf_token": csrf, "status": "paused"})
    bad_status = await client.post(f"{campaign_path}/status", data={"csrf_token": csrf, "status": "gone"})
    after_pause = (
        await client.get(f"/api/ads/campaigns/{campaign_id}", headers=await _key(platform, other))
    ).status_code

    await client.post("/logout", data={"csrf_token": csrf})
    other_csrf = await _sign_in(client, other)
    before = await snapshot(platform)
    refused = [
        await client.post(f"/ads/creatives/{creative_id}/delete", data={"csrf_token": other_csrf}),
        await client.post(f"/ads/zones/{zone_id}/delete", data={"csrf_token": other_csrf}),
        await client.post(f"{campaign_path}/status", data={"csrf_token": other_csrf, "status": "active"}),
    ]
    assert [r.status_code for r in refused] == [404, 404, 404]
    assert await snapshot(platform) == before

    await client.post("/logout", data={"csrf_token": other_csrf})
    csrf = await _sign_in(client, me)
    deleted_creative = await client.post(f"/ads/creatives/{creative_id}/delete", data={"csrf_token": csrf})
    deleted_zone = await client.post(f"/ads/zones/{zone_id}/delete", data={"csrf_token": csrf})

    assert paused.status_code == 303
    assert bad_status.status_code == 400
    assert after_pause == 404
    async with platform.database.transaction(writes=False) as session:
        campaign_row = await repository.get_campaign(session, uuid.UUID(campaign_id))
        assert campaign_row is not None
        assert campaign_row.status == "paused"
        assert campaign_row.targeting == {"countries": ["FR"]}
        assert await repository.list_creatives(session, uuid.UUID(campaign_id)) == []
        assert await repository.list_zones(session, uuid.UUID(site_id)) == []
    assert (deleted_creative.status_code, deleted_zone.status_code) == (303, 303)


async def _key(platform: Platform, user: User) -> dict[str, str]:
    return bearer(await issue_api_key(platform, user))
