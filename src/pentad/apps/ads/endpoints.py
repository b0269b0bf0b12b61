"""The ads management API (/api/ads): advertisers, campaigns, creatives, sites and zones.

Every route needs a user holding `ads.use`; what they may see and change is decided per advertiser and
site (access.py). Serving (decide, beacon) is in serving.py, the click redirect in clicks.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile, status

from pentad.apps.ads import reports, repository, schemas
from pentad.apps.ads.actions import advertisers, campaigns, creatives, sharing, sites
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.dependencies import ads_context
from pentad.apps.ads.models import AdsCampaign, AdsCreative
from pentad.apps.ads.permissions import ADVERTISER_RESOURCE, REPORTS_READ, SITE_RESOURCE
from pentad.apps.ads.views import advertiser_view, campaign_view, creative_view, site_view, zone_view
from pentad.core.errors import BadRequest, problem_responses
from pentad.core.policy import route_policy

router = APIRouter(
    prefix="/api/ads", tags=["ads"], responses=problem_responses(400, 401, 403, 404, 409, 422, 429)
)

Ads = Annotated[AdsContext, Depends(ads_context)]
AdvertiserId = Annotated[uuid.UUID, Path(description="Advertiser id.")]
CampaignId = Annotated[uuid.UUID, Path(description="Campaign id.")]
CreativeId = Annotated[uuid.UUID, Path(description="Creative id.")]
SiteId = Annotated[uuid.UUID, Path(description="Site id.")]
ZoneId = Annotated[uuid.UUID, Path(description="Zone id.")]
UserId = Annotated[uuid.UUID, Path(description="The account's id.")]
Role = Annotated[schemas.SharedRole, Path(description="owner or viewer.")]
NO_CONTENT = status.HTTP_204_NO_CONTENT


async def _campaign_views(ads: AdsContext, rows: list[AdsCampaign]) -> list[schemas.Campaign]:
    zones = await repository.placement_zone_ids(ads.session, [row.id for row in rows])
    return [campaign_view(row, zones[row.id]) for row in rows]


async def _creative_view(ads: AdsContext, row: AdsCreative) -> schemas.Creative:
    return creative_view(row, await creatives.image_url(ads, row))


# ---------------------------------------------------------------- advertisers


@router.get("/advertisers", summary="The advertisers you own (all of them for ads.admin)")
async def list_advertisers(ads: Ads) -> list[schemas.Advertiser]:
    return [advertiser_view(ads.platform, access) for access in await advertisers.list_advertisers(ads)]


@router.post("/advertisers", status_code=status.HTTP_201_CREATED, summary="Create an advertiser you own")
async def create_advertiser(ads: Ads, data: schemas.AdvertiserCreate) -> schemas.Advertiser:
    return advertiser_view(ads.platform, await advertisers.do_create_advertiser(ads, data))


@router.get("/advertisers/{advertiser_id}", summary="An advertiser (owners and viewers)")
async def get_advertiser(ads: Ads, advertiser_id: AdvertiserId) -> schemas.Advertiser:
    return advertiser_view(ads.platform, await ads.advertiser(advertiser_id))


@router.patch("/advertisers/{advertiser_id}", summary="Rename an advertiser or change its contact")
async def update_advertiser(
    ads: Ads, advertiser_id: AdvertiserId, data: schemas.AdvertiserUpdate
) -> schemas.Advertiser:
    return advertiser_view(ads.platform, await advertisers.do_update_advertiser(ads, advertiser_id, data))


@router.delete(
    "/advertisers/{advertiser_id}", status_code=NO_CONTENT, summary="Delete an advertiser and its campaigns"
)
async def delete_advertiser(ads: Ads, advertiser_id: AdvertiserId) -> Response:
    await advertisers.do_delete_advertiser(ads, advertiser_id)
    return Response(status_code=NO_CONTENT)


# ---------------------------------------------------------------- campaigns


@router.get("/advertisers/{advertiser_id}/campaigns", summary="An advertiser's campaigns")
async def list_campaigns(ads: Ads, advertiser_id: AdvertiserId) -> list[schemas.Campaign]:
    return await _campaign_views(ads, await campaigns.list_campaigns(ads, advertiser_id))


@router.post(
    "/advertisers/{advertiser_id}/campaigns",
    status_code=status.HTTP_201_CREATED,
    summary="Create a campaign",
    description="Placing it in zones (`zone_ids`) needs the right to manage those zones' sites as well.",
)
async def create_campaign(
    ads: Ads, advertiser_id: AdvertiserId, data: schemas.CampaignBody
) -> schemas.Campaign:
    campaign = await campaigns.do_create_campaign(ads, advertiser_id, data)
    return (await _campaign_views(ads, [campaign]))[0]


@router.get("/campaigns/{campaign_id}", summary="A campaign")
async def get_campaign(ads: Ads, campaign_id: CampaignId) -> schemas.Campaign:
    campaign, _ = await campaigns.campaign_access(ads, campaign_id)
    return (await _campaign_views(ads, [campaign]))[0]


@router.put("/campaigns/{campaign_id}", summary="Replace a campaign's settings, targeting and zones")
async def replace_campaign(ads: Ads, campaign_id: CampaignId, data: schemas.CampaignBody) -> schemas.Campaign:
    campaign = await campaigns.do_replace_campaign(ads, campaign_id, data)
    return (await _campaign_views(ads, [campaign]))[0]


@router.delete("/campaigns/{campaign_id}", status_code=NO_CONTENT, summary="Delete a campaign")
async def delete_campaign(ads: Ads, campaign_id: CampaignId) -> Response:
    await campaigns.do_delete_campaign(ads, campaign_id)
    return Response(status_code=NO_CONTENT)


@router.get(
    "/campaigns/{campaign_id}/stats",
    summary="A campaign's delivery: served, viewable, clicks, CTR, spend",
    description="Hourly buckets (UTC) between `since` and `until` (default: the last 7 days). Anyone who may "
    "read the advertiser's reports (its owners and viewers, ads.admin).",
)
async def campaign_stats(
    ads: Ads,
    campaign_id: CampaignId,
    since: Annotated[datetime | None, Query(description="From this hour on (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Up to this hour (ISO 8601).")] = None,
) -> schemas.CampaignStats:
    campaign, access = await campaigns.campaign_access(ads, campaign_id)
    access.require(REPORTS_READ)
    end = _aware(until) if until is not None else datetime.now(UTC)
    try:
        start = _aware(since) if since is not None else end - timedelta(days=7)
    except OverflowError:
        raise BadRequest("`until` is out of range.", code="invalid_range") from None
    if start > end or end - start > timedelta(days=400):
        raise BadRequest("`since` must come before `until`, at most 400 days apart.", code="invalid_range")
    rows = await repository.campaign_stats(
        ads.session, campaign.id, int(start.timestamp()) // 3600, int(end.timestamp()) // 3600
    )
    served, viewable, clicks, spend, conversions, revenue = (
        sum(row[index] for row in rows) for index in range(1, 7)
    )
    budget_spent = None
    if campaign.budget_micros:
        total = await repository.campaign_spend(ads.session, [campaign.id])
        budget_spent = total.get(campaign.id, 0) / campaign.budget_micros
    return schemas.CampaignStats(
        campaign_id=campaign.id, pricing=campaign.pricing, since=start, until=end, served=served,
        viewable=viewable, clicks=clicks, spend_micros=spend, conversions=conversions, revenue_micros=revenue,
        ctr=clicks / viewable if viewable else 0.0, viewability=viewable / served if served else 0.0,
        conversion_rate=conversions / clicks if clicks else 0.0, budget_spent=budget_spent,
        hours=[
            schemas.StatsHour(
                hour=datetime.fromtimestamp(hour * 3600, UTC), served=s, viewable=v, clicks=c, spend_micros=m,
                conversions=n, revenue_micros=r,
            )
            for hour, s, v, c, m, n, r in rows
        ],
    )  # fmt: skip


ReportBy = Annotated[reports.By, Query(description="`page` (the path the ad was on) or `source`.")]
Since = Annotated[date | None, Query(description="First day (default: 29 days before `until`).")]
Until = Annotated[date | None, Query(description="Last day, inclusive (default: today).")]
REPORT_DESCRIPTION = (
    "Served, viewable, clicks, CTR, spend, eCPM, conversions, conversion rate and conversion revenue per "
    "page or traffic source over whole days (at most 366), with a daily series."
)


@router.get(
    "/sites/{site_id}/report",
    summary="A site's ads per page or source, joined with its analytics traffic",
    description=REPORT_DESCRIPTION + " Joined with analytics (`analytics.page_traffic`): pageviews, visitors "
    "and page RPM; when analytics is not enabled those columns are left out and `analytics_note` says why. "
    "For the site's owners and viewers (and ads.admin).",
    response_model_exclude_unset=True,
)
async def site_report(
    ads: Ads, site_id: SiteId, by: ReportBy = "page", since: Since = None, until: Until = None
) -> reports.Report:
    return await reports.site_report(ads, site_id, by, since, until)


@router.get(
    "/sites/{site_id}/report.csv",
    summary="A site's report as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per page or source."}},
)
async def site_report_csv(
    ads: Ads, site_id: SiteId, by: ReportBy = "page", since: Since = None, until: Until = None
) -> Response:
    return reports.csv_response(await reports.site_report(ads, site_id, by, since, until), "ads-site")


@router.get(
    "/campaigns/{campaign_id}/report",
    summary="A campaign's delivery and conversions per page or source",
    description=REPORT_DESCRIPTION + " Days are UTC; no analytics columns (the publishers' traffic is "
    "theirs). For those who read the advertiser's reports.",
    response_model_exclude_unset=True,
)
async def campaign_report(
    ads: Ads, campaign_id: CampaignId, by: ReportBy = "page", since: Since = None, until: Until = None
) -> reports.Report:
    return await reports.campaign_report(ads, campaign_id, by, since, until)


@router.get(
    "/campaigns/{campaign_id}/report.csv",
    summary="A campaign's report as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per page or source."}},
)
async def campaign_report_csv(
    ads: Ads, campaign_id: CampaignId, by: ReportBy = "page", since: Since = None, until: Until = None
) -> Response:
    return reports.csv_response(
        await reports.campaign_report(ads, campaign_id, by, since, until), "ads-campaign"
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- creatives


@router.get("/campaigns/{campaign_id}/creatives", summary="A campaign's creatives")
async def list_creatives(ads: Ads, campaign_id: CampaignId) -> list[schemas.Creative]:
    return [await _creative_view(ads, row) for row in await creatives.list_creatives(ads, campaign_id)]


@router.post(
    "/campaigns/{campaign_id}/creatives/text", status_code=status.HTTP_201_CREATED, summary="Add a text ad"
)
async def create_text_creative(
    ads: Ads, campaign_id: CampaignId, data: schemas.TextCreativeCreate
) -> schemas.Creative:
    return await _creative_view(ads, await creatives.do_create_text_creative(ads, campaign_id, data))


@router.post(
    "/campaigns/{campaign_id}/creatives/image",
    status_code=status.HTTP_201_CREATED,
    summary="Upload an image ad",
    description="Multipart form: `file` (PNG, JPEG, GIF or WebP, at most PENTAD_ADS__MAX_CREATIVE_BYTES, "
    "else 413), `name`, `destination_url` (http or https), optional `alt_text` and `status`.",
    responses=problem_responses(413),
)
@route_policy(body_limit="upload")
async def create_image_creative(
    ads: Ads,
    campaign_id: CampaignId,
    data: Annotated[schemas.ImageCreativeForm, Form()],
    file: Annotated[UploadFile, File(description="The image.")],
) -> schemas.Creative:
    return await _creative_view(ads, await creatives.do_upload_image_creative(ads, campaign_id, data, file))


@router.post(
    "/campaigns/{campaign_id}/creatives/html5",
    status_code=status.HTTP_201_CREATED,
    summary="Upload an HTML5 ad (a zip, or one HTML file)",
    description="Multipart form: `file` (a zip with an index.html at its top, or one HTML file; at most "
    "PENTAD_ADS__MAX_HTML5_BYTES as sent and unpacked, else 413; no paths outside the archive, links or "
    "unknown file types, else 400 `invalid_html5`), `name`, `destination_url`, `width`, `height`, optional "
    "`alt_text` and `status`. Served sandboxed at /ads/h/<id>/index.html; the creative opens its "
    "`clickTAG` query parameter (the signed click URL) on a click.",
    responses=problem_responses(413),
)
@route_policy(body_limit="upload")
async def create_html5_creative(
    ads: Ads,
    campaign_id: CampaignId,
    data: Annotated[schemas.Html5CreativeForm, Form()],
    file: Annotated[UploadFile, File(description="The zip or HTML file.")],
) -> schemas.Creative:
    return await _creative_view(ads, await creatives.do_upload_html5_creative(ads, campaign_id, data, file))


@router.get("/creatives/{creative_id}", summary="A creative")
async def get_creative(ads: Ads, creative_id: CreativeId) -> schemas.Creative:
    creative, _ = await creatives.creative_access(ads, creative_id)
    return await _creative_view(ads, creative)


@router.patch("/creatives/{creative_id}", summary="Change a creative's texts, destination or status")
async def update_creative(
    ads: Ads, creative_id: CreativeId, data: schemas.CreativeUpdate
) -> schemas.Creative:
    return await _creative_view(ads, await creatives.do_update_creative(ads, creative_id, data))


@router.delete(
    "/creatives/{creative_id}", status_code=NO_CONTENT, summary="Delete a creative (and its image)"
)
async def delete_creative(ads: Ads, creative_id: CreativeId) -> Response:
    await creatives.do_delete_creative(ads, creative_id)
    return Response(status_code=NO_CONTENT)


# ---------------------------------------------------------------- sites and zones


@router.get("/sites", summary="The sites you own (all of them for ads.admin)")
async def list_sites(ads: Ads) -> list[schemas.Site]:
    return [site_view(access) for access in await sites.list_sites(ads)]


@router.post("/sites", status_code=status.HTTP_201_CREATED, summary="Add a site you own")
async def create_site(ads: Ads, data: schemas.SiteCreate) -> schemas.Site:
    return site_view(await sites.do_create_site(ads, data))


@router.get("/sites/{site_id}", summary="A site (owners and viewers)")
async def get_site(ads: Ads, site_id: SiteId) -> schemas.Site:
    return site_view(await ads.site(site_id))


@router.patch("/sites/{site_id}", summary="Rename a site, change its domain or timezone")
async def update_site(ads: Ads, site_id: SiteId, data: schemas.SiteUpdate) -> schemas.Site:
    return site_view(await sites.do_update_site(ads, site_id, data))


@router.delete("/sites/{site_id}", status_code=NO_CONTENT, summary="Delete a site and its zones")
async def delete_site(ads: Ads, site_id: SiteId) -> Response:
    await sites.do_delete_site(ads, site_id)
    return Response(status_code=NO_CONTENT)


@router.get("/sites/{site_id}/zones", summary="A site's zones")
async def list_zones(ads: Ads, site_id: SiteId) -> list[schemas.Zone]:
    return [zone_view(zone) for zone in await sites.list_zones(ads, site_id)]


@router.post("/sites/{site_id}/zones", status_code=status.HTTP_201_CREATED, summary="Add a zone to a site")
async def create_zone(ads: Ads, site_id: SiteId, data: schemas.ZoneBody) -> schemas.Zone:
    return zone_view(await sites.do_create_zone(ads, site_id, data))


@router.get("/zones/{zone_id}", summary="A zone")
async def get_zone(ads: Ads, zone_id: ZoneId) -> schemas.Zone:
    zone, _ = await sites.zone_access(ads, zone_id)
    return zone_view(zone)


@router.put("/zones/{zone_id}", summary="Replace a zone")
async def replace_zone(ads: Ads, zone_id: ZoneId, data: schemas.ZoneBody) -> schemas.Zone:
    return zone_view(await sites.do_replace_zone(ads, zone_id, data))


@router.delete("/zones/{zone_id}", status_code=NO_CONTENT, summary="Delete a zone")
async def delete_zone(ads: Ads, zone_id: ZoneId) -> Response:
    await sites.do_delete_zone(ads, zone_id)
    return Response(status_code=NO_CONTENT)


# ---------------------------------------------------------------- sharing (core grants)


@router.get("/advertisers/{advertiser_id}/grants", summary="Who an advertiser is shared with (its managers)")
async def list_advertiser_grants(ads: Ads, advertiser_id: AdvertiserId) -> list[schemas.Holder]:
    return await sharing.list_holders(ads, ADVERTISER_RESOURCE, advertiser_id)


@router.put(
    "/advertisers/{advertiser_id}/grants/{user_id}/{role}",
    status_code=NO_CONTENT,
    summary="Share an advertiser: give an account the owner or viewer role",
)
async def grant_advertiser(ads: Ads, advertiser_id: AdvertiserId, user_id: UserId, role: Role) -> Response:
    await sharing.do_grant(ads, ADVERTISER_RESOURCE, advertiser_id, user_id, role)
    return Response(status_code=NO_CONTENT)


@router.delete(
    "/advertisers/{advertiser_id}/grants/{user_id}/{role}", status_code=NO_CONTENT, summary="Take a role back"
)
async def revoke_advertiser(ads: Ads, advertiser_id: AdvertiserId, user_id: UserId, role: Role) -> Response:
    await sharing.do_revoke(ads, ADVERTISER_RESOURCE, advertiser_id, user_id, role)
    return Response(status_code=NO_CONTENT)


@router.get("/sites/{site_id}/grants", summary="Who a site is shared with (its managers)")
async def list_site_grants(ads: Ads, site_id: SiteId) -> list[schemas.Holder]:
    return await sharing.list_holders(ads, SITE_RESOURCE, site_id)


@router.put(
    "/sites/{site_id}/grants/{user_id}/{role}",
    status_code=NO_CONTENT,
    summary="Share a site: give an account the owner or viewer role",
)
async def grant_site(ads: Ads, site_id: SiteId, user_id: UserId, role: Role) -> Response:
    await sharing.do_grant(ads, SITE_RESOURCE, site_id, user_id, role)
    return Response(status_code=NO_CONTENT)


@router.delete("/sites/{site_id}/grants/{user_id}/{role}", status_code=NO_CONTENT, summary="Take a role back")
async def revoke_site(ads: Ads, site_id: SiteId, user_id: UserId, role: Role) -> Response:
    await sharing.do_revoke(ads, SITE_RESOURCE, site_id, user_id, role)
    return Response(status_code=NO_CONTENT)
