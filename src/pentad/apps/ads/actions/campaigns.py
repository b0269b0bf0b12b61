"""Campaigns: what an advertiser buys, and the zones it runs in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pentad.apps.ads import repository
from pentad.apps.ads.access import Access
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.exceptions import AdvertiserNotFound, CampaignNotFound, SiteNotFound, ZoneNotFound
from pentad.apps.ads.models import AdsAdvertiser, AdsCampaign
from pentad.apps.ads.permissions import ADVERTISER_RESOURCE, CAMPAIGNS_MANAGE, INVENTORY_MANAGE
from pentad.apps.ads.schemas import CampaignBody
from pentad.core import audit


async def campaign_access(
    ads: AdsContext, campaign_id: uuid.UUID
) -> tuple[AdsCampaign, Access[AdsAdvertiser]]:
    """A campaign and the caller's standing on its advertiser; CampaignNotFound if they may not read it."""
    campaign = await repository.get_campaign(ads.session, campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    try:
        return campaign, await ads.advertiser(campaign.advertiser_id)
    except AdvertiserNotFound:
        raise CampaignNotFound() from None


async def check_zones(ads: AdsContext, zone_ids: Sequence[uuid.UUID]) -> None:
    """Placing a campaign in a zone needs the right to manage the zone's site too."""
    zones = await repository.get_zones(ads.session, zone_ids)
    for zone_id in zone_ids:
        zone = zones.get(zone_id)
        if zone is None:
            raise ZoneNotFound()
        try:
            access = await ads.site(zone.site_id)
        except SiteNotFound:
            raise ZoneNotFound() from None
        access.require(INVENTORY_MANAGE)


def _apply(campaign: AdsCampaign, data: CampaignBody) -> None:
    if campaign.exhausted_at is not None and data.budget_micros != campaign.budget_micros:
        campaign.exhausted_at = None  # a new budget: `ads.budgets` checks it again
    for field in (
        "name", "status", "starts_at", "ends_at", "pricing", "rate_micros", "budget_micros",
        "daily_budget_micros", "daily_impressions", "daily_clicks", "frequency_cap", "pacing", "priority",
        "weight", "click_window", "view_window",
    ):  # fmt: skip
        setattr(campaign, field, getattr(data, field))
    campaign.conversion_goals = list(dict.fromkeys(data.conversion_goals))
    campaign.targeting = data.targeting.model_dump(exclude_defaults=True)


async def do_create_campaign(ads: AdsContext, advertiser_id: uuid.UUID, data: CampaignBody) -> AdsCampaign:
    access = await ads.advertiser(advertiser_id)
    access.require(CAMPAIGNS_MANAGE)
    await check_zones(ads, data.zone_ids)
    campaign = AdsCampaign(advertiser_id=advertiser_id)
    _apply(campaign, data)
    ads.session.add(campaign)
    await ads.session.flush()
    await repository.replace_placements(ads.session, campaign.id, data.zone_ids)
    audit.record(
        ads.session, ads.audit_actor, "ads.campaign.create", resource_type=ADVERTISER_RESOURCE,
        resource_id=advertiser_id, campaign_id=str(campaign.id),
    )  # fmt: skip
    return campaign


async def list_campaigns(ads: AdsContext, advertiser_id: uuid.UUID) -> list[AdsCampaign]:
    await ads.advertiser(advertiser_id)
    return list(await repository.list_campaigns(ads.session, advertiser_id))


async def do_replace_campaign(ads: AdsContext, campaign_id: uuid.UUID, data: CampaignBody) -> AdsCampaign:
    campaign, access = await campaign_access(ads, campaign_id)
    access.require(CAMPAIGNS_MANAGE)
    current = (await repository.placement_zone_ids(ads.session, [campaign_id]))[campaign_id]
    await check_zones(ads, [zone_id for zone_id in data.zone_ids if zone_id not in current])
    _apply(campaign, data)
    await ads.session.flush()
    await repository.replace_placements(ads.session, campaign.id, data.zone_ids)
    audit.record(
        ads.session, ads.audit_actor, "ads.campaign.update", resource_type=ADVERTISER_RESOURCE,
        resource_id=campaign.advertiser_id, campaign_id=str(campaign.id),
    )  # fmt: skip
    return campaign


async def do_delete_campaign(ads: AdsContext, campaign_id: uuid.UUID) -> None:
    campaign, access = await campaign_access(ads, campaign_id)
    access.require(CAMPAIGNS_MANAGE)
    keys = await repository.list_storage_keys(ads.session, campaign_id=campaign_id)
    await repository.clear_house_creatives(
        ads.session, await repository.creative_ids_of(ads.session, campaign_id=campaign_id)
    )
    await repository.delete_row(ads.session, campaign)
    audit.record(
        ads.session, ads.audit_actor, "ads.campaign.delete", resource_type=ADVERTISER_RESOURCE,
        resource_id=campaign.advertiser_id, campaign_id=str(campaign_id),
    )  # fmt: skip
    ads.delete_files_after_commit(keys)
