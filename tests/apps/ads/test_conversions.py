"""Conversions: analytics' `analytics.goals_completed` (declared here by a stand-in analytics app with only
that event, so the test needs no analytics tables or ingest) is attributed to the click or viewable
impression of the same visitor and day: post-click before post-view, within the campaign's windows, only for
the goals it counts, and never twice when the event is delivered again."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import func, select

from pentad.app import create_app
from pentad.apps.ads.conversions import GoalsCompleted, attribute_batch
from pentad.apps.ads.impressions import CLICKS_STREAM, IMPRESSIONS_STREAM, ClickRow, ImpressionRow
from pentad.apps.ads.models import AdsConversion, AdsStatsHourly
from pentad.apps.ads.spec import APP
from pentad.core.apps import AppSpec
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.events import DomainEvent, emit
from pentad.core.platform import Platform
from tests.apps.ads.serving import campaign, decide, impressions, setup, text_ad
from tests.factories import Account, run_due_jobs


class Completion(BaseModel):
    goal_id: uuid.UUID
    goal_name: str
    visitor_id: int
    day: date
    ts: datetime
    path: str
    source: str | None = None
    revenue_micros: int | None = None
    currency: str | None = None


class Completed(BaseModel):
    site_domain: str
    completions: list[Completion]


ANALYTICS_STAND_IN = AppSpec(
    name="analytics",
    title="Analytics (its goals event only)",
    events=[DomainEvent("analytics.goals_completed", Completed)],
)
PURCHASE = uuid.uuid4()


@pytest.fixture
async def app(settings: Settings, database: Database) -> FastAPI:
    app = create_app(settings, database=database, apps=[APP, ANALYTICS_STAND_IN])
    await app.state.platform.open_resources()
    app.state.platform.ingest._start_flusher = lambda: None
    return app


def completion(visitor_id: int, at: datetime, goal: str = "Purchase", **extra: Any) -> dict[str, Any]:
    return {
        "goal_id": str(PURCHASE if goal == "Purchase" else uuid.uuid5(PURCHASE, goal)),
        "goal_name": goal,
        "visitor_id": visitor_id,
        "day": at.date().isoformat(),
        "ts": at.isoformat(),
        "path": "/checkout/done",
        "source": "search",
        **extra,
    }


async def _stats(platform: Platform, campaign_id: str) -> tuple[int, int]:
    async with platform.database.transaction(writes=False) as session:
        found = (
            await session.execute(
                select(func.sum(AdsStatsHourly.conversions), func.sum(AdsStatsHourly.revenue_micros)).where(
                    AdsStatsHourly.campaign_id == uuid.UUID(campaign_id)
                )
            )
        ).one()
    return int(found[0] or 0), int(found[1] or 0)


async def test_a_purchase_after_a_click_is_a_post_click_conversion_counted_once_on_redelivery(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, conversion_goals=["Purchase"])
    answer = (await decide(client, ads.zone_id)).json()
    clicked = await client.get(answer["ad"]["click"].replace("http://testserver", ""))
    assert clicked.status_code == 302
    (shown,) = await impressions(platform)
    assert shown.visitor_id is not None
    bought = datetime.now(UTC)
    payload = {
        "site_domain": ads.domain,
        "completions": [
            completion(shown.visitor_id, bought, revenue_micros=49_900_000, currency="eur"),
            completion(shown.visitor_id, bought, goal="Newsletter"),  # not a goal the campaign counts
            completion(shown.visitor_id + 1, bought),  # another visitor: saw nothing
        ],
    }

    for _ in range(2):  # delivered twice (at least once means now and then twice)
        async with platform.database.transaction() as session:
            await emit(session, "analytics.goals_completed", payload)
        await run_due_jobs(platform)

    async with platform.database.transaction(writes=False) as session:
        (row,) = await session.scalars(select(AdsConversion))
    assert (row.kind, row.goal_name, str(row.campaign_id)) == ("click", "Purchase", ads.campaign_id)
    assert (row.impression_id, row.revenue_micros, row.currency) == (shown.id, 49_900_000, "EUR")
    assert await _stats(platform, ads.campaign_id) == (1, 49_900_000)
    stats = (await client.get(f"/api/ads/campaigns/{ads.campaign_id}/stats", headers=owner.headers)).json()
    assert (stats["clicks"], stats["conversions"], stats["revenue_micros"]) == (1, 1, 49_900_000)
    assert stats["conversion_rate"] == 1.0


async def test_a_campaign_that_counts_no_goal_gets_no_conversion(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)  # conversion_goals: none
    answer = (await decide(client, ads.zone_id)).json()
    await client.get(answer["ad"]["click"].replace("http://testserver", ""))
    (shown,) = await impressions(platform)
    assert shown.visitor_id is not None
    async with platform.database.transaction() as session:
        await emit(
            session,
            "analytics.goals_completed",
            {"site_domain": ads.domain, "completions": [completion(shown.visitor_id, datetime.now(UTC))]},
        )
    await run_due_jobs(platform)

    assert await _stats(platform, ads.campaign_id) == (0, 0)


async def _touch(
    platform: Platform,
    ads: Any,
    campaign_id: str,
    creative_id: str,
    visitor: int,
    shown: datetime,
    *,
    viewable: datetime | None = None,
    clicked: datetime | None = None,
) -> None:
    ids = {
        "zone_id": uuid.UUID(ads.zone_id),
        "creative_id": uuid.UUID(creative_id),
        "campaign_id": uuid.UUID(campaign_id),
    }
    impression_id = uuid.uuid4()
    rows = [
        ImpressionRow(
            id=impression_id,
            kind="served",
            ts=int(shown.timestamp() * 1000),
            site_id=uuid.UUID(ads.site_id),
            visitor_id=visitor,
            path="/news/a",
            **ids,
        )
    ]
    if viewable is not None:
        rows.append(
            ImpressionRow(
                id=impression_id,
                kind="viewable",
                ts=int(viewable.timestamp() * 1000),
                site_id=uuid.UUID(ads.site_id),
                **ids,
            )
        )
    await platform.ingest.append(IMPRESSIONS_STREAM, *rows)
    if clicked is not None:
        await platform.ingest.append(
            CLICKS_STREAM, ClickRow(impression_id=impression_id, ts=int(clicked.timestamp() * 1000), **ids)
        )


async def test_post_click_beats_a_later_post_view_and_windows_goals_and_days_bound_attribution(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    viewed = await setup(client, owner, conversion_goals=["Purchase"], view_window=3600)
    clicked = await campaign(
        client,
        owner,
        viewed.advertiser_id,
        viewed.zone_id,
        conversion_goals=["Purchase", "Signup"],
        click_window=3 * 3600,
    )
    clicked_ad = await text_ad(client, owner, clicked, "Other")
    # visitor 1: clicked `clicked` 2 h ago, then saw `viewed` 10 min ago: the click wins
    await _touch(
        platform, viewed, clicked, clicked_ad, 1, now - timedelta(hours=2), clicked=now - timedelta(hours=2)
    )
    await _touch(platform, viewed, viewed.campaign_id, viewed.creative_id, 1, now - timedelta(minutes=10),
                 viewable=now - timedelta(minutes=10))  # fmt: skip
    # visitor 2: only a view 2 h ago, outside the 1 h view window
    await _touch(platform, viewed, viewed.campaign_id, viewed.creative_id, 2, now - timedelta(hours=2),
                 viewable=now - timedelta(hours=2))  # fmt: skip
    # visitor 3: a view 20 min ago: post-view
    await _touch(platform, viewed, viewed.campaign_id, viewed.creative_id, 3, now - timedelta(minutes=20),
                 viewable=now - timedelta(minutes=20))  # fmt: skip
    # visitor 4: a click 4 h ago, outside the 3 h click window; served but never viewable since
    await _touch(
        platform, viewed, clicked, clicked_ad, 4, now - timedelta(hours=4), clicked=now - timedelta(hours=4)
    )
    # visitor 5: clicked yesterday (the same id on another day is another person)
    yesterday = now - timedelta(days=1)
    await _touch(platform, viewed, clicked, clicked_ad, 5, yesterday, clicked=yesterday)
    await platform.ingest.flush()

    payload = GoalsCompleted.model_validate(
        {
            "site_domain": viewed.domain.upper(),
            "completions": [completion(visitor, now, revenue_micros=1_000_000) for visitor in (1, 2, 3, 4, 5)]
            + [completion(1, now + timedelta(seconds=1), goal="Signup"), completion(3, now, goal="Signup")],
        }
    )
    async with platform.database.transaction() as session:
        assert await attribute_batch(session, payload) == 3
    async with platform.database.transaction(writes=False) as session:
        found = {
            (row.visitor_id, row.goal_name): (row.kind, str(row.campaign_id))
            for row in await session.scalars(select(AdsConversion))
        }
    assert found == {
        (1, "Purchase"): ("click", clicked),
        (1, "Signup"): ("click", clicked),
        (3, "Purchase"): ("view", viewed.campaign_id),
    }  # visitor 3's Signup: `viewed` does not count that goal
    assert await _stats(platform, clicked) == (2, 1_000_000)
    assert await _stats(platform, viewed.campaign_id) == (1, 1_000_000)


async def test_completions_of_an_unknown_site_are_ignored(platform: Platform) -> None:
    payload = GoalsCompleted(site_domain="nobody.example", completions=[])
    async with platform.database.transaction() as session:
        assert await attribute_batch(session, payload) == 0
