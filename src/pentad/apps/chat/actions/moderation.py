"""Bans and mutes in a channel (tenant-wide ones are the server API's, tenancy.py)."""

from __future__ import annotations

import uuid

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import ChannelAccess, require_permission
from pentad.apps.chat.actions.context import ChatContext, check_tenant_users
from pentad.apps.chat.actions.members import notify_member_removed
from pentad.apps.chat.models import ChatRestriction, ChatUser
from pentad.apps.chat.permissions import CHANNEL_MANAGE, CHANNEL_MODERATE, CHANNEL_RESOURCE
from pentad.apps.chat.tenancy import restriction_expiry
from pentad.apps.chat.topics import recheck_channel_reader
from pentad.core import audit
from pentad.core.errors import BadRequest, NotFound, PermissionDenied


async def check_restriction_target(chat: ChatContext, access: ChannelAccess, user_id: uuid.UUID) -> ChatUser:
    """Whom a moderator may ban or mute here: not themselves, and a moderator only if they also manage."""
    require_permission(access, CHANNEL_MODERATE)
    target = (await check_tenant_users(chat, [user_id]))[0]
    if target.id == chat.actor.user_id:
        raise BadRequest("You cannot ban or mute yourself.", code="self_restriction")
    # A ban also removes the member, so a moderator could otherwise throw out the channel's owner.
    target_member = await repository.get_member(chat.session, access.channel.id, target.id)
    if (
        target_member is not None
        and CHANNEL_MODERATE.key
        in chat.platform.permissions.resource_role_permissions(CHANNEL_RESOURCE, target_member.role)
        and not access.has(CHANNEL_MANAGE)
    ):
        raise PermissionDenied(
            "Only the channel's managers can ban or mute its moderators.", code="target_is_moderator"
        )
    return target


async def do_restrict(
    chat: ChatContext, channel_id: uuid.UUID, data: schemas.RestrictionCreate
) -> schemas.Restriction:
    """Ban (which also removes the member and ends their subscriptions) or mute a user in the channel."""
    access = await chat.access(channel_id)
    target = await check_restriction_target(chat, access, data.user_id)
    expires = restriction_expiry(data.duration)
    restriction = ChatRestriction(
        tenant_id=chat.actor.tenant.id,
        channel_id=channel_id,
        user_id=target.id,
        kind=data.kind,
        reason=data.reason,
        expires_at=expires,
        created_by=chat.actor.user_id,
    )
    chat.session.add(restriction)
    if data.kind == "ban":
        if await repository.delete_member(chat.session, channel_id, target.id):
            notify_member_removed(chat, access.channel, target)
        else:
            recheck_channel_reader(chat.session, channel_id, target)
    await chat.session.flush()
    audit.record(
        chat.session,
        chat.audit_actor,
        "chat.user_banned" if data.kind == "ban" else "chat.user_muted",
        resource_type="chat.channel",
        resource_id=channel_id,
        user_id=str(target.id),
        reason=data.reason,
        expires_at=expires.isoformat() if expires else None,
    )
    return schemas.Restriction.model_validate(restriction)


async def list_restrictions(chat: ChatContext, channel_id: uuid.UUID) -> list[schemas.Restriction]:
    access = await chat.access(channel_id)
    require_permission(access, CHANNEL_MODERATE)
    rows = await repository.list_restrictions(chat.session, chat.actor.tenant.id, channel_id)
    return [schemas.Restriction.model_validate(r) for r in rows]


async def do_lift_restriction(chat: ChatContext, channel_id: uuid.UUID, restriction_id: uuid.UUID) -> None:
    access = await chat.access(channel_id)
    require_permission(access, CHANNEL_MODERATE)
    restriction = await repository.get_restriction(chat.session, restriction_id)
    if restriction is None or restriction.channel_id != channel_id:
        raise NotFound("No such ban or mute in this channel.", code="restriction_not_found")
    await chat.session.delete(restriction)
    await chat.session.flush()
    audit.record(
        chat.session,
        chat.audit_actor,
        f"chat.{restriction.kind}_lifted",
        resource_type="chat.channel",
        resource_id=channel_id,
        user_id=str(restriction.user_id),
    )
