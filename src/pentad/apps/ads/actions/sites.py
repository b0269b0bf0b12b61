"""Sites and their zones: where ads show."""

from __future__ import annotations

import uuid

from pentad.apps.ads import repository
from pentad.apps.ads.access import Access
from pentad.apps.ads.actions.context import AdsContext, shared_ids
from pentad.apps.ads.exceptions import (
    AdvertiserNotFound,
    CreativeNotFound,
    DomainTaken,
    SiteNotFound,
    ZoneNotFound,
)
from pentad.apps.ads.models import AdsSite, AdsZone
from pentad.apps.ads.permissions import (
    ADS_ADMIN,
    CAMPAIGNS_MANAGE,
    INVENTORY_MANAGE,
    SITE_RESOURCE,
    SITE_ROLES,
)
from pentad.apps.ads.schemas import SiteCreate, SiteUpdate, ZoneBody
from pentad.core import audit
from pentad.core.auth.grants import delete_resource_grants


async def check_domain_free(ads: AdsContext, domain: str, site_id: uuid.UUID | None = None) -> None:
    if await repository.site_domain_taken(ads.session, domain, other_than=site_id):
        raise DomainTaken()


async def do_create_site(
    ads: AdsContext, data: SiteCreate, *, owner_id: uuid.UUID | None = None
) -> Access[AdsSite]:
    """A new site owned by the caller (or by `owner_id`, for the command line)."""
    await check_domain_free(ads, data.domain)
    site = AdsSite(
        name=data.name, domain=data.domain, timezone=data.timezone, owner_id=owner_id or ads.principal.id
    )
    ads.session.add(site)
    await ads.session.flush()
    audit.record(
        ads.session, ads.audit_actor, "ads.site.create", resource_type=SITE_RESOURCE, resource_id=site.id,
        domain=site.domain,
    )  # fmt: skip
    return Access(site, frozenset(p.key for p in SITE_ROLES["owner"]), "owner")


async def list_sites(ads: AdsContext) -> list[Access[AdsSite]]:
    """The sites the caller owns or reads through a grant (every one for ads.admin)."""
    owner = None if ads.principal.has(ADS_ADMIN) else ads.principal.id
    shared = await shared_ids(ads, SITE_RESOURCE) if owner is not None else []
    rows = await repository.list_sites(ads.session, owner_id=owner, ids=shared)
    found = []
    for row in rows:
        try:
            found.append(await ads.site(row.id))
        except SiteNotFound:
            continue  # an API key whose scopes leave out reading it
    return found


async def do_update_site(ads: AdsContext, site_id: uuid.UUID, data: SiteUpdate) -> Access[AdsSite]:
    access = await ads.site(site_id)
    access.require(INVENTORY_MANAGE)
    site = access.row
    if data.domain is not None and data.domain != site.domain:
        await check_domain_free(ads, data.domain, site.id)
        site.domain = data.domain
    if data.name is not None:
        site.name = data.name
    if data.timezone is not None:
        site.timezone = data.timezone
    await ads.session.flush()
    audit.record(
        ads.session, ads.audit_actor, "ads.site.update", resource_type=SITE_RESOURCE, resource_id=site.id,
        fields=sorted(data.model_fields_set),
    )  # fmt: skip
    return access


async def do_delete_site(ads: AdsContext, site_id: uuid.UUID) -> None:
    """The site with its zones (campaigns placed there lose the placement, nothing else)."""
    access = await ads.site(site_id)
    access.require(INVENTORY_MANAGE)
    await repository.delete_row(ads.session, access.row)
    await delete_resource_grants(ads.session, ads.platform, SITE_RESOURCE, site_id, actor=ads.audit_actor)
    audit.record(
        ads.session, ads.audit_actor, "ads.site.delete", resource_type=SITE_RESOURCE, resource_id=site_id
    )


async def check_house_creative(ads: AdsContext, creative_id: uuid.UUID | None) -> None:
    """A zone's house creative must be one the caller manages (it shows the advertiser's ad for free)."""
    if creative_id is None:
        return
    creative = await repository.get_creative(ads.session, creative_id)
    campaign = await repository.get_campaign(ads.session, creative.campaign_id) if creative else None
    if campaign is None:
        raise CreativeNotFound()
    try:
        access = await ads.advertiser(campaign.advertiser_id)
    except AdvertiserNotFound:
        raise CreativeNotFound() from None
    access.require(CAMPAIGNS_MANAGE)


async def zone_access(ads: AdsContext, zone_id: uuid.UUID) -> tuple[AdsZone, Access[AdsSite]]:
    """A zone and the caller's standing on its site; ZoneNotFound if they may not read the site."""
    zone = await repository.get_zone(ads.session, zone_id)
    if zone is None:
        raise ZoneNotFound()
    try:
        return zone, await ads.site(zone.site_id)
    except SiteNotFound:
        raise ZoneNotFound() from None


async def list_zones(ads: AdsContext, site_id: uuid.UUID) -> list[AdsZone]:
    await ads.site(site_id)
    return list(await repository.list_zones(ads.session, site_id))


def _apply_zone(zone: AdsZone, data: ZoneBody) -> None:
    zone.name = data.name
    zone.width = data.width
    zone.height = data.height
    zone.path_patterns = list(data.path_patterns)
    zone.mode = data.mode
    zone.gpt_ad_unit = data.gpt_ad_unit
    zone.house_creative_id = data.house_creative_id


async def do_create_zone(ads: AdsContext, site_id: uuid.UUID, data: ZoneBody) -> AdsZone:
    access = await ads.site(site_id)
    access.require(INVENTORY_MANAGE)
    await check_house_creative(ads, data.house_creative_id)
    zone = AdsZone(site_id=site_id)
    _apply_zone(zone, data)
    ads.session.add(zone)
    await ads.session.flush()
    audit.record(
        ads.session, ads.audit_actor, "ads.zone.create", resource_type=SITE_RESOURCE, resource_id=site_id,
        zone_id=str(zone.id),
    )  # fmt: skip
    return zone


async def do_replace_zone(ads: AdsContext, zone_id: uuid.UUID, data: ZoneBody) -> AdsZone:
    zone, access = await zone_access(ads, zone_id)
    access.require(INVENTORY_MANAGE)
    if data.house_creative_id != zone.house_creative_id:
        await check_house_creative(ads, data.house_creative_id)
    _apply_zone(zone, data)
    await ads.session.flush()
    audit.record(
        ads.session, ads.audit_actor, "ads.zone.update", resource_type=SITE_RESOURCE,
        resource_id=zone.site_id,
        zone_id=str(zone.id),
    )  # fmt: skip
    return zone


async def do_delete_zone(ads: AdsContext, zone_id: uuid.UUID) -> None:
    zone, access = await zone_access(ads, zone_id)
    access.require(INVENTORY_MANAGE)
    await repository.delete_row(ads.session, zone)
    audit.record(
        ads.session, ads.audit_actor, "ads.zone.delete", resource_type=SITE_RESOURCE,
        resource_id=zone.site_id,
        zone_id=str(zone_id),
    )  # fmt: skip
