"""The ads web pages (/ads) for signed-in accounts holding `ads.use`: advertisers with their campaigns and
creatives, sites with their zones. Forms are validated by the API's own request models and run the same
actions as the API, so both refuse the same input.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.ads import repository, schemas
from pentad.apps.ads.actions import advertisers, campaigns, creatives, sites
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.delivery import reload_after_commit
from pentad.apps.ads.permissions import ADS_USE, CAMPAIGNS_MANAGE, INVENTORY_MANAGE
from pentad.apps.ads.views import advertiser_view, campaign_view, site_view
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy
from pentad.core.web.pages.kit import (
    TEMPLATES_DIR,
    FormField,
    InvalidForm,
    PageAccess,
    failure_context,
    parse_form,
    render_page,
    see_other,
)

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


templates.env.filters["when"] = _when
router = APIRouter(include_in_schema=False)

AdsUser = Annotated[Principal, Depends(PageAccess(ADS_USE))]
Session = Annotated[AsyncSession, Depends(db_session)]


def _context(request: Request, session: AsyncSession, principal: Principal) -> AdsContext:
    platform = get_platform(request)
    if request.method != "GET":
        reload_after_commit(session, platform)
    return AdsContext(session, platform, principal, request_actor(request, principal))


def _optional(value: str) -> str | None:
    return value.strip() or None


# ---------------------------------------------------------------- overview


async def _overview(request: Request, ads: AdsContext, **context: Any) -> Response:
    return render_page(
        request,
        "ads.html",
        ads.principal,
        renderer=templates,
        advertisers=[
            advertiser_view(ads.platform, access) for access in await advertisers.list_advertisers(ads)
        ],
        sites=[site_view(access) for access in await sites.list_sites(ads)],
        **context,
    )


@router.get("/ads")
async def overview(request: Request, principal: AdsUser, session: Session) -> Response:
    return await _overview(request, _context(request, session, principal))


@router.post("/ads/advertisers")
async def create_advertiser(
    request: Request,
    principal: AdsUser,
    session: Session,
    name: FormField = "",
    contact_email: FormField = "",
) -> Response:
    ads = _context(request, session, principal)
    try:
        data = parse_form(schemas.AdvertiserCreate, name=name, contact_email=_optional(contact_email))
        access = await advertisers.do_create_advertiser(ads, data)
    except AppError as exc:
        form = {"name": name, "contact_email": contact_email}
        return await _overview(request, ads, advertiser_form=form, **failure_context(exc))
    return see_other(f"/ads/advertisers/{access.row.id}")


@router.post("/ads/sites")
async def create_site(
    request: Request,
    principal: AdsUser,
    session: Session,
    name: FormField = "",
    domain: FormField = "",
    timezone: FormField = "UTC",
) -> Response:
    ads = _context(request, session, principal)
    try:
        data = parse_form(schemas.SiteCreate, name=name, domain=domain, timezone=timezone)
        access = await sites.do_create_site(ads, data)
    except AppError as exc:
        form = {"name": name, "domain": domain, "timezone": timezone}
        return await _overview(request, ads, site_form=form, **failure_context(exc))
    return see_other(f"/ads/sites/{access.row.id}")


# ---------------------------------------------------------------- an advertiser and its campaigns


async def _advertiser_page(
    request: Request, ads: AdsContext, advertiser_id: uuid.UUID, **context: Any
) -> Response:
    access = await ads.advertiser(advertiser_id)
    return render_page(
        request,
        "ads_advertiser.html",
        ads.principal,
        renderer=templates,
        advertiser=advertiser_view(ads.platform, access),
        campaigns=await campaigns.list_campaigns(ads, advertiser_id),
        can_manage=CAMPAIGNS_MANAGE.key in access.permissions,
        **context,
    )


@router.get("/ads/advertisers/{advertiser_id}")
async def advertiser_page(
    request: Request, advertiser_id: uuid.UUID, principal: AdsUser, session: Session
) -> Response:
    return await _advertiser_page(request, _context(request, session, principal), advertiser_id)


def _targeting(text: str) -> object:
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raise InvalidForm("Targeting: not valid JSON") from None


@router.post("/ads/advertisers/{advertiser_id}/campaigns")
async def create_campaign(
    request: Request,
    advertiser_id: uuid.UUID,
    principal: AdsUser,
    session: Session,
    name: FormField = "",
    starts_at: FormField = "",
    ends_at: FormField = "",
    pricing: FormField = "cpm",
    rate_micros: FormField = "",
    budget_micros: FormField = "",
    daily_budget_micros: FormField = "",
    pacing: FormField = "even",
    priority: FormField = "5",
    weight: FormField = "1",
    targeting: FormField = "",
) -> Response:
    ads = _context(request, session, principal)
    fields = {
        "name": name, "starts_at": starts_at, "ends_at": ends_at, "pricing": pricing,
        "rate_micros": rate_micros, "budget_micros": budget_micros,
        "daily_budget_micros": daily_budget_micros, "pacing": pacing,
        "priority": priority, "weight": weight, "targeting": targeting,
    }  # fmt: skip
    try:
        values: dict[str, object] = {key: _optional(value) for key, value in fields.items()}
        values["targeting"] = _targeting(targeting)
        data = parse_form(schemas.CampaignBody, **{k: v for k, v in values.items() if v is not None})
        campaign = await campaigns.do_create_campaign(ads, advertiser_id, data)
    except AppError as exc:
        return await _advertiser_page(request, ads, advertiser_id, form=fields, **failure_context(exc))
    return see_other(f"/ads/campaigns/{campaign.id}")


# ---------------------------------------------------------------- a campaign and its creatives


async def _campaign_page(
    request: Request, ads: AdsContext, campaign_id: uuid.UUID, **context: Any
) -> Response:
    campaign, access = await campaigns.campaign_access(ads, campaign_id)
    rows = await creatives.list_creatives(ads, campaign_id)
    return render_page(
        request,
        "ads_campaign.html",
        ads.principal,
        renderer=templates,
        campaign=campaign,
        advertiser=advertiser_view(ads.platform, access),
        creatives=[(row, await creatives.image_url(ads, row)) for row in rows],
        can_manage=CAMPAIGNS_MANAGE.key in access.permissions,
        **context,
    )


@router.post("/ads/campaigns/{campaign_id}/status")
async def set_campaign_status(
    request: Request, campaign_id: uuid.UUID, principal: AdsUser, session: Session, status: FormField = ""
) -> Response:
    """Pause, resume or archive a campaign, keeping everything else as it is."""
    ads = _context(request, session, principal)
    try:
        campaign, _ = await campaigns.campaign_access(ads, campaign_id)
        zone_ids = (await repository.placement_zone_ids(ads.session, [campaign.id]))[campaign.id]
        current = campaign_view(campaign, zone_ids).model_dump(
            exclude={"id", "advertiser_id", "created_at", "updated_at", "exhausted_at"}
        )
        data = parse_form(schemas.CampaignBody, **{**current, "status": status})
        await campaigns.do_replace_campaign(ads, campaign_id, data)
    except AppError as exc:
        return await _campaign_page(request, ads, campaign_id, **failure_context(exc))
    return see_other(f"/ads/campaigns/{campaign_id}")


@router.post("/ads/creatives/{creative_id}/delete")
async def delete_creative(
    request: Request, creative_id: uuid.UUID, principal: AdsUser, session: Session
) -> Response:
    ads = _context(request, session, principal)
    creative, _ = await creatives.creative_access(ads, creative_id)
    try:
        await creatives.do_delete_creative(ads, creative_id)
    except AppError as exc:
        return await _campaign_page(request, ads, creative.campaign_id, **failure_context(exc))
    return see_other(f"/ads/campaigns/{creative.campaign_id}")


@router.get("/ads/campaigns/{campaign_id}")
async def campaign_page(
    request: Request, campaign_id: uuid.UUID, principal: AdsUser, session: Session
) -> Response:
    return await _campaign_page(request, _context(request, session, principal), campaign_id)


@router.post("/ads/campaigns/{campaign_id}/creatives/text")
async def create_text_creative(
    request: Request,
    campaign_id: uuid.UUID,
    principal: AdsUser,
    session: Session,
    name: FormField = "",
    destination_url: FormField = "",
    headline: FormField = "",
    body: FormField = "",
) -> Response:
    ads = _context(request, session, principal)
    fields = {"name": name, "destination_url": destination_url, "headline": headline, "body": body}
    try:
        data = parse_form(schemas.TextCreativeCreate, **fields)
        await creatives.do_create_text_creative(ads, campaign_id, data)
    except AppError as exc:
        return await _campaign_page(request, ads, campaign_id, text_form=fields, **failure_context(exc))
    return see_other(f"/ads/campaigns/{campaign_id}")


@router.post("/ads/campaigns/{campaign_id}/creatives/image")
@route_policy(body_limit="upload")
async def create_image_creative(
    request: Request,
    campaign_id: uuid.UUID,
    principal: AdsUser,
    session: Session,
    file: Annotated[UploadFile, File()],
    name: FormField = "",
    destination_url: FormField = "",
    alt_text: Annotated[str, Form()] = "",
) -> Response:
    ads = _context(request, session, principal)
    fields = {"name": name, "destination_url": destination_url, "alt_text": alt_text}
    try:
        data = parse_form(schemas.ImageCreativeForm, **fields)
        await creatives.do_upload_image_creative(ads, campaign_id, data, file)
    except AppError as exc:
        return await _campaign_page(request, ads, campaign_id, image_form=fields, **failure_context(exc))
    return see_other(f"/ads/campaigns/{campaign_id}")


# ---------------------------------------------------------------- a site and its zones


async def _site_page(request: Request, ads: AdsContext, site_id: uuid.UUID, **context: Any) -> Response:
    access = await ads.site(site_id)
    return render_page(
        request,
        "ads_site.html",
        ads.principal,
        renderer=templates,
        site=site_view(access),
        zones=await sites.list_zones(ads, site_id),
        can_manage=INVENTORY_MANAGE.key in access.permissions,
        **context,
    )


@router.get("/ads/sites/{site_id}")
async def site_page(request: Request, site_id: uuid.UUID, principal: AdsUser, session: Session) -> Response:
    return await _site_page(request, _context(request, session, principal), site_id)


@router.post("/ads/zones/{zone_id}/delete")
async def delete_zone(request: Request, zone_id: uuid.UUID, principal: AdsUser, session: Session) -> Response:
    ads = _context(request, session, principal)
    zone, _ = await sites.zone_access(ads, zone_id)
    try:
        await sites.do_delete_zone(ads, zone_id)
    except AppError as exc:
        return await _site_page(request, ads, zone.site_id, **failure_context(exc))
    return see_other(f"/ads/sites/{zone.site_id}")


@router.post("/ads/sites/{site_id}/zones")
async def create_zone(
    request: Request,
    site_id: uuid.UUID,
    principal: AdsUser,
    session: Session,
    name: FormField = "",
    width: FormField = "",
    height: FormField = "",
    path_patterns: FormField = "",
    mode: FormField = "direct",
    gpt_ad_unit: FormField = "",
) -> Response:
    ads = _context(request, session, principal)
    fields = {
        "name": name, "width": width, "height": height, "path_patterns": path_patterns, "mode": mode,
        "gpt_ad_unit": gpt_ad_unit,
    }  # fmt: skip
    try:
        data = parse_form(
            schemas.ZoneBody,
            name=name,
            width=width,
            height=height,
            path_patterns=path_patterns.split(),
            mode=mode,
            gpt_ad_unit=_optional(gpt_ad_unit),
        )
        await sites.do_create_zone(ads, site_id, data)
    except AppError as exc:
        return await _site_page(request, ads, site_id, zone_form=fields, **failure_context(exc))
    return see_other(f"/ads/sites/{site_id}")
