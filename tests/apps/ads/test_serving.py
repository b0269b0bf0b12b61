"""The decision route end to end: what a page gets for a slot, what is recorded, and what is refused."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update

from pentad.apps.ads.delivery import delivery_snapshot
from pentad.apps.ads.models import AdsCampaign
from pentad.apps.ads.tokens import TokenSigner
from pentad.core.platform import Platform
from tests.apps.ads.serving import (
    BRITAIN,
    FIREFOX,
    GERMANY,
    GOOGLEBOT,
    IPHONE,
    campaign,
    decide,
    impressions,
    setup,
    text_ad,
)
from tests.factories import Account


async def test_a_slot_gets_the_ad_with_signed_links_and_the_impression_is_recorded_without_ip_or_agent(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)

    response = await decide(
        client, ads.zone_id, "/news/today?utm_source=mail", origin=f"https://{ads.domain}"
    )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    body = response.json()
    assert (body["width"], body["height"], body["house"]) == (300, 250, False)
    assert body["ad"]["headline"] == "Hot deals"
    assert body["ad"]["kind"] == "text"
    assert body["ad"]["click"].split("/ads/c/")[0] == platform.base_url.rstrip("/")
    signer = TokenSigner(platform.signing_secret)
    token = signer.verify("impression", body["impression"])
    click = signer.verify("click", body["ad"]["click"].rsplit("/", 1)[1])
    assert token.impression_id == click.impression_id
    assert str(token.creative_id) == ads.creative_id
    assert str(token.zone_id) == ads.zone_id

    (row,) = await impressions(platform)
    assert row.id == token.impression_id
    assert (str(row.campaign_id), str(row.creative_id), str(row.site_id)) == (
        ads.campaign_id, ads.creative_id, ads.site_id,
    )  # fmt: skip
    assert (row.path, row.country, row.device, row.viewable_ts) == ("/news/today", "DE", "desktop", None)
    assert isinstance(row.visitor_id, int)
    stored = repr(vars(row))
    assert GERMANY not in stored
    assert "Firefox/133" not in stored


async def test_targeting_is_honoured_end_to_end(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(
        client,
        owner,
        targeting={
            "countries": ["DE"],
            "devices": ["mobile"],
            "paths": ["/news/sport/*"],
            "keys": {"team": ["fcb"]},
        },
    )

    async def ask(
        path: str = "/news/sport/today", address: str = GERMANY, agent: str = IPHONE, kv: str = "team:fcb"
    ) -> httpx.Response:
        return await decide(client, ads.zone_id, path, address=address, agent=agent, kv=[kv])

    assert (await ask()).status_code == 200
    assert (await ask(address=BRITAIN)).status_code == 204  # country
    assert (await ask(agent=FIREFOX)).status_code == 204  # device
    assert (await ask(path="/news/politics/today")).status_code == 204  # campaign's pages
    assert (await ask(kv="team:bvb")).status_code == 204  # custom key-value
    assert (await ask(path="/shop/sport/today")).status_code == 204  # the zone's pages
    assert len(await impressions(platform)) == 1


async def test_the_house_creative_fills_what_no_campaign_takes(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, targeting={"countries": ["FR"]})
    house_campaign = await campaign(client, owner, ads.advertiser_id, ads.zone_id, status="paused")
    house = await text_ad(client, owner, house_campaign, "Our own offer")
    assert (await decide(client, ads.zone_id)).status_code == 204

    zone = await client.get(f"/api/ads/zones/{ads.zone_id}", headers=owner.headers)
    body = {
        key: zone.json()[key] for key in ("name", "width", "height", "path_patterns", "mode", "gpt_ad_unit")
    }
    replaced = await client.put(
        f"/api/ads/zones/{ads.zone_id}", json={**body, "house_creative_id": house}, headers=owner.headers
    )
    assert replaced.status_code == 200, replaced.text

    response = await decide(client, ads.zone_id)
    assert response.status_code == 200
    assert response.json()["house"] is True
    assert response.json()["ad"]["headline"] == "Our own offer"
    (row,) = await impressions(platform)
    assert row.campaign_id is None
    assert str(row.creative_id) == house


async def test_higher_priority_wins(client: httpx.AsyncClient, owner: Account) -> None:
    ads = await setup(client, owner, priority=3)
    better = await campaign(client, owner, ads.advertiser_id, ads.zone_id, priority=9)
    creative = await text_ad(client, owner, better, "Priority")
    for _ in range(5):
        assert (await decide(client, ads.zone_id)).json()["ad"]["id"] == creative


async def test_unknown_zones_foreign_origins_bots_and_bad_input_get_no_ad(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)

    unknown = await decide(client, str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_zone"
    foreign = await decide(client, ads.zone_id, origin="https://evil.example")
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "origin_not_allowed"
    assert foreign.headers["access-control-allow-origin"] == "*"
    sub = await decide(client, ads.zone_id, origin=f"https://www.{ads.domain}")
    assert sub.status_code == 200
    bot = await decide(client, ads.zone_id, agent=GOOGLEBOT)
    assert bot.status_code == 204
    assert bot.headers["pentad-dropped"] == "bot_ua"
    assert (await client.get("/api/ads/decide", params={"z": "nope"})).status_code == 422
    relative = await decide(client, ads.zone_id, "news/today")
    assert relative.status_code == 422
    assert relative.json()["code"] == "invalid_path"
    assert len(await impressions(platform)) == 1  # only the subdomain's


async def test_the_frequency_cap_counts_per_visitor_and_campaign(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ads = await setup(client, owner, frequency_cap=2)

    assert (await decide(client, ads.zone_id)).status_code == 200
    assert (await decide(client, ads.zone_id, "/news/other")).status_code == 200
    assert (await decide(client, ads.zone_id)).status_code == 204
    assert (await decide(client, ads.zone_id, address=BRITAIN)).status_code == 200  # another visitor
    assert (await decide(client, ads.zone_id, agent=IPHONE)).status_code == 200  # another device, too


async def test_daily_impression_and_click_caps_stop_a_campaign(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ads = await setup(client, owner, daily_impressions=3)
    for index in range(3):
        assert (await decide(client, ads.zone_id, address=f"194.25.2.{130 + index}")).status_code == 200
    assert (await decide(client, ads.zone_id, address="194.25.2.140")).status_code == 204

    other = await setup(client, owner, daily_clicks=1)
    first = await decide(client, other.zone_id)
    assert (await decide(client, other.zone_id)).status_code == 200  # no click yet
    click = first.json()["ad"]["click"].split("/ads/c/")[1]
    assert (await client.get(f"/ads/c/{click}")).status_code == 302
    assert (await decide(client, other.zone_id)).status_code == 204


async def test_a_change_from_another_process_is_served_after_the_snapshot_check(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)
    assert (await decide(client, ads.zone_id)).status_code == 200
    async with platform.database.transaction() as session:  # as another process would
        await session.execute(
            update(AdsCampaign).where(AdsCampaign.id == uuid.UUID(ads.campaign_id)).values(status="paused")
        )

    assert await delivery_snapshot(platform).check() is True
    assert (await decide(client, ads.zone_id)).status_code == 204
    assert await delivery_snapshot(platform).check() is False


async def test_a_gpt_zone_gets_the_gpt_slot_with_pentads_key_values_and_the_direct_fallback(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, zone={"mode": "gpt", "gpt_ad_unit": "/1234/news_top"})

    response = await decide(client, ads.zone_id, "/news/today?utm_campaign=winter", kv=["section:sport"])

    body = response.json()
    assert body["gpt"] == {
        "ad_unit": "/1234/news_top",
        "sizes": [[300, 250]],
        "targeting": {
            "pt_country": "DE",
            "pt_device": "desktop",
            "pt_source": "direct",
            "pt_path": "/news/today",
            "utm_campaign": "winter",
            "section": "sport",
        },
    }
    assert body["ad"]["headline"] == "Hot deals"
    assert body["impression"]
    assert await impressions(platform) == []  # shown only if GPT has nothing: the beacon records it


async def test_any_origin_may_ask_without_credentials(client: httpx.AsyncClient, owner: Account) -> None:
    ads = await setup(client, owner)
    preflight = await client.options(
        "/api/ads/decide",
        headers={"Origin": f"https://{ads.domain}", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    beacon_preflight = await client.options(
        "/api/ads/v", headers={"Origin": "https://other.example", "Access-Control-Request-Method": "POST"}
    )
    assert beacon_preflight.headers["access-control-allow-origin"] == "*"

    response = await decide(client, ads.zone_id, origin=f"https://{ads.domain}")
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "no-store"
