"""Who may do what with a site: the one place the analytics app decides it.

A caller holds `analytics.site.read` / `analytics.site.manage` on a site through a core grant of the
site's `viewer` or `owner` role (`analytics.site:<id>`); `analytics.admin` holds both on every site. An
API key or token with scopes keeps only what its scopes name. A site the caller may not read does not
exist for them (404); one they may read but not manage answers 403 to changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import repository
from pentad.apps.analytics.exceptions import SiteNotFound, SitePermission
from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.permissions import ANALYTICS_ADMIN, SITE_MANAGE, SITE_READ, SITE_RESOURCE
from pentad.core.auth.grants import granted_permissions
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext

EVERYTHING = frozenset({SITE_READ.key, SITE_MANAGE.key})


@dataclass(frozen=True)
class SiteAccess:
    site: AnalyticsSite
    permissions: frozenset[str]

    def has(self, permission: Permission) -> bool:
        return permission.key in self.permissions


def _scoped(principal: Principal, permissions: frozenset[str]) -> frozenset[str]:
    return permissions & principal.scopes if principal.scopes is not None else permissions


async def site_permissions(
    session: AsyncSession, platform: AppContext, principal: Principal, site_id: uuid.UUID
) -> frozenset[str]:
    if principal.has(ANALYTICS_ADMIN):
        return _scoped(principal, EVERYTHING)
    if not principal.is_user:
        return frozenset()
    granted = await granted_permissions(
        session, platform.permissions, principal.id, SITE_RESOURCE, str(site_id)
    )
    return _scoped(principal, granted)


async def access_site(
    session: AsyncSession,
    platform: AppContext,
    principal: Principal,
    site_id: uuid.UUID,
    permission: Permission = SITE_READ,
) -> SiteAccess:
    """The site if the caller holds `permission` on it; SiteNotFound (404) when they may not even read
    it, SitePermission (403) when they may read but not do this."""
    site = await repository.get_site(session, site_id)
    if site is None:
        raise SiteNotFound()
    permissions = await site_permissions(session, platform, principal, site_id)
    if SITE_READ.key not in permissions:
        raise SiteNotFound()
    if permission.key not in permissions:
        raise SitePermission()
    return SiteAccess(site, permissions)
