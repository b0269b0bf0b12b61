"""Background jobs of the analytics app (queue `analytics`), named "analytics.<verb>"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from pentad.apps.analytics import retention, rollups, store
from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core.context import AppContext, JobContext
from pentad.core.jobs.registry import CronSpec, JobSpec

QUEUE = "analytics"
ROLLUP = "analytics.rollup"
ENFORCE_RETENTION = "analytics.enforce_retention"
ROLLUP_INTERVAL = 30
"""Seconds between `analytics.rollup` ticks (cron specs are fixed when the app is defined)."""


async def run_rollups(platform: AppContext, now: datetime | None = None) -> rollups.DrainReport:
    """Drain every dirty bucket, one batch per transaction; returns the totals."""
    settings = platform.app_settings(AnalyticsSettings)
    total = rollups.DrainReport()
    while True:
        async with platform.database.transaction() as session:
            claimed = await rollups.claim_dirty(session, settings.rollup_batch)
        if not claimed:
            return total
        try:
            async with platform.database.transaction() as session:
                moment = now or datetime.now(UTC)
                floors = {
                    site.key: retention.raw_floor_ms(
                        retention.effective(site.retention, settings.default_tiers), moment
                    )
                    for site in (await session.scalars(select(AnalyticsSite))).all()
                }
                report = await rollups.recompute(session, claimed, settings.session_timeout, raw_floor=floors)
        except BaseException:
            async with platform.database.transaction() as session:
                await rollups.mark_dirty(session, claimed)
            raise
        total.dirty += report.dirty
        total.hours += report.hours
        total.days += report.days
        total.months += report.months
        if report.dirty < settings.rollup_batch:
            return total


async def rollup(context: JobContext, _payload: dict[str, Any]) -> None:
    """Job `analytics.rollup`: recompute the dirty hours and the days and months they are in."""
    await run_rollups(context.platform)


async def run_retention(platform: AppContext, now: datetime | None = None) -> retention.Pruned:
    """Prune every site to its tiers, one chunk per transaction."""
    settings = platform.app_settings(AnalyticsSettings)
    moment = now or datetime.now(UTC)
    pruned = retention.Pruned()
    async with platform.database.transaction() as session:
        keys = [int(key) for key in (await session.scalars(select(AnalyticsSite.key))).all()]
        await retention.drop_expired_raw(session, settings.default_tiers, moment, pruned)
    for key in keys:
        more = True
        while more:
            async with platform.database.transaction() as session:
                site = await session.scalar(select(AnalyticsSite).where(AnalyticsSite.key == key))
                if site is None:
                    break
                tiers = retention.effective(site.retention, settings.default_tiers)
                more = await retention.prune_site_step(session, site, tiers, moment, pruned)
    pruned.events += await store.prune_raw(platform, moment)
    return pruned


async def enforce_retention(context: JobContext, _payload: dict[str, Any]) -> None:
    """Job `analytics.enforce_retention`: delete what each site's tiers no longer keep."""
    await run_retention(context.platform)


JOBS: tuple[JobSpec, ...] = (
    JobSpec(ROLLUP, rollup, concurrency=1, queue=QUEUE, timeout=600),
    JobSpec(ENFORCE_RETENTION, enforce_retention, concurrency=1, queue=QUEUE, timeout=3600),
)
CRON: tuple[CronSpec, ...] = (
    CronSpec(ROLLUP, every=ROLLUP_INTERVAL),
    CronSpec(ENFORCE_RETENTION, "17 3 * * *"),
)
