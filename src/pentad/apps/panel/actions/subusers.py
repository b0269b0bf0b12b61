"""Subusers: accounts the owner (or a subuser holding `user.*`) shares a server with, each with a set of
Pterodactyl keys. A key is a resource role on `panel.server:<id>` held through core grants (audited;
taking one forgets the holder's cached principals and re-checks its realtime connections once it commits).

Nobody gives or takes a key they do not hold themselves (admins hold them all), nobody changes their own
keys, and the owner is not a subuser (it keeps every key until the server is deleted)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from pentad.apps.panel.access import ServerAccess
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.exceptions import KeysNotHeld, OwnKeys, ServerOwnerKeys, SubuserExists, SubuserNotFound
from pentad.apps.panel.permissions import (
    OWNER_ROLE,
    SERVER_KEYS,
    SERVER_RESOURCE,
    SERVER_USER_CREATE,
    SERVER_USER_DELETE,
    SERVER_USER_READ,
    SERVER_USER_UPDATE,
)
from pentad.apps.panel.schemas import SubuserCreate, SubuserRead, SubuserUpdate
from pentad.core import audit
from pentad.core.auth.grants import ResourceHolder, grant_role, holders, revoke_role
from pentad.core.auth.service import AuthService


def _check_held(panel: PanelContext, access: ServerAccess, keys: Collection[str]) -> None:
    """KeysNotHeld (403) naming the keys among `keys` the caller does not hold."""
    if panel.is_admin:
        return
    missing = sorted(set(keys) - set(access.keys))
    if missing:
        raise KeysNotHeld(missing)


async def _roles(panel: PanelContext, server_id: uuid.UUID) -> dict[uuid.UUID, list[ResourceHolder]]:
    found: dict[uuid.UUID, list[ResourceHolder]] = {}
    for holder in await holders(panel.session, SERVER_RESOURCE, server_id):
        found.setdefault(holder.user_id, []).append(holder)
    return found


async def list_subusers(panel: PanelContext, server_id: uuid.UUID) -> list[SubuserRead]:
    """The owner first, then every subuser (oldest first) with its keys (`user.read`)."""
    access = await panel.access(server_id, SERVER_USER_READ)
    return await _holders(panel, access.server.id)


async def _holders(
    panel: PanelContext, server_id: uuid.UUID, only: uuid.UUID | None = None
) -> list[SubuserRead]:
    service = AuthService(panel.session, panel.platform)
    found = []
    for user_id, held in (await _roles(panel, server_id)).items():
        if only is not None and user_id != only:
            continue
        user = await service.get_user(user_id)
        owner = any(holder.role == OWNER_ROLE for holder in held)
        found.append(
            SubuserRead(
                user_id=user_id,
                email=user.email,
                display_name=user.display_name,
                owner=owner,
                permissions=sorted(SERVER_KEYS) if owner else sorted(holder.role for holder in held),
                since=min(holder.granted_at for holder in held),
            )
        )
    found.sort(key=lambda subuser: (not subuser.owner, subuser.since))
    return found


async def _subuser(panel: PanelContext, server_id: uuid.UUID, user_id: uuid.UUID) -> SubuserRead:
    """What a change made, shown to its author (who may lack `user.read`)."""
    return (await _holders(panel, server_id, only=user_id))[0]


async def do_create_subuser(panel: PanelContext, server_id: uuid.UUID, data: SubuserCreate) -> SubuserRead:
    """Share the server with the account of `data.email` (UserNotFound 404 when there is none), giving it
    the keys (`user.create`, and every key given held by the caller)."""
    access = await panel.access(server_id, SERVER_USER_CREATE)
    _check_held(panel, access, data.permissions)
    user = await AuthService(panel.session, panel.platform).get_user_by_email(data.email)
    if user.id == access.server.owner_id:
        raise ServerOwnerKeys()
    if user.id in await _roles(panel, access.server.id):
        raise SubuserExists()
    for key in data.permissions:
        await grant_role(
            panel.session, panel.platform, user.id, SERVER_RESOURCE, access.server.id, key,
            actor=panel.audit_actor,
        )  # fmt: skip
    audit.record(
        panel.session, panel.audit_actor, "panel.server.subuser_create", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), user_id=str(user.id), email=user.email,
        permissions=data.permissions,
    )  # fmt: skip
    return await _subuser(panel, access.server.id, user.id)


async def _existing(panel: PanelContext, access: ServerAccess, user_id: uuid.UUID) -> list[str]:
    if user_id == access.server.owner_id:
        raise ServerOwnerKeys()
    held = (await _roles(panel, access.server.id)).get(user_id)
    if not held:
        raise SubuserNotFound()
    return [holder.role for holder in held]


async def do_update_subuser(
    panel: PanelContext, server_id: uuid.UUID, user_id: uuid.UUID, data: SubuserUpdate
) -> SubuserRead:
    """Set the subuser's keys (`user.update`): every key given or taken must be one the caller holds; one's
    own keys cannot be changed (OwnKeys 403)."""
    access = await panel.access(server_id, SERVER_USER_UPDATE)
    if user_id == panel.user_id and not panel.is_admin:
        raise OwnKeys()
    current = set(await _existing(panel, access, user_id))
    wanted = set(data.permissions)
    _check_held(panel, access, wanted ^ current)
    for key in sorted(wanted - current):
        await grant_role(
            panel.session, panel.platform, user_id, SERVER_RESOURCE, access.server.id, key,
            actor=panel.audit_actor,
        )  # fmt: skip
    for key in sorted(current - wanted):
        await revoke_role(
            panel.session, panel.platform, user_id, SERVER_RESOURCE, access.server.id, key,
            actor=panel.audit_actor,
        )  # fmt: skip
    audit.record(
        panel.session, panel.audit_actor, "panel.server.subuser_update", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), user_id=str(user_id), added=sorted(wanted - current),
        removed=sorted(current - wanted),
    )  # fmt: skip
    return await _subuser(panel, access.server.id, user_id)


async def do_delete_subuser(panel: PanelContext, server_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Take every key of the subuser (`user.delete`); its live subscriptions to the server end at once."""
    access = await panel.access(server_id, SERVER_USER_DELETE)
    for key in await _existing(panel, access, user_id):
        await revoke_role(
            panel.session, panel.platform, user_id, SERVER_RESOURCE, access.server.id, key,
            actor=panel.audit_actor,
        )  # fmt: skip
    audit.record(
        panel.session, panel.audit_actor, "panel.server.subuser_delete", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), user_id=str(user_id),
    )  # fmt: skip
