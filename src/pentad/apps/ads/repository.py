"""The ads app's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.models import (
    AdsAdvertiser,
    AdsCampaign,
    AdsCreative,
    AdsPlacement,
    AdsSite,
    AdsStatsHourly,
    AdsZone,
)


async def get_advertiser(session: AsyncSession, advertiser_id: uuid.UUID) -> AdsAdvertiser | None:
    return await session.get(AdsAdvertiser, advertiser_id)


async def list_advertisers(
    session: AsyncSession, *, owner_id: uuid.UUID | None, ids: Collection[uuid.UUID] = ()
) -> Sequence[AdsAdvertiser]:
    """Every advertiser (owner_id None), else those `owner_id` owns or listed in `ids`, by name."""
    query = select(AdsAdvertiser).order_by(AdsAdvertiser.name, AdsAdvertiser.id)
    if owner_id is not None:
        query = query.where(or_(AdsAdvertiser.owner_id == owner_id, AdsAdvertiser.id.in_(list(ids))))
    return (await session.scalars(query)).all()


async def get_site(session: AsyncSession, site_id: uuid.UUID) -> AdsSite | None:
    return await session.get(AdsSite, site_id)


async def site_domain_taken(session: AsyncSession, domain: str, *, other_than: uuid.UUID | None) -> bool:
    query = select(AdsSite.id).where(AdsSite.domain == domain)
    if other_than is not None:
        query = query.where(AdsSite.id != other_than)
    return (await session.scalar(query.limit(1))) is not None


async def list_sites(
    session: AsyncSession, *, owner_id: uuid.UUID | None, ids: Collection[uuid.UUID] = ()
) -> Sequence[AdsSite]:
    query = select(AdsSite).order_by(AdsSite.name, AdsSite.id)
    if owner_id is not None:
        query = query.where(or_(AdsSite.owner_id == owner_id, AdsSite.id.in_(list(ids))))
    return (await session.scalars(query)).all()


async def get_zone(session: AsyncSession, zone_id: uuid.UUID) -> AdsZone | None:
    return await session.get(AdsZone, zone_id)


async def get_zones(session: AsyncSession, zone_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AdsZone]:
    if not zone_ids:
        return {}
    zones = await session.scalars(select(AdsZone).where(AdsZone.id.in_(list(zone_ids))))
    return {zone.id: zone for zone in zones}


async def list_zones(session: AsyncSession, site_id: uuid.UUID) -> Sequence[AdsZone]:
    query = select(AdsZone).where(AdsZone.site_id == site_id).order_by(AdsZone.name, AdsZone.id)
    return (await session.scalars(query)).all()


async def get_campaign(session: AsyncSession, campaign_id: uuid.UUID) -> AdsCampaign | None:
    return await session.get(AdsCampaign, campaign_id)


async def list_campaigns(session: AsyncSession, advertiser_id: uuid.UUID) -> Sequence[AdsCampaign]:
    query = (
        select(AdsCampaign)
        .where(AdsCampaign.advertiser_id == advertiser_id)
        .order_by(AdsCampaign.starts_at.desc(), AdsCampaign.id)
    )
    return (await session.scalars(query)).all()


async def placement_zone_ids(
    session: AsyncSession, campaign_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The zones each campaign runs in (every campaign asked for has a list, maybe empty)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {campaign_id: [] for campaign_id in campaign_ids}
    if campaign_ids:
        rows = await session.execute(
            select(AdsPlacement.campaign_id, AdsPlacement.zone_id)
            .where(AdsPlacement.campaign_id.in_(list(campaign_ids)))
            .order_by(AdsPlacement.created_at, AdsPlacement.zone_id)
        )
        for campaign_id, zone_id in rows:
            found[campaign_id].append(zone_id)
    return found


async def replace_placements(
    session: AsyncSession, campaign_id: uuid.UUID, zone_ids: Sequence[uuid.UUID]
) -> None:
    await session.execute(delete(AdsPlacement).where(AdsPlacement.campaign_id == campaign_id))
    session.add_all(AdsPlacement(campaign_id=campaign_id, zone_id=zone_id) for zone_id in zone_ids)
    await session.flush()


async def get_creative(session: AsyncSession, creative_id: uuid.UUID) -> AdsCreative | None:
    return await session.get(AdsCreative, creative_id)


async def list_creatives(session: AsyncSession, campaign_id: uuid.UUID) -> Sequence[AdsCreative]:
    query = select(AdsCreative).where(AdsCreative.campaign_id == campaign_id).order_by(AdsCreative.created_at)
    return (await session.scalars(query)).all()


async def list_storage_keys(
    session: AsyncSession, *, advertiser_id: uuid.UUID | None = None, campaign_id: uuid.UUID | None = None
) -> list[str]:
    """The stored files of an advertiser's or a campaign's creatives (to delete with them)."""
    query = select(AdsCreative.storage_key, AdsCreative.variants)
    if campaign_id is not None:
        query = query.where(AdsCreative.campaign_id == campaign_id)
    if advertiser_id is not None:
        query = query.join(AdsCampaign, AdsCampaign.id == AdsCreative.campaign_id).where(
            AdsCampaign.advertiser_id == advertiser_id
        )
    return [
        key for original, variants in await session.execute(query) for key in stored_keys(original, variants)
    ]


def stored_keys(original: str | None, variants: dict[str, Any] | None) -> list[str]:
    """Every stored file of a creative: its upload and what was made of it (image variants, HTML5 files)."""
    found = [original] if original is not None else []
    return found + [str(key) for key in (variants or {}).get("keys", [])]


async def clear_house_creatives(session: AsyncSession, creative_ids: Collection[uuid.UUID]) -> None:
    """Zones whose house creative is one of these stop naming it (it is being deleted)."""
    if creative_ids:
        await session.execute(
            update(AdsZone)
            .where(AdsZone.house_creative_id.in_(list(creative_ids)))
            .values(house_creative_id=None)
            .execution_options(synchronize_session=False)
        )


async def creative_ids_of(
    session: AsyncSession, *, advertiser_id: uuid.UUID | None = None, campaign_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    query = select(AdsCreative.id)
    if campaign_id is not None:
        query = query.where(AdsCreative.campaign_id == campaign_id)
    if advertiser_id is not None:
        query = query.join(AdsCampaign, AdsCampaign.id == AdsCreative.campaign_id).where(
            AdsCampaign.advertiser_id == advertiser_id
        )
    return list(await session.scalars(query))


async def delete_row(session: AsyncSession, row: object) -> None:
    await session.delete(row)
    await session.flush()


async def campaign_stats(
    session: AsyncSession, campaign_id: uuid.UUID, first_hour: int, last_hour: int
) -> list[tuple[int, ...]]:
    """(hour, served, viewable, clicks, spend_micros, conversions, revenue_micros) of a campaign per hour in
    [first_hour, last_hour]."""
    rows = await session.execute(
        select(
            AdsStatsHourly.hour,
            func.sum(AdsStatsHourly.served),
            func.sum(AdsStatsHourly.viewable),
            func.sum(AdsStatsHourly.clicks),
            func.sum(AdsStatsHourly.spend_micros),
            func.sum(AdsStatsHourly.conversions),
            func.sum(AdsStatsHourly.revenue_micros),
        )
        .where(
            AdsStatsHourly.campaign_id == campaign_id,
            AdsStatsHourly.hour >= first_hour,
            AdsStatsHourly.hour <= last_hour,
        )
        .group_by(AdsStatsHourly.hour)
        .order_by(AdsStatsHourly.hour)
    )
    return [tuple(int(value or 0) for value in row) for row in rows]


async def campaign_spend(session: AsyncSession, campaign_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """All-time spend (micros) of these campaigns, from the hourly stats."""
    if not campaign_ids:
        return {}
    rows = await session.execute(
        select(AdsStatsHourly.campaign_id, func.sum(AdsStatsHourly.spend_micros))
        .where(AdsStatsHourly.campaign_id.in_(campaign_ids))
        .group_by(AdsStatsHourly.campaign_id)
    )
    return {campaign_id: int(total or 0) for campaign_id, total in rows}
