"""Viewable impressions, counted clicks and a campaign's stats: each counted once, forged beacons refused,
and the stats readable by those who may read the advertiser's reports only."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from pentad.apps.ads.models import AdsStatsHourly
from pentad.apps.ads.serving import daily_key
from pentad.apps.ads.tokens import TokenSigner
from pentad.core.platform import Platform
from tests.apps.ads.serving import beacon, clicks, decide, impressions, setup
from tests.apps.ads.support import grant
from tests.factories import Account, account

LOADER = Path(__file__).parents[3] / "src" / "pentad" / "apps" / "ads" / "static" / "loader.js"


def _tampered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw[30] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_a_viewable_beacon_marks_its_impression_once_and_charges_cpm_once(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, pricing="cpm", rate_micros=3_000_000)
    token = (await decide(client, ads.zone_id)).json()["impression"]

    first = await beacon(client, token, origin=f"https://{ads.domain}")
    again = await beacon(client, token)

    assert (first.status_code, again.status_code) == (204, 204)
    assert first.headers["access-control-allow-origin"] == "*"
    (row,) = await impressions(platform)
    assert row.viewable_ts is not None
    assert row.viewable_ts >= row.ts
    day = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%Y%m%d")  # the site's day
    spend = await platform.cache.get(daily_key(uuid.UUID(ads.campaign_id), day, "spend"))
    assert int(spend) == 3000  # 3.00 per 1,000 viewable impressions, charged for one


async def test_forged_tampered_expired_and_click_tokens_are_refused_as_beacons_and_record_nothing(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)
    answer = (await decide(client, ads.zone_id)).json()
    good = answer["impression"]
    ids = TokenSigner(platform.signing_secret).verify("impression", good)
    forged = TokenSigner(b"someone else's secret").sign(
        "impression", impression_id=uuid.uuid4(), creative_id=ids.creative_id, zone_id=ids.zone_id, ttl=600
    )
    expired = TokenSigner(platform.signing_secret).sign(
        "impression",
        impression_id=uuid.uuid4(),
        creative_id=ids.creative_id,
        zone_id=ids.zone_id,
        ttl=60,
        now=time.time() - 120,
    )
    click = answer["ad"]["click"].rsplit("/", 1)[1]

    for token in (_tampered(good), forged, expired, click, "garbage", "é" * 10, ""):
        response = await beacon(client, token)
        assert response.status_code == 400, token
        assert response.json()["code"] in {"invalid_ad_token", "expired_ad_token"}
    foreign = await beacon(client, good, origin="https://evil.example")
    assert foreign.status_code == 403

    (row,) = await impressions(platform)
    assert row.viewable_ts is None
    assert (await beacon(client, good)).status_code == 204  # the refusals did not use the token up
    (row,) = await impressions(platform)
    assert row.viewable_ts is not None


async def test_a_click_is_counted_once_per_impression_and_stats_add_up(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, pricing="cpc", rate_micros=400_000)
    served = [(await decide(client, ads.zone_id, address=f"194.25.2.{130 + n}")).json() for n in range(3)]
    for answer in served[:2]:
        assert (await beacon(client, answer["impression"])).status_code == 204
    link = served[0]["ad"]["click"].split("/ads/c/")[1]
    for _ in range(3):
        followed = await client.get(f"/ads/c/{link}")
        assert followed.status_code == 302

    (row,) = await clicks(platform)
    assert str(row.campaign_id) == ads.campaign_id
    assert str(row.impression_id) == str(
        TokenSigner(platform.signing_secret).verify("click", link).impression_id
    )

    response = await client.get(f"/api/ads/campaigns/{ads.campaign_id}/stats", headers=owner.headers)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["served"], stats["viewable"], stats["clicks"]) == (3, 2, 1)
    assert stats["spend_micros"] == 400_000
    assert stats["ctr"] == 0.5
    assert abs(stats["viewability"] - 2 / 3) < 1e-9
    assert sum(hour["served"] for hour in stats["hours"]) == 3

    await platform.ingest.flush()  # a replayed flush recomputes the same buckets: nothing counts twice
    async with platform.database.transaction(writes=False) as session:
        assert await session.scalar(select(func.sum(AdsStatsHourly.served))) == 3


async def test_stats_are_for_those_who_read_the_advertisers_reports(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)
    url = f"/api/ads/campaigns/{ads.campaign_id}/stats"

    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    site_owner = await account(platform)
    await grant(platform, site_owner, "ads.site", ads.site_id, "owner")  # the publisher is not the buyer
    assert (await client.get(url, headers=site_owner.headers)).status_code == 404
    viewer = await account(platform)
    await grant(platform, viewer, "ads.advertiser", ads.advertiser_id, "viewer")
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    bad = await client.get(
        url, params={"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, headers=owner.headers
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_range"
    assert (
        await client.get(f"/api/ads/campaigns/{uuid.uuid4()}/stats", headers=owner.headers)
    ).status_code == 404


async def test_the_loader_is_served_and_at_most_2_kb_gzipped(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/ads/loader.js")

    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert response.content == LOADER.read_bytes()
    assert len(gzip.compress(response.content, 9)) <= 2048
    for needle in (
        b"/api/ads/decide",
        b"/api/ads/v",
        b"IntersectionObserver",
        b"slotRenderEnded",
        b"isEmpty",
    ):
        assert needle in response.content


async def test_a_spent_daily_budget_stops_serving(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, pricing="cpm", rate_micros=3_000_000, daily_budget_micros=6000)
    for index in range(2):
        answer = await decide(client, ads.zone_id, address=f"194.25.2.{130 + index}")
        assert answer.status_code == 200
        assert (await beacon(client, answer.json()["impression"])).status_code == 204
    # Two viewable impressions at 3.00 CPM spent the 0.006 of the day: nothing more today.
    assert (await decide(client, ads.zone_id, address="194.25.2.140")).status_code == 204
    rows = await impressions(platform)
    assert [row.viewable_ts is not None for row in rows] == [True, True]
