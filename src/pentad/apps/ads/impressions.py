"""Impressions and clicks: the ingest streams `ads.impressions` and `ads.clicks`, their flushes into
ads_impressions / ads_clicks, and the hourly stats recomputed from those rows.

The decision route appends a `served` row per ad it hands out (not for GPT zones, whose direct ad only
shows when GPT has nothing); the viewability beacon appends a `viewable` row; the click redirect a click
row. Flushing is idempotent: an impression is one row (its id is the token's), `viewable_ts` is set once,
a click is one row per impression — so duplicated beacons, double clicks and replayed batches count once.
Every (campaign, hour) bucket a batch touches is recomputed from the raw rows in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.models import AdsCampaign, AdsClick, AdsConversion, AdsImpression, AdsStatsHourly
from pentad.core.db.inserts import execute_in_parts, insert_ignore
from pentad.core.ingest import FlushContext, IngestStream

IMPRESSIONS_STREAM: Final = "ads.impressions"
CLICKS_STREAM: Final = "ads.clicks"


class ImpressionRow(BaseModel):
    id: uuid.UUID
    kind: Literal["served", "viewable"]
    ts: int
    """Unix milliseconds."""
    zone_id: uuid.UUID
    creative_id: uuid.UUID
    campaign_id: uuid.UUID | None
    site_id: uuid.UUID
    visitor_id: int | None = None
    path: str | None = None
    source: str | None = None
    country: str | None = None
    device: str | None = None


class ClickRow(BaseModel):
    impression_id: uuid.UUID
    ts: int
    zone_id: uuid.UUID
    creative_id: uuid.UUID
    campaign_id: uuid.UUID | None


async def flush_impressions(context: FlushContext, rows: Sequence[BaseModel]) -> None:
    impressions = [row for row in rows if isinstance(row, ImpressionRow)]
    if not impressions:
        return
    session = context.session
    values = []
    for row in impressions:
        value = row.model_dump(exclude={"kind"})
        value["hour"] = row.ts // 3_600_000
        value["viewable_ts"] = row.ts if row.kind == "viewable" else None
        values.append(value)
    await execute_in_parts(session, insert_ignore(session, AdsImpression), values)
    viewable = [row for row in impressions if row.kind == "viewable"]
    if viewable:
        for row in viewable:
            await session.execute(
                update(AdsImpression)
                .where(and_(AdsImpression.id == row.id, AdsImpression.viewable_ts.is_(None)))
                .values(viewable_ts=row.ts)
                .execution_options(synchronize_session=False)
            )
    await recompute_stats(session, _buckets(impressions))


async def flush_clicks(context: FlushContext, rows: Sequence[BaseModel]) -> None:
    clicks = [row for row in rows if isinstance(row, ClickRow)]
    if not clicks:
        return
    session = context.session
    await execute_in_parts(session, insert_ignore(session, AdsClick), clicks)
    found = await session.execute(
        select(AdsImpression.campaign_id, AdsImpression.hour)
        .where(AdsImpression.id.in_([row.impression_id for row in clicks]))
        .distinct()
    )
    await recompute_stats(session, {(campaign_id, hour) for campaign_id, hour in found if campaign_id})


def _buckets(rows: Iterable[ImpressionRow]) -> set[tuple[uuid.UUID, int]]:
    return {(row.campaign_id, row.ts // 3_600_000) for row in rows if row.campaign_id is not None}


def spend_micros(pricing: str, rate_micros: int, viewable: int, clicks: int) -> int:
    """What a bucket costs: CPM is charged per 1,000 viewable impressions, CPC per click, flat not per
    event."""
    if pricing == "cpm":
        return viewable * rate_micros // 1000
    if pricing == "cpc":
        return clicks * rate_micros
    return 0


async def recompute_stats(session: AsyncSession, buckets: set[tuple[uuid.UUID, int]]) -> None:
    """Rebuild the ads_stats_hourly rows of these (campaign, hour) buckets from the raw rows."""
    by_campaign: dict[uuid.UUID, set[int]] = {}
    for campaign_id, hour in buckets:
        by_campaign.setdefault(campaign_id, set()).add(hour)
    if not by_campaign:
        return
    prices = {
        row.id: (row.pricing, row.rate_micros)
        for row in await session.execute(
            select(AdsCampaign.id, AdsCampaign.pricing, AdsCampaign.rate_micros).where(
                AdsCampaign.id.in_(list(by_campaign))
            )
        )
    }
    impression, click = AdsImpression, AdsClick
    for campaign_id, hours in by_campaign.items():
        await session.execute(
            delete(AdsStatsHourly).where(
                AdsStatsHourly.campaign_id == campaign_id, AdsStatsHourly.hour.in_(sorted(hours))
            )
        )
        grouped = await session.execute(
            select(
                impression.hour,
                impression.creative_id,
                impression.zone_id,
                func.count(),
                func.count(impression.viewable_ts),
                func.count(click.impression_id),
            )
            .outerjoin(click, click.impression_id == impression.id)
            .where(impression.campaign_id == campaign_id, impression.hour.in_(sorted(hours)))
            .group_by(impression.hour, impression.creative_id, impression.zone_id)
        )
        pricing, rate = prices.get(campaign_id, ("flat", 0))
        found: dict[tuple[int, uuid.UUID, uuid.UUID], dict[str, Any]] = {}
        for hour, creative_id, zone_id, served, viewable, clicks in grouped:
            found[(hour, creative_id, zone_id)] = {
                "campaign_id": campaign_id,
                "hour": hour,
                "creative_id": creative_id,
                "zone_id": zone_id,
                "served": served,
                "viewable": viewable,
                "clicks": clicks,
                "spend_micros": spend_micros(pricing, rate, viewable, clicks),
                "conversions": 0,
                "revenue_micros": 0,
            }
        conversion = AdsConversion
        converted = await session.execute(
            select(
                conversion.hour,
                conversion.creative_id,
                conversion.zone_id,
                func.count(),
                func.sum(func.coalesce(conversion.revenue_micros, 0)),
            )
            .where(conversion.campaign_id == campaign_id, conversion.hour.in_(sorted(hours)))
            .group_by(conversion.hour, conversion.creative_id, conversion.zone_id)
        )
        for hour, creative_id, zone_id, count, revenue in converted:
            bucket = found.setdefault(
                (hour, creative_id, zone_id),
                {
                    "campaign_id": campaign_id, "hour": hour, "creative_id": creative_id, "zone_id": zone_id,
                    "served": 0, "viewable": 0, "clicks": 0, "spend_micros": 0,
                },
            )  # fmt: skip
            bucket["conversions"], bucket["revenue_micros"] = int(count), int(revenue or 0)
        if found:
            await session.execute(insert(AdsStatsHourly), list(found.values()))


IMPRESSIONS = IngestStream(IMPRESSIONS_STREAM, ImpressionRow, flush_impressions, batch_size=1000)
CLICKS = IngestStream(CLICKS_STREAM, ClickRow, flush_clicks, batch_size=1000)
