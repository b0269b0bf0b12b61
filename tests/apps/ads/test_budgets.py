"""Total budgets: a campaign whose spend reaches `budget_micros` stops serving at once (the shared spend
counter), is closed by `ads.budgets` (once, with a mail to the advertiser's owner) and runs again when its
budget is raised; the counter is reconciled from the stats when the cache lost it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from pentad.apps.ads.budgets import check_budgets, total_key
from pentad.apps.ads.models import AdsCampaign
from pentad.core.config import Settings
from pentad.core.platform import Platform
from tests.apps.ads.serving import decide, setup
from tests.conftest import make_settings
from tests.core.auth.test_password_reset import Inbox
from tests.factories import Account, account, free_port, run_due_jobs


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["ads"],
        ratelimit={"enabled": False},
        security={"trusted_proxies": ["127.0.0.1"]},
        mail={"host": "127.0.0.1", "port": smtp[1]},
        server={"base_url": "https://pentad.test"},
    )


async def _click(client: httpx.AsyncClient, zone_id: str) -> httpx.Response:
    answer = await decide(client, zone_id)
    if answer.status_code == 200:
        await client.get(answer.json()["ad"]["click"].replace("https://pentad.test", ""))
    return answer


async def _exhausted(platform: Platform, campaign_id: str) -> Any:
    async with platform.database.transaction(writes=False) as session:
        return await session.scalar(
            select(AdsCampaign.exhausted_at).where(AdsCampaign.id == uuid.UUID(campaign_id))
        )


def _text(message: Message) -> str:
    (part,) = (p for p in message.walk() if p.get_content_type() == "text/plain")
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


async def test_a_spent_budget_stops_serving_at_once_closes_the_campaign_once_and_mails_its_owner(
    client: httpx.AsyncClient, platform: Platform, smtp: tuple[Inbox, int]
) -> None:
    owner = await account(platform)
    ads = await setup(client, owner, pricing="cpc", rate_micros=400_000, budget_micros=800_000)

    served = [(await _click(client, ads.zone_id)).status_code for _ in range(3)]

    assert served == [200, 200, 204]  # two clicks at 0.40 spend the 0.80: the third request gets nothing
    assert int(await platform.cache.get(total_key(uuid.UUID(ads.campaign_id)))) == 800_000
    await platform.ingest.flush()
    assert await check_budgets(platform) == [uuid.UUID(ads.campaign_id)]
    assert await check_budgets(platform) == []  # closed once
    await run_due_jobs(platform)
    assert await _exhausted(platform, ads.campaign_id) is not None
    (mail,) = smtp[0].messages
    assert mail["To"] == owner.user.email
    assert mail["Subject"] == 'Your campaign "Winter sale" has spent its budget'
    assert f"https://pentad.test/ads/campaigns/{ads.campaign_id}" in _text(mail)
    shown = await client.get(f"/api/ads/campaigns/{ads.campaign_id}", headers=owner.headers)
    assert shown.json()["exhausted_at"] is not None
    stats = await client.get(f"/api/ads/campaigns/{ads.campaign_id}/stats", headers=owner.headers)
    assert stats.json()["budget_spent"] == 1.0

    body = {**shown.json(), "budget_micros": 2_000_000}
    for key in ("id", "advertiser_id", "created_at", "updated_at", "exhausted_at"):
        body.pop(key)
    raised = await client.put(f"/api/ads/campaigns/{ads.campaign_id}", json=body, headers=owner.headers)

    assert raised.status_code == 200, raised.text
    assert raised.json()["exhausted_at"] is None
    assert (await decide(client, ads.zone_id)).status_code == 200
    assert await check_budgets(platform) == []


async def test_the_spend_counter_is_rebuilt_from_the_stats_when_the_cache_lost_it(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner = await account(platform)
    ads = await setup(client, owner, pricing="cpc", rate_micros=400_000, budget_micros=1_000_000)
    await _click(client, ads.zone_id)
    await _click(client, ads.zone_id)
    await platform.ingest.flush()
    key = total_key(uuid.UUID(ads.campaign_id))
    await platform.cache.delete(key)  # a restarted memory cache, an evicted Redis key

    assert await check_budgets(platform) == []
    assert int(await platform.cache.get(key)) == 800_000
    assert (await _click(client, ads.zone_id)).status_code == 200
    assert (await decide(client, ads.zone_id)).status_code == 204  # 1.20 >= 1.00
    await platform.ingest.flush()
    assert await check_budgets(platform) == [uuid.UUID(ads.campaign_id)]


async def test_a_campaign_without_a_budget_never_closes_and_others_cannot_see_its_spend(
    client: httpx.AsyncClient, platform: Platform, stranger: Account
) -> None:
    owner = await account(platform)
    ads = await setup(client, owner, pricing="cpc", rate_micros=400_000)
    for _ in range(3):
        assert (await _click(client, ads.zone_id)).status_code == 200
    await platform.ingest.flush()

    assert await check_budgets(platform) == []
    stats = await client.get(f"/api/ads/campaigns/{ads.campaign_id}/stats", headers=owner.headers)
    assert stats.json()["budget_spent"] is None
    refused = await client.get(f"/api/ads/campaigns/{ads.campaign_id}/stats", headers=stranger.headers)
    assert refused.status_code == 404
