"""Live visitors: who is on a site now (events in the last LIVE_WINDOW), published on the hub.

Topic `analytics.site.{site_id}.live` (topics.py): a `LiveFrame` every LIVE_INTERVAL seconds while the
site has traffic. Each serve process's flushes of `analytics.events` note the sites they stored events
for (`LiveSites`, a per-process resource); the `analytics.live` service (placement serve) publishes,
every LIVE_INTERVAL, a frame for each site noted within the window — one small indexed read per active
site, nothing for idle ones — and one last frame once a site falls quiet (so watchers see it drop to 0).
Every process publishes only for the sites it stored events for; the numbers are read from the
database, so frames from two nodes agree. `GET /api/analytics/sites/{id}/stats/live` answers the same
frame on request (the dashboard's first value, and shared links, which poll).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

import structlog
from pydantic import BaseModel, Field
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.models import AnalyticsEvent, AnalyticsSite
from pentad.apps.analytics.store import external_store
from pentad.apps.analytics.store.base import EventStore
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.realtime.publish import publish_now
from pentad.core.services import ServiceContext, ServiceSpec

logger = structlog.get_logger("pentad.analytics.live")

LIVE_WINDOW: Final = 300
"""Seconds: a visitor with an event this recent is on the site now."""
LIVE_INTERVAL: Final = 5.0
TOP_PAGES: Final = 5
PAGEVIEW: Final = "pageview"


def live_topic(site_id: uuid.UUID) -> str:
    return f"analytics.site.{site_id}.live"


class LivePage(BaseModel):
    path: str
    visitors: int


class LiveFrame(BaseModel):
    type: str = "live"
    visitors: int = Field(description=f"Visitors with an event in the last {LIVE_WINDOW // 60} minutes.")
    pageviews: int = Field(description=f"Pageviews in the last {LIVE_WINDOW // 60} minutes.")
    top_pages: list[LivePage]
    at: datetime


async def live_frame(
    session: AsyncSession, site_key: int, now: datetime | None = None, store: EventStore | None = None
) -> LiveFrame:
    """The site's frame now; `store`: the deployment's events store when it is not this database
    (store.external_store), which then answers."""
    moment = now or datetime.now(UTC)
    since = int(moment.timestamp() * 1000) - LIVE_WINDOW * 1000
    if store is not None:
        visitors, views, top = await store.live(site_key, since, TOP_PAGES)
        return LiveFrame(
            visitors=visitors,
            pageviews=views,
            top_pages=[LivePage(path=path, visitors=count) for path, count in top],
            at=moment,
        )
    recent = [AnalyticsEvent.site_key == site_key, AnalyticsEvent.ts >= since]
    counts = (
        await session.execute(
            select(
                func.count(distinct(AnalyticsEvent.visitor_id)),
                func.coalesce(
                    func.sum((AnalyticsEvent.name == PAGEVIEW).cast(AnalyticsEvent.site_key.type)), 0
                ),
            ).where(*recent)
        )
    ).one()
    uniques = func.count(distinct(AnalyticsEvent.visitor_id))
    pages = (
        await session.execute(
            select(AnalyticsEvent.path, uniques)
            .where(*recent, AnalyticsEvent.name == PAGEVIEW)
            .group_by(AnalyticsEvent.path)
            .order_by(uniques.desc(), AnalyticsEvent.path)
            .limit(TOP_PAGES)
        )
    ).all()
    return LiveFrame(
        visitors=int(counts[0]),
        pageviews=int(counts[1] or 0),
        top_pages=[LivePage(path=path, visitors=int(count)) for path, count in pages],
        at=moment,
    )


class LiveSites:
    """The sites this process stored events for, by site key, with when (monotonic seconds)."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}

    def touch(self, site_keys: Iterable[int]) -> None:
        now = time.monotonic()
        for key in site_keys:
            self.seen[key] = now

    def due(self) -> list[int]:
        """The sites to publish for now: seen within the window, and once more after (their last frame)."""
        now = time.monotonic()
        found = [key for key, when in self.seen.items() if now - when <= LIVE_WINDOW + LIVE_INTERVAL]
        for key in [key for key, when in self.seen.items() if now - when > LIVE_WINDOW + LIVE_INTERVAL]:
            del self.seen[key]
        return found


async def _open(_context: AppContext) -> LiveSites:
    return LiveSites()


LIVE_SITES: ResourceSpec[LiveSites] = ResourceSpec("analytics.live_sites", _open)


def note_flushed(context: AppContext | None, site_keys: Iterable[int]) -> None:
    """Called by the ingest flush: these sites got events (nothing in a process without the resource)."""
    if context is None:
        return
    try:
        sites = context.resource(LIVE_SITES)
    except LookupError:
        return
    sites.touch(site_keys)


async def publish_due(context: AppContext) -> int:
    """One round: a frame for every due site; how many were published."""
    keys = context.resource(LIVE_SITES).due()
    if not keys:
        return 0
    async with context.database.transaction(writes=False) as session:
        sites = (await session.execute(select(AnalyticsSite.key, AnalyticsSite.id).where(
            AnalyticsSite.key.in_(keys)))).all()  # fmt: skip
        external = external_store(context)
        frames = [(site_id, await live_frame(session, key, store=external)) for key, site_id in sites]
    for site_id, frame in frames:
        await publish_now(context, live_topic(site_id), frame)
    return len(frames)


async def run_live(service: ServiceContext) -> None:
    while True:
        try:
            await publish_due(service.platform)
        except Exception:
            logger.exception("analytics_live_round_failed")
        await asyncio.sleep(LIVE_INTERVAL)


LIVE_SERVICE = ServiceSpec("analytics.live", run_live, placement="serve")
