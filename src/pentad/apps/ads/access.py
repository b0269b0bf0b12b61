"""Who may do what with an advertiser or a site: the one place the ads app decides it.

`ads.admin` holds every permission everywhere. The account that created an advertiser or a site holds
its owner role; other accounts hold roles through core grants (resource types `ads.advertiser`,
`ads.site`). An API key's scopes narrow all of it. Something the caller may not even read does not exist
for them (404); something they may read but not change answers 403.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads import repository
from pentad.apps.ads.exceptions import AdvertiserNotFound, SiteNotFound
from pentad.apps.ads.models import AdsAdvertiser, AdsSite
from pentad.apps.ads.permissions import (
    ADS_ADMIN,
    ADVERTISER_RESOURCE,
    ADVERTISER_ROLES,
    CAMPAIGNS_MANAGE,
    INVENTORY_MANAGE,
    REPORTS_READ,
    SITE_RESOURCE,
    SITE_ROLES,
)
from pentad.core.auth.grants import granted_permissions
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext
from pentad.core.errors import PermissionDenied

Row = TypeVar("Row", AdsAdvertiser, AdsSite)


@dataclass(frozen=True)
class Access(Generic[Row]):
    row: Row
    permissions: frozenset[str]
    role: str
    """admin, owner or viewer: the strongest the caller holds."""

    def require(self, permission: Permission) -> None:
        if permission.key not in self.permissions:
            raise PermissionDenied(
                f"You need {permission.key!r} here (your role: {self.role}).", code="ads_permission"
            )


def _role_keys(roles: dict[str, tuple[Permission, ...]], role: str) -> frozenset[str]:
    return frozenset(permission.key for permission in roles[role])


async def _held(
    session: AsyncSession,
    platform: AppContext,
    principal: Principal,
    resource_type: str,
    row: AdsAdvertiser | AdsSite,
    roles: dict[str, tuple[Permission, ...]],
    manage: Permission,
) -> tuple[frozenset[str], str]:
    every = frozenset().union(*(_role_keys(roles, role) for role in roles))
    if principal.has(ADS_ADMIN):
        return every, "admin"
    held: frozenset[str] = frozenset()
    if principal.is_user:
        if row.owner_id == principal.id:
            held = _role_keys(roles, "owner")
        held |= await granted_permissions(
            session, platform.permissions, principal.id, resource_type, str(row.id)
        )
    if principal.scopes is not None:
        held &= principal.scopes
    return held, ("owner" if manage.key in held else "viewer")


async def advertiser_access(
    session: AsyncSession, platform: AppContext, principal: Principal, advertiser_id: uuid.UUID
) -> Access[AdsAdvertiser]:
    """The caller's standing on an advertiser; AdvertiserNotFound unless they may at least read it."""
    advertiser = await repository.get_advertiser(session, advertiser_id)
    if advertiser is None:
        raise AdvertiserNotFound()
    held, role = await _held(
        session, platform, principal, ADVERTISER_RESOURCE, advertiser, ADVERTISER_ROLES, CAMPAIGNS_MANAGE
    )
    if REPORTS_READ.key not in held:
        raise AdvertiserNotFound()
    return Access(advertiser, held, role)


async def site_access(
    session: AsyncSession, platform: AppContext, principal: Principal, site_id: uuid.UUID
) -> Access[AdsSite]:
    """The caller's standing on a site; SiteNotFound unless they may at least read it."""
    site = await repository.get_site(session, site_id)
    if site is None:
        raise SiteNotFound()
    held, role = await _held(session, platform, principal, SITE_RESOURCE, site, SITE_ROLES, INVENTORY_MANAGE)
    if REPORTS_READ.key not in held:
        raise SiteNotFound()
    return Access(site, held, role)
