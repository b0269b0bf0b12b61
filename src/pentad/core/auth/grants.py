"""Resource grants as apps use them: roles on one resource (a site, a game server, a campaign) given to users.

Apps grant, revoke and read here rather than through the core's grant table (an import-linter contract keeps
apps out of core repositories and models). The roles are the app's `AppSpec.resource_roles`; a role not
declared for the resource type is refused (400 `unknown_role`). Every change is audited (`grant.create`,
`grant.delete`) in the caller's transaction. Taking a role away also drops the user's cached principals now
and again after the commit, and once it commits re-checks the user's realtime connections on every node, so
a subscription the grant allowed ends at once (as the admin endpoint does). Nothing here commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import repository
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.exceptions import UserNotFound
from pentad.core.auth.models import Grant
from pentad.core.auth.permissions import Permission, PermissionRegistry, UnknownRole
from pentad.core.context import AppContext
from pentad.core.errors import BadRequest
from pentad.core.realtime.publish import recheck


@dataclass(frozen=True)
class ResourceHolder:
    """A user holding a role on a resource (one per role: a user with two roles appears twice)."""

    user_id: uuid.UUID
    role: str
    granted_by: uuid.UUID | None
    granted_at: datetime


async def granted_permissions(
    session: AsyncSession,
    permissions: PermissionRegistry,
    user_id: uuid.UUID,
    resource_type: str,
    resource_id: str,
) -> frozenset[str]:
    """Keys of the permissions `user_id` holds on the resource through the roles granted to it there."""
    roles = await repository.list_resource_grant_roles(session, user_id, resource_type, resource_id)
    granted: set[str] = set()
    for role in roles:
        granted |= permissions.resource_role_permissions(resource_type, role)
    return frozenset(granted)


async def granted_permissions_by_resource(
    session: AsyncSession, permissions: PermissionRegistry, user_id: uuid.UUID, resource_type: str
) -> dict[str, frozenset[str]]:
    """Keys of the permissions `user_id` holds through grants, for every resource of `resource_type` it
    holds a role on (resource id → keys), in one query: what a list of "my resources" needs to show each
    one with the caller's rights without asking resource by resource."""
    held: dict[str, set[str]] = {}
    for resource_id, role in await repository.list_user_resource_roles(session, user_id, resource_type):
        held.setdefault(resource_id, set()).update(permissions.resource_role_permissions(resource_type, role))
    return {resource_id: frozenset(keys) for resource_id, keys in held.items()}


async def grant_role(
    session: AsyncSession,
    context: AppContext,
    user_id: uuid.UUID,
    resource_type: str,
    resource_id: str | uuid.UUID,
    role: str,
    *,
    actor: Actor,
) -> bool:
    """Give `user_id` the `role` on the resource; True when it is new (granting a held role changes
    nothing and records nothing). UserNotFound (404) for no such user, BadRequest `unknown_role` (400) for a
    role the app does not declare for the type."""
    _check_role(context.permissions, resource_type, role)
    resource = str(resource_id)
    if await repository.get_user(session, user_id) is None:
        raise UserNotFound()
    if await repository.find_grant(session, user_id, resource_type, resource, role) is not None:
        return False
    granted_by = uuid.UUID(actor.id) if actor.type == "user" and actor.id else None
    session.add(
        Grant(
            user_id=user_id,
            resource_type=resource_type,
            resource_id=resource,
            role=role,
            granted_by=granted_by,
        )
    )
    await session.flush()
    audit.record(
        session, actor, "grant.create", resource_type=resource_type, resource_id=resource,
        user_id=str(user_id), role=role,
    )  # fmt: skip
    return True


async def revoke_role(
    session: AsyncSession,
    context: AppContext,
    user_id: uuid.UUID,
    resource_type: str,
    resource_id: str | uuid.UUID,
    role: str,
    *,
    actor: Actor,
) -> bool:
    """Take the `role` on the resource from `user_id`; True when it was held. The user's cached principals
    are forgotten and, once this commits, its realtime connections re-checked on every node."""
    _check_role(context.permissions, resource_type, role)
    resource = str(resource_id)
    grant = await repository.find_grant(session, user_id, resource_type, resource, role)
    if grant is None:
        return False
    await session.delete(grant)
    await session.flush()
    _rights_lost(session, context, [user_id])
    audit.record(
        session, actor, "grant.delete", resource_type=resource_type, resource_id=resource,
        user_id=str(user_id), role=role,
    )  # fmt: skip
    return True


async def delete_resource_grants(
    session: AsyncSession,
    context: AppContext,
    resource_type: str,
    resource_id: str | uuid.UUID,
    *,
    actor: Actor,
) -> int:
    """The resource is gone: remove every grant on it (audited once, with the holders); the number removed.
    Its former holders' cached principals are forgotten and their connections re-checked after the commit."""
    resource = str(resource_id)
    grants = await repository.list_resource_grants(session, resource_type, resource)
    if not grants:
        return 0
    for grant in grants:
        await session.delete(grant)
    await session.flush()
    _rights_lost(session, context, [grant.user_id for grant in grants])
    audit.record(
        session, actor, "grant.delete_all", resource_type=resource_type, resource_id=resource,
        holders=[{"user_id": str(grant.user_id), "role": grant.role} for grant in grants],
    )  # fmt: skip
    return len(grants)


async def resource_ids_for(
    session: AsyncSession,
    permissions: PermissionRegistry,
    user_id: uuid.UUID,
    resource_type: str,
    permission: Permission | str,
) -> list[str]:
    """Ids (sorted) of the resources of `resource_type` on which `user_id` holds `permission` through a
    grant ("my sites"). Global roles are not counted: check `principal.has(permission)` for those."""
    key = permission if isinstance(permission, str) else permission.key
    roles = [
        role for role, granted in permissions.resource_roles.get(resource_type, {}).items() if key in granted
    ]
    return await repository.list_granted_resource_ids(session, user_id, resource_type, roles)


async def holders(
    session: AsyncSession, resource_type: str, resource_id: str | uuid.UUID
) -> list[ResourceHolder]:
    """Who holds which role on the resource, oldest grant first (a sharing screen)."""
    grants = await repository.list_resource_grants(session, resource_type, str(resource_id))
    return [ResourceHolder(grant.user_id, grant.role, grant.granted_by, grant.created_at) for grant in grants]


def _check_role(permissions: PermissionRegistry, resource_type: str, role: str) -> None:
    try:
        permissions.check_resource_role(resource_type, role)
    except UnknownRole:
        raise BadRequest(
            f"Unknown role {role!r} for resources of type {resource_type!r}.", code="unknown_role"
        ) from None


def _rights_lost(session: AsyncSession, context: AppContext, user_ids: list[uuid.UUID]) -> None:
    for user_id in set(user_ids):
        forget_on_commit(session, context.principals, user_id)
    recheck(session, user_ids)
