"""The live campaign topic `ads.campaign.{campaign_id}`: delivery counters every LIVE_INTERVAL seconds
while someone watches.

Subscribing needs what reading the campaign's stats over REST needs: a user's credential holding
`ads.use`, and `ads.reports.read` on the campaign's advertiser (its owners and viewers, ads.admin; a
token's scopes narrow it); publishing, presence and calls are refused: only the server publishes. A
subscription marks the campaign watched on this process for WATCH_SECONDS; the hub asks again every
PENTAD_REALTIME__REVALIDATE_INTERVAL (60 s by default), which renews the mark, so a campaign stops being
computed at most WATCH_SECONDS after its last watcher left (or lost the right). The service `ads.live`
(placement serve, in every serve process) publishes for the campaigns its own sockets watch: today's
(UTC) served, viewable, clicks, spend and conversions from the hourly stats, and its all-time spend as
the serving counter knows it, against its budget.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Final

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.access import advertiser_access
from pentad.apps.ads.budgets import total_key
from pentad.apps.ads.exceptions import AdvertiserNotFound
from pentad.apps.ads.models import AdsCampaign, AdsStatsHourly
from pentad.apps.ads.permissions import ADS_USE, REPORTS_READ
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.realtime.publish import publish_now
from pentad.core.realtime.topics import TopicAccess, TopicSpec
from pentad.core.services import ServiceContext, ServiceSpec

LIVE_INTERVAL: Final = 10.0
WATCH_SECONDS: Final = 150.0
TOPIC: Final = "ads.campaign.{campaign_id}"


class Watched:
    """The campaigns this process's sockets watch, with when the mark runs out (monotonic seconds)."""

    def __init__(self) -> None:
        self.until: dict[uuid.UUID, float] = {}

    def mark(self, campaign_id: uuid.UUID) -> None:
        self.until[campaign_id] = time.monotonic() + WATCH_SECONDS

    def current(self) -> list[uuid.UUID]:
        now = time.monotonic()
        for campaign_id in [key for key, until in self.until.items() if until <= now]:
            del self.until[campaign_id]
        return list(self.until)


async def _open(_context: AppContext) -> Watched:
    return Watched()


WATCHED: ResourceSpec[Watched] = ResourceSpec("ads.watched", _open)


class Delivery(BaseModel):
    served: int
    viewable: int
    clicks: int
    spend_micros: int
    conversions: int


class CampaignLive(BaseModel):
    """A frame of `ads.campaign.{id}`."""

    campaign_id: uuid.UUID
    at: datetime
    today: Delivery
    total_spend_micros: int
    budget_micros: int | None
    exhausted: bool


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def authorize(access: TopicAccess) -> bool:
    campaign_id = _uuid(access.params.get("campaign_id", ""))
    principal = access.principal
    if campaign_id is None or access.action != "subscribe" or not principal.is_user:
        return False  # as the REST reports: a user's credential (holding ads.use: the spec requires it)
    advertiser_id = await access.session.scalar(
        select(AdsCampaign.advertiser_id).where(AdsCampaign.id == campaign_id)
    )
    if advertiser_id is None:
        return False
    try:
        standing = await advertiser_access(access.session, access.platform, access.principal, advertiser_id)
    except AdvertiserNotFound:
        return False
    if REPORTS_READ.key not in standing.permissions:
        return False
    try:
        watched = access.platform.resource(WATCHED)
    except LookupError:  # a process that opened no resources publishes nothing live: nothing to mark
        return True
    watched.mark(campaign_id)
    return True


TOPICS: Final = (TopicSpec(TOPIC, authorize, history_size=1, history_ttl=60.0, requires=ADS_USE),)
"""`requires` is what the REST reports require of every caller (ads.use); `ads.reports.read` is a role's
permission on the advertiser, checked by `authorize`."""


async def snapshot(context: AppContext, session: AsyncSession, campaign_id: uuid.UUID) -> CampaignLive | None:
    campaign = await session.get(AdsCampaign, campaign_id)
    if campaign is None:
        return None
    now = datetime.now(UTC)
    first_hour = int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()) // 3600
    row = (
        await session.execute(
            select(
                func.sum(AdsStatsHourly.served),
                func.sum(AdsStatsHourly.viewable),
                func.sum(AdsStatsHourly.clicks),
                func.sum(AdsStatsHourly.spend_micros),
                func.sum(AdsStatsHourly.conversions),
            ).where(AdsStatsHourly.campaign_id == campaign_id, AdsStatsHourly.hour >= first_hour)
        )
    ).one()
    served, viewable, clicks, spend, conversions = (int(value or 0) for value in row)
    total = int(await context.cache.get(total_key(campaign_id)) or 0)
    today = Delivery(
        served=served, viewable=viewable, clicks=clicks, spend_micros=spend, conversions=conversions
    )
    return CampaignLive(
        campaign_id=campaign_id,
        at=now,
        today=today,
        total_spend_micros=total,
        budget_micros=campaign.budget_micros,
        exhausted=campaign.exhausted_at is not None,
    )


async def publish_watched(context: AppContext) -> int:
    """One round: a frame for every campaign this process watches; returns how many went out."""
    sent = 0
    watched = context.resource(WATCHED).current()
    if not watched:
        return 0
    async with context.database.transaction(writes=False) as session:
        frames = [await snapshot(context, session, campaign_id) for campaign_id in watched]
    for frame in frames:
        if frame is not None:
            await publish_now(context, f"ads.campaign.{frame.campaign_id}", frame)
            sent += 1
    return sent


async def run(service: ServiceContext) -> None:
    while True:
        await asyncio.sleep(LIVE_INTERVAL)
        await publish_watched(service.platform)


SERVICES: Final = (ServiceSpec("ads.live", run, placement="serve"),)
