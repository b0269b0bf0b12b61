"""The analytics app's SQL for sites and drops (stats queries live in query.py)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.models import (
    AnalyticsDirtyBucket,
    AnalyticsDrop,
    AnalyticsEvent,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsRollupMonthly,
    AnalyticsSession,
    AnalyticsSite,
)


async def get_site(session: AsyncSession, site_id: uuid.UUID) -> AnalyticsSite | None:
    return await session.get(AnalyticsSite, site_id)


async def get_site_by_domain(session: AsyncSession, domain: str) -> AnalyticsSite | None:
    found: AnalyticsSite | None = await session.scalar(
        select(AnalyticsSite).where(AnalyticsSite.domain == domain)
    )
    return found


async def list_sites(session: AsyncSession, ids: Collection[uuid.UUID] | None = None) -> list[AnalyticsSite]:
    """Every site, or those of `ids`, by domain."""
    query = select(AnalyticsSite).order_by(AnalyticsSite.domain)
    if ids is not None:
        if not ids:
            return []
        query = query.where(AnalyticsSite.id.in_(list(ids)))
    return list((await session.scalars(query)).all())


async def next_site_key(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(AnalyticsSite.key), 0))) or 0) + 1


async def delete_site_data(session: AsyncSession, site_key: int) -> None:
    for table in (
        AnalyticsEvent,
        AnalyticsDrop,
        AnalyticsDirtyBucket,
        AnalyticsSession,
        AnalyticsRollupHourly,
        AnalyticsRollupDaily,
        AnalyticsRollupMonthly,
    ):
        await session.execute(delete(table).where(table.site_key == site_key))


async def count_drops(
    session: AsyncSession, site_key: int, start_minute: int, end_minute: int
) -> list[tuple[str, int]]:
    query = (
        select(AnalyticsDrop.reason, func.sum(AnalyticsDrop.count))
        .where(
            AnalyticsDrop.site_key == site_key,
            AnalyticsDrop.minute >= start_minute,
            AnalyticsDrop.minute < end_minute,
        )
        .group_by(AnalyticsDrop.reason)
        .order_by(func.sum(AnalyticsDrop.count).desc(), AnalyticsDrop.reason)
    )
    return [(reason, int(total)) for reason, total in (await session.execute(query)).all()]
