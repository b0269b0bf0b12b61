"""Sharing an advertiser or a site: its managers give other accounts the owner or viewer role through
core grants (the account that created it stays its owner through the row)."""

from __future__ import annotations

import uuid

from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.permissions import ADVERTISER_RESOURCE, CAMPAIGNS_MANAGE, INVENTORY_MANAGE
from pentad.apps.ads.schemas import Holder
from pentad.core.auth.grants import grant_role, holders, revoke_role
from pentad.core.errors import NotFound


async def _check_manager(ads: AdsContext, resource_type: str, resource_id: uuid.UUID) -> None:
    if resource_type == ADVERTISER_RESOURCE:
        (await ads.advertiser(resource_id)).require(CAMPAIGNS_MANAGE)
    else:
        (await ads.site(resource_id)).require(INVENTORY_MANAGE)


async def list_holders(ads: AdsContext, resource_type: str, resource_id: uuid.UUID) -> list[Holder]:
    await _check_manager(ads, resource_type, resource_id)
    return [
        Holder(user_id=h.user_id, role=h.role, granted_by=h.granted_by, granted_at=h.granted_at)
        for h in await holders(ads.session, resource_type, resource_id)
    ]


async def do_grant(
    ads: AdsContext, resource_type: str, resource_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    await _check_manager(ads, resource_type, resource_id)
    await grant_role(
        ads.session, ads.platform, user_id, resource_type, resource_id, role, actor=ads.audit_actor
    )


async def do_revoke(
    ads: AdsContext, resource_type: str, resource_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    await _check_manager(ads, resource_type, resource_id)
    revoked = await revoke_role(
        ads.session, ads.platform, user_id, resource_type, resource_id, role, actor=ads.audit_actor
    )
    if not revoked:
        raise NotFound("That account does not hold this role here.", code="grant_not_found")
