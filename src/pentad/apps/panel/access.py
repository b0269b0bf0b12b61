"""Who may do what with a game server: the one place the panel decides it (actions, topics and, later, the
file manager and backups all ask here).

A caller holds a server's permissions (`panel.server.<key>`, Pterodactyl's keys) through core grants of
the server's roles (resource type `panel.server`: `owner`, or one role per key for subusers);
`panel.admin` holds every key on every server. An API key with scopes keeps only what its scopes name.
A server the caller holds no key on does not exist for them (404); one they may see but not change in
this way answers 403.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import repository
from pentad.apps.panel.exceptions import ServerNotFound, ServerPermission
from pentad.apps.panel.models import PanelServer
from pentad.apps.panel.permissions import PANEL_ADMIN, SERVER_PERMISSIONS, SERVER_RESOURCE, SERVER_VIEW
from pentad.core.auth.grants import granted_permissions, granted_permissions_by_resource
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext

EVERYTHING = frozenset({SERVER_VIEW.key, *(permission.key for permission in SERVER_PERMISSIONS.values())})


@dataclass(frozen=True)
class ServerAccess:
    server: PanelServer
    permissions: frozenset[str]
    """The `panel.server.*` keys the caller holds on this server."""

    def has(self, permission: Permission) -> bool:
        return permission.key in self.permissions

    @property
    def keys(self) -> list[str]:
        """The Pterodactyl keys held (`control.console`, …), sorted."""
        prefix = SERVER_RESOURCE + "."
        return sorted(key.removeprefix(prefix) for key in self.permissions if key != SERVER_VIEW.key)


def _scoped(principal: Principal, permissions: frozenset[str]) -> frozenset[str]:
    return permissions & principal.scopes if principal.scopes is not None else permissions


async def server_permissions(
    session: AsyncSession, platform: AppContext, principal: Principal | None, server: PanelServer
) -> frozenset[str]:
    """What the caller may do with the server (None: the system, everything)."""
    if principal is None:
        return EVERYTHING
    if principal.has(PANEL_ADMIN):
        return _scoped(principal, EVERYTHING)
    if not principal.is_user:
        return frozenset()
    held = await granted_permissions(
        session, platform.permissions, principal.id, SERVER_RESOURCE, str(server.id)
    )
    return _scoped(principal, held)


async def held_servers(
    session: AsyncSession, platform: AppContext, principal: Principal
) -> dict[uuid.UUID, frozenset[str]] | None:
    """What the caller may do with each server it may see (one query for every server): None for admins
    (every server, every key but what an API key's scopes leave out: see `everything_for`); a person: the
    servers granted to them, with the keys held (scopes applied), only those with the view."""
    if principal.has(PANEL_ADMIN):
        return None
    if not principal.is_user:
        return {}
    held = await granted_permissions_by_resource(session, platform.permissions, principal.id, SERVER_RESOURCE)
    found: dict[uuid.UUID, frozenset[str]] = {}
    for resource_id, keys in held.items():
        scoped = _scoped(principal, keys)
        if SERVER_VIEW.key in scoped:
            found[uuid.UUID(resource_id)] = scoped
    return found


def everything_for(principal: Principal | None) -> frozenset[str]:
    """An admin's keys on any server (what its scopes allow)."""
    return EVERYTHING if principal is None else _scoped(principal, EVERYTHING)


async def server_access(
    session: AsyncSession,
    platform: AppContext,
    principal: Principal | None,
    server_id: uuid.UUID,
    permission: Permission | None = None,
) -> ServerAccess:
    """The server if the caller may see it (any role on it: `panel.server.view`) and holds `permission`
    when given: ServerNotFound (404) when they may not see it, ServerPermission (403) when they lack
    `permission`."""
    server = await repository.get_server(session, server_id)
    if server is None:
        raise ServerNotFound()
    permissions = await server_permissions(session, platform, principal, server)
    if SERVER_VIEW.key not in permissions:
        raise ServerNotFound()
    if permission is not None and permission.key not in permissions:
        raise ServerPermission()
    return ServerAccess(server, permissions)
