"""Who may do what in a channel: the one place the chat app decides it.

A member's channel role (owner, moderator, member) maps to permissions through the core registry
(AppSpec.resource_roles), so a Pentad account can also hold a role on a channel through a core grant
(`pentad user grant … --resource chat.channel:<id>`). Anyone in the tenant may read a public channel.
Tenant-wide roles on the chat user (moderator, admin) moderate every channel of the tenant.
Bans hide everything; mutes leave reading. A channel the caller may not read does not exist for them (404).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository
from pentad.apps.chat.exceptions import Banned, ChannelArchived, ChannelNotFound, Muted
from pentad.apps.chat.models import ChatChannel, ChatMember, ChatTenant, ChatUser
from pentad.apps.chat.permissions import (
    CHANNEL_MANAGE,
    CHANNEL_MODERATE,
    CHANNEL_POST,
    CHANNEL_READ,
    CHANNEL_RESOURCE,
)
from pentad.apps.chat.settings import ChatSettings
from pentad.core.auth.grants import granted_permissions
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext
from pentad.core.errors import PermissionDenied

TENANT_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({CHANNEL_READ.key, CHANNEL_POST.key, CHANNEL_MODERATE.key, CHANNEL_MANAGE.key}),
    "moderator": frozenset({CHANNEL_READ.key, CHANNEL_MODERATE.key}),
}


@dataclass
class ChatActor:
    """The chat user behind a request, in its tenant, and the credential it came with."""

    user: ChatUser
    tenant: ChatTenant
    principal: Principal
    elevated: bool = False
    """The tenant's own backend acting for this user (server API): every channel permission."""

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id


@dataclass
class ChannelAccess:
    channel: ChatChannel
    member: ChatMember | None
    permissions: frozenset[str]
    muted: bool
    tenant_webhooks: bool | None = None
    """Whether the tenant has an active webhook, when asked for (`with_webhooks`), else None."""

    def has(self, permission: Permission) -> bool:
        return permission.key in self.permissions


async def channel_access(
    session: AsyncSession,
    platform: AppContext,
    actor: ChatActor,
    channel_id: uuid.UUID,
    *,
    with_webhooks: bool = False,
) -> ChannelAccess:
    """The caller's standing in a channel; ChannelNotFound if it is not theirs to see, Banned if banned."""
    found = await repository.get_channel_standing(
        session, channel_id, actor.tenant.id, actor.user_id, with_webhooks=with_webhooks
    )
    if found is None or found.channel.tenant_id != actor.tenant.id:
        raise ChannelNotFound()
    channel, member = found.channel, found.member
    permissions: set[str] = set()
    if member is not None:
        permissions |= platform.permissions.resource_role_permissions(CHANNEL_RESOURCE, member.role)
    elif channel.kind == "public":
        permissions.add(CHANNEL_READ.key)
    permissions |= TENANT_ROLE_PERMISSIONS.get(actor.user.role, frozenset())
    if actor.elevated:
        permissions |= TENANT_ROLE_PERMISSIONS["admin"]
    permissions |= await _granted(session, platform, actor, channel.id)
    if CHANNEL_READ.key not in permissions:
        raise ChannelNotFound()
    if found.banned and CHANNEL_MODERATE.key not in permissions:
        raise Banned()
    return ChannelAccess(channel, member, frozenset(permissions), found.muted, found.tenant_webhooks)


async def _granted(
    session: AsyncSession, platform: AppContext, actor: ChatActor, channel_id: uuid.UUID
) -> frozenset[str]:
    """Channel permissions a Pentad account holds through core grants (`pentad user grant … --resource
    chat.channel:<id>`), whether it calls with its own credentials or with the user token its pages use."""
    account = actor.principal.id if actor.principal.is_user else actor.user.pentad_user_id
    if account is None or actor.tenant.slug != platform.app_settings(ChatSettings).default_tenant:
        return frozenset()
    granted = await granted_permissions(
        session, platform.permissions, account, CHANNEL_RESOURCE, str(channel_id)
    )
    if actor.principal.scopes is not None:
        granted &= actor.principal.scopes
    return granted


def require_permission(access: ChannelAccess, permission: Permission) -> None:
    if not access.has(permission):
        raise PermissionDenied(f"You need {permission.key!r} in this channel.", code="channel_permission")


def require_post(access: ChannelAccess) -> None:
    """May post: a member with the post permission, not muted, in a channel that is not archived."""
    if access.channel.archived_at is not None:
        raise ChannelArchived()
    if access.muted and not access.has(CHANNEL_MODERATE):
        raise Muted()
    if access.member is None or not access.has(CHANNEL_POST):
        raise PermissionDenied("Join the channel to post in it.", code="not_a_member")
