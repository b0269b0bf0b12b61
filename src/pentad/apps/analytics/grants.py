"""Per-site roles (owner, viewer) held as core resource grants on `analytics.site:<id>` (core/auth/grants.py:
audited, cached principals forgotten and realtime connections re-checked when a role is taken)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.permissions import SITE_READ, SITE_RESOURCE, SITE_ROLES
from pentad.core.audit import Actor
from pentad.core.auth.grants import (
    ResourceHolder,
    delete_resource_grants,
    grant_role,
    holders,
    resource_ids_for,
    revoke_role,
)
from pentad.core.auth.service import AuthService
from pentad.core.platform import Platform


async def grant_site_role(
    session: AsyncSession, platform: Platform, user_id: uuid.UUID, site_id: uuid.UUID, role: str, actor: Actor
) -> None:
    await grant_role(session, platform, user_id, SITE_RESOURCE, site_id, role, actor=actor)


async def revoke_site_roles(
    session: AsyncSession, platform: Platform, user_id: uuid.UUID, site_id: uuid.UUID, actor: Actor
) -> int:
    """Take every role on the site from the user; how many were held."""
    revoked = 0
    for role in SITE_ROLES:
        revoked += await revoke_role(session, platform, user_id, SITE_RESOURCE, site_id, role, actor=actor)
    return revoked


async def forget_site(session: AsyncSession, platform: Platform, site_id: uuid.UUID, actor: Actor) -> None:
    await delete_resource_grants(session, platform, SITE_RESOURCE, site_id, actor=actor)


async def readable_site_ids(session: AsyncSession, platform: Platform, user_id: uuid.UUID) -> list[uuid.UUID]:
    found = await resource_ids_for(session, platform.permissions, user_id, SITE_RESOURCE, SITE_READ)
    return [uuid.UUID(site_id) for site_id in found]


async def site_holders(session: AsyncSession, site_id: uuid.UUID) -> list[ResourceHolder]:
    return await holders(session, SITE_RESOURCE, site_id)


async def user_id_by_email(session: AsyncSession, platform: Platform, email: str) -> uuid.UUID:
    """The account with this e-mail address (the core's UserNotFound, a 404, when there is none)."""
    return (await AuthService(session, platform).get_user_by_email(email)).id
