"""API views of the ads rows."""

from __future__ import annotations

import uuid

from pentad.apps.ads.access import Access
from pentad.apps.ads.models import AdsAdvertiser, AdsCampaign, AdsCreative, AdsSite, AdsZone
from pentad.apps.ads.permissions import CAMPAIGNS_MANAGE
from pentad.apps.ads.schemas import Advertiser, Campaign, Creative, Site, Zone
from pentad.apps.ads.targeting import Targeting
from pentad.core.context import AppContext
from pentad.core.crypto import column_context


def contact_context(advertiser_id: uuid.UUID) -> str:
    return column_context("ads_advertisers", "contact_email", advertiser_id)


def advertiser_view(platform: AppContext, access: Access[AdsAdvertiser]) -> Advertiser:
    row = access.row
    contact = None
    if row.contact_email is not None and CAMPAIGNS_MANAGE.key in access.permissions:
        contact = platform.keyring.decrypt(row.contact_email, context=contact_context(row.id))
    return Advertiser(
        id=row.id,
        name=row.name,
        contact_email=contact,
        owner_id=row.owner_id,
        role=access.role,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def site_view(access: Access[AdsSite]) -> Site:
    row = access.row
    return Site(
        id=row.id,
        name=row.name,
        domain=row.domain,
        timezone=row.timezone,
        owner_id=row.owner_id,
        role=access.role,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def zone_view(row: AdsZone) -> Zone:
    return Zone.model_validate(row, from_attributes=True)


def campaign_view(row: AdsCampaign, zone_ids: list[uuid.UUID]) -> Campaign:
    return Campaign(
        id=row.id,
        advertiser_id=row.advertiser_id,
        name=row.name,
        status=row.status,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        pricing=row.pricing,
        rate_micros=row.rate_micros,
        budget_micros=row.budget_micros,
        daily_budget_micros=row.daily_budget_micros,
        daily_impressions=row.daily_impressions,
        daily_clicks=row.daily_clicks,
        frequency_cap=row.frequency_cap,
        pacing=row.pacing,
        priority=row.priority,
        weight=row.weight,
        targeting=Targeting.model_validate(row.targeting),
        zone_ids=zone_ids,
        conversion_goals=row.conversion_goals or [],
        click_window=row.click_window,
        view_window=row.view_window,
        exhausted_at=row.exhausted_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def creative_view(row: AdsCreative, image_url: str | None) -> Creative:
    return Creative(
        id=row.id,
        campaign_id=row.campaign_id,
        kind=row.kind,
        name=row.name,
        status=row.status,
        destination_url=row.destination_url,
        width=row.width,
        height=row.height,
        alt_text=row.alt_text,
        headline=row.headline,
        body=row.body,
        content_type=row.content_type,
        byte_size=row.byte_size,
        image_url=image_url,
        variants={key: value for key, value in (row.variants or {}).items() if key != "keys"},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
