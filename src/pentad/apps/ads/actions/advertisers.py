"""Advertisers: who buys."""

from __future__ import annotations

import uuid

from pentad.apps.ads import repository
from pentad.apps.ads.access import Access
from pentad.apps.ads.actions.context import AdsContext, shared_ids
from pentad.apps.ads.exceptions import AdvertiserNotFound
from pentad.apps.ads.models import AdsAdvertiser
from pentad.apps.ads.permissions import ADS_ADMIN, ADVERTISER_RESOURCE, ADVERTISER_ROLES, CAMPAIGNS_MANAGE
from pentad.apps.ads.schemas import AdvertiserCreate, AdvertiserUpdate
from pentad.apps.ads.views import contact_context
from pentad.core import audit
from pentad.core.auth.grants import delete_resource_grants
from pentad.core.db.base import uuid7


def _encrypted_contact(ads: AdsContext, advertiser_id: uuid.UUID, email: str | None) -> str | None:
    if email is None:
        return None
    return ads.platform.keyring.encrypt(email, context=contact_context(advertiser_id))


async def do_create_advertiser(
    ads: AdsContext, data: AdvertiserCreate, *, owner_id: uuid.UUID | None = None
) -> Access[AdsAdvertiser]:
    """A new advertiser owned by the caller (or by `owner_id`, for the command line)."""
    advertiser_id = uuid7()
    advertiser = AdsAdvertiser(
        id=advertiser_id,
        name=data.name,
        contact_email=_encrypted_contact(ads, advertiser_id, data.contact_email),
        owner_id=owner_id or ads.principal.id,
    )
    ads.session.add(advertiser)
    await ads.session.flush()
    audit.record(
        ads.session, ads.audit_actor, "ads.advertiser.create", resource_type=ADVERTISER_RESOURCE,
        resource_id=advertiser.id,
    )  # fmt: skip
    return Access(advertiser, frozenset(p.key for p in ADVERTISER_ROLES["owner"]), "owner")


async def list_advertisers(ads: AdsContext) -> list[Access[AdsAdvertiser]]:
    """The advertisers the caller owns or reads through a grant (every one for ads.admin)."""
    owner = None if ads.principal.has(ADS_ADMIN) else ads.principal.id
    shared = await shared_ids(ads, ADVERTISER_RESOURCE) if owner is not None else []
    rows = await repository.list_advertisers(ads.session, owner_id=owner, ids=shared)
    found = []
    for row in rows:
        try:
            found.append(await ads.advertiser(row.id))
        except AdvertiserNotFound:
            continue  # an API key whose scopes leave out reading it
    return found


async def do_update_advertiser(
    ads: AdsContext, advertiser_id: uuid.UUID, data: AdvertiserUpdate
) -> Access[AdsAdvertiser]:
    access = await ads.advertiser(advertiser_id)
    access.require(CAMPAIGNS_MANAGE)
    advertiser = access.row
    changed = data.model_fields_set
    if "name" in changed and data.name is not None:
        advertiser.name = data.name
    if "contact_email" in changed:
        advertiser.contact_email = _encrypted_contact(ads, advertiser.id, data.contact_email)
    await ads.session.flush()
    audit.record(
        ads.session, ads.audit_actor, "ads.advertiser.update", resource_type=ADVERTISER_RESOURCE,
        resource_id=advertiser.id, fields=sorted(changed),
    )  # fmt: skip
    return access


async def do_delete_advertiser(ads: AdsContext, advertiser_id: uuid.UUID) -> None:
    """The advertiser with its campaigns, creatives and their images."""
    access = await ads.advertiser(advertiser_id)
    access.require(CAMPAIGNS_MANAGE)
    keys = await repository.list_storage_keys(ads.session, advertiser_id=advertiser_id)
    creative_ids = await repository.creative_ids_of(ads.session, advertiser_id=advertiser_id)
    await repository.clear_house_creatives(ads.session, creative_ids)
    await repository.delete_row(ads.session, access.row)
    await delete_resource_grants(
        ads.session, ads.platform, ADVERTISER_RESOURCE, advertiser_id, actor=ads.audit_actor
    )
    audit.record(
        ads.session, ads.audit_actor, "ads.advertiser.delete", resource_type=ADVERTISER_RESOURCE,
        resource_id=advertiser_id,
    )  # fmt: skip
    ads.delete_files_after_commit(keys)
