"""Resource grants as apps see them: what a user may do on one resource through the roles granted there.

Apps ask here rather than reading the core's grant table themselves (an import-linter contract keeps
apps out of core repositories and models).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth import repository
from pentad.core.auth.permissions import PermissionRegistry


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
