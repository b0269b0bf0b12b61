"""Per-site roles (owner, viewer) held as core resource grants on `analytics.site:<id>`.

The core gains `grant_role` / `revoke_role` / `resource_ids_for` / `holders` for apps (GAP-7); until they
land, these go through the core's account service, which already audits grants and rechecks sessions.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.permissions import SITE_RESOURCE
from pentad.core.audit import Actor
from pentad.core.auth.service import AuthService
from pentad.core.platform import Platform


async def grant_site_role(
    session: AsyncSession, platform: Platform, user_id: uuid.UUID, site_id: uuid.UUID, role: str, actor: Actor
) -> None:
    await AuthService(session, platform).grant(user_id, SITE_RESOURCE, str(site_id), role, actor=actor)


async def revoke_site_roles(
    session: AsyncSession, platform: Platform, user_id: uuid.UUID, site_id: uuid.UUID, actor: Actor
) -> int:
    """Take every role on the site from the user; how many there were."""
    service = AuthService(session, platform)
    revoked = 0
    for grant in await service.list_grants(user_id):
        if grant.resource_type == SITE_RESOURCE and grant.resource_id == str(site_id):
            await service.revoke_grant(user_id, grant.id, actor=actor)
            revoked += 1
    return revoked


async def site_roles_of(
    session: AsyncSession, platform: Platform, user_id: uuid.UUID
) -> dict[uuid.UUID, str]:
    """The sites the user holds a role on, with the role (owner wins over viewer)."""
    roles: dict[uuid.UUID, str] = {}
    for grant in await AuthService(session, platform).list_grants(user_id):
        if grant.resource_type == SITE_RESOURCE:
            site_id = uuid.UUID(grant.resource_id)
            if roles.get(site_id) != "owner":
                roles[site_id] = grant.role
    return roles


async def user_id_by_email(session: AsyncSession, platform: Platform, email: str) -> uuid.UUID:
    """The account with this e-mail address (the core's UserNotFound, a 404, when there is none)."""
    return (await AuthService(session, platform).get_user_by_email(email)).id
