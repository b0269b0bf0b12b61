"""The chat client API (/api/chat): what a chat user does, with a user token or a Pentad account.

Realtime: subscribe to `chat.channel.{id}` and `chat.user.{your id}` on /ws (docs/chat.md).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import ChatActor
from pentad.apps.chat.actions import (
    channels,
    edits,
    invites,
    members,
    messages,
    moderation,
    presence,
    reactions,
    read_state,
    reports,
    send,
)
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.dependencies import chat_actor, chat_context
from pentad.apps.chat.schemas import MAX_SEQ
from pentad.apps.chat.tenancy import USER_PRINCIPAL, mint_user_token
from pentad.apps.chat.views import user_view
from pentad.core.auth.dependencies import db_session
from pentad.core.errors import PermissionDenied, also_answers, problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/chat",
    tags=["chat"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)

Chat = Annotated[ChatContext, Depends(chat_context)]
ChannelId = Annotated[uuid.UUID, Path(description="Channel id.")]
MessageId = Annotated[uuid.UUID, Path(description="Message id.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (at most PENTAD_CHAT__HISTORY_PAGE_MAX).")]


class TypingUpdate(BaseModel):
    active: bool = True
    parent_id: uuid.UUID | None = Field(None, description="Typing in this thread.")


class InviteRequest(BaseModel):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class InviteResult(BaseModel):
    invited: int


# ---------------------------------------------------------------- me


@router.post(
    "/session-token",
    response_model=schemas.UserToken,
    summary="Get a user token for your Pentad account",
    description="For Pentad's own pages and scripts: a short-lived `pcu_` token of your chat user in the "
    "default tenant, for the chat API and /ws (so pages speak exactly like embedded clients).",
)
async def session_token(
    request: Request, actor: Annotated[ChatActor, Depends(chat_actor)]
) -> schemas.UserToken:
    if actor.principal.kind == USER_PRINCIPAL:
        raise PermissionDenied(
            "Your backend mints user tokens through the server API.", code="use_server_api"
        )
    return mint_user_token(get_platform(request), actor.user)


@router.get("/me", response_model=schemas.ChatUser, summary="Your chat user")
async def me(actor: Annotated[ChatActor, Depends(chat_actor)]) -> schemas.ChatUser:
    return user_view(actor.user)


@router.put(
    "/me/presence", response_model=schemas.ChatUser, summary="Set your presence (online, away, offline)"
)
async def set_presence(data: schemas.PresenceUpdate, chat: Chat) -> schemas.ChatUser:
    return await presence.do_set_presence(chat, data.status)


@router.get("/users", response_model=list[schemas.ChatUser], summary="Find users of your tenant")
async def list_users(
    actor: Annotated[ChatActor, Depends(chat_actor)],
    session: Annotated[AsyncSession, Depends(db_session)],
    q: Annotated[str | None, Query(max_length=100, description="Part of a name or handle.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> list[schemas.ChatUser]:
    users = await repository.list_users(session, actor.tenant.id, query_text=q, limit=limit, offset=offset)
    return [user_view(u) for u in users]


# ---------------------------------------------------------------- channels


@router.get(
    "/channels", response_model=list[schemas.ChannelState], summary="Your channels, with unread counts"
)
async def list_channels(
    chat: Chat, *, include_archived: Annotated[bool, Query()] = False
) -> list[schemas.ChannelState]:
    return await channels.list_channels(chat, include_archived=include_archived)


@router.get("/channels/public", response_model=list[schemas.Channel], summary="Public channels you can join")
async def list_public_channels(
    chat: Chat,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> list[schemas.Channel]:
    return await channels.list_public_channels(chat, limit, offset)


@router.post(
    "/channels",
    response_model=schemas.ChannelState,
    status_code=status.HTTP_201_CREATED,
    summary="Create a channel (public, private, direct or group)",
    responses=also_answers(200, schemas.ChannelState, "The direct channel existed already."),
    description="You become its owner. Creating a direct channel that exists returns it with 200.",
)
async def create_channel(data: schemas.ChannelCreate, chat: Chat, response: Response) -> schemas.ChannelState:
    channel, created = await channels.do_create_channel(chat, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return channel


@router.get("/channels/{channel_id}", response_model=schemas.ChannelState, summary="Get a channel")
async def get_channel(channel_id: ChannelId, chat: Chat) -> schemas.ChannelState:
    return await channels.get_channel(chat, channel_id)


@router.patch("/channels/{channel_id}", response_model=schemas.ChannelState, summary="Update a channel")
async def update_channel(
    channel_id: ChannelId, data: schemas.ChannelUpdate, chat: Chat
) -> schemas.ChannelState:
    return await channels.do_update_channel(chat, channel_id, data)


@router.put(
    "/channels/{channel_id}/archive", response_model=schemas.ChannelState, summary="Archive a channel"
)
async def archive_channel(channel_id: ChannelId, chat: Chat) -> schemas.ChannelState:
    return await channels.do_set_archived(chat, channel_id, archived=True)


@router.delete("/channels/{channel_id}/archive", response_model=schemas.ChannelState, summary="Unarchive")
async def unarchive_channel(channel_id: ChannelId, chat: Chat) -> schemas.ChannelState:
    return await channels.do_set_archived(chat, channel_id, archived=False)


@router.post(
    "/channels/{channel_id}/join", response_model=schemas.ChannelState, summary="Join a public channel"
)
async def join_channel(channel_id: ChannelId, chat: Chat) -> schemas.ChannelState:
    return await members.do_join(chat, channel_id)


@router.post("/channels/{channel_id}/leave", status_code=204, summary="Leave a channel")
async def leave_channel(channel_id: ChannelId, chat: Chat) -> None:
    await members.do_remove_member(chat, channel_id, chat.actor.user_id)


@router.get(
    "/channels/{channel_id}/members",
    response_model=list[schemas.Member],
    summary="Members with their read receipts",
    description="Each member's `last_read_seq` and `last_delivered_seq`: who has read and received "
    "up to where.",
)
async def list_members(
    channel_id: ChannelId,
    chat: Chat,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> list[schemas.Member]:
    return await members.list_members(chat, channel_id, limit, offset)


@router.post(
    "/channels/{channel_id}/members",
    response_model=list[schemas.Member],
    status_code=status.HTTP_201_CREATED,
    summary="Add members (channel managers)",
)
async def add_members(channel_id: ChannelId, data: schemas.MemberAdd, chat: Chat) -> list[schemas.Member]:
    return await members.do_add_members(chat, channel_id, data)


@router.patch(
    "/channels/{channel_id}/members/{user_id}", response_model=schemas.Member, summary="Change a role"
)
async def update_member(
    channel_id: ChannelId, user_id: uuid.UUID, data: schemas.MemberUpdate, chat: Chat
) -> schemas.Member:
    return await members.do_update_member(chat, channel_id, user_id, data.role)


@router.delete("/channels/{channel_id}/members/{user_id}", status_code=204, summary="Remove a member")
async def remove_member(channel_id: ChannelId, user_id: uuid.UUID, chat: Chat) -> None:
    await members.do_remove_member(chat, channel_id, user_id)


@router.post("/channels/{channel_id}/invites", response_model=InviteResult, summary="Invite users")
async def invite(channel_id: ChannelId, data: InviteRequest, chat: Chat) -> InviteResult:
    return InviteResult(invited=await invites.do_invite(chat, channel_id, data.user_ids))


@router.get("/invites", response_model=list[schemas.Invite], summary="Your pending invitations")
async def list_invites(chat: Chat) -> list[schemas.Invite]:
    return await invites.list_invites(chat)


@router.post(
    "/invites/{invite_id}/accept", response_model=schemas.ChannelState, summary="Accept an invitation"
)
async def accept_invite(invite_id: uuid.UUID, chat: Chat) -> schemas.ChannelState:
    channel = await invites.do_answer_invite(chat, invite_id, accept=True)
    assert channel is not None
    return channel


@router.post("/invites/{invite_id}/decline", status_code=204, summary="Decline an invitation")
async def decline_invite(invite_id: uuid.UUID, chat: Chat) -> None:
    await invites.do_answer_invite(chat, invite_id, accept=False)


# ---------------------------------------------------------------- messages


@router.get(
    "/channels/{channel_id}/messages",
    response_model=schemas.MessagePage,
    summary="History, paged by sequence number",
    description="Newest page by default; `before=<seq>` pages back, `after=<seq>` pages forward. Thread "
    "replies are not included (see /messages/{id}/replies).",
)
async def list_messages(
    channel_id: ChannelId,
    chat: Chat,
    before: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Limit = 50,
) -> schemas.MessagePage:
    return await messages.list_messages(chat, channel_id, before=before, after=after, limit=limit)


@router.post(
    "/channels/{channel_id}/messages",
    response_model=schemas.Message,
    status_code=status.HTTP_201_CREATED,
    summary="Send a message",
    responses=also_answers(200, schemas.Message, "A retry with a known `client_id`: the original message."),
    description="Idempotent with `client_id`: a retry returns the original message with 200.",
)
async def send_message(
    channel_id: ChannelId, data: schemas.MessageCreate, chat: Chat, response: Response
) -> schemas.Message:
    message, created = await send.do_send_message(chat, channel_id, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return message


@router.get(
    "/channels/{channel_id}/sync",
    response_model=schemas.SyncPage,
    summary="Everything that changed since a sequence number",
    description="New, edited, deleted, reacted and pinned messages (and replies) with `revision > since`, "
    "oldest change first: what a reconnecting client missed. Page with `since` = the answer's `next_since` "
    "while `has_more`; `last_seq` is the channel's newest number, not the end of the page.",
)
async def sync(
    channel_id: ChannelId,
    chat: Chat,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ)],
    limit: Limit = 200,
) -> schemas.SyncPage:
    return await messages.list_changes(chat, channel_id, since, limit)


@router.get("/channels/{channel_id}/pins", response_model=list[schemas.Message], summary="Pinned messages")
async def list_pins(channel_id: ChannelId, chat: Chat) -> list[schemas.Message]:
    return await messages.list_pinned(chat, channel_id)


@router.post(
    "/channels/{channel_id}/read", response_model=schemas.ChannelState, summary="Mark read up to seq"
)
async def mark_read(channel_id: ChannelId, data: schemas.ReadUpdate, chat: Chat) -> schemas.ChannelState:
    return await read_state.do_mark(chat, channel_id, read_seq=data.seq, delivered_seq=None)


@router.post(
    "/channels/{channel_id}/delivered", response_model=schemas.ChannelState, summary="Acknowledge delivery"
)
async def mark_delivered(
    channel_id: ChannelId, data: schemas.DeliveredUpdate, chat: Chat
) -> schemas.ChannelState:
    return await read_state.do_mark(chat, channel_id, read_seq=None, delivered_seq=data.seq)


@router.post("/channels/{channel_id}/typing", status_code=204, summary="Start or stop typing")
async def typing(
    channel_id: ChannelId, chat: Chat, data: TypingUpdate = Body(default_factory=TypingUpdate)
) -> None:
    await presence.do_typing(chat, channel_id, active=data.active, parent_id=data.parent_id)


@router.get("/messages/{message_id}", response_model=schemas.Message, summary="Get a message")
async def get_message(message_id: MessageId, chat: Chat) -> schemas.Message:
    return await messages.get_message(chat, message_id)


@router.patch("/messages/{message_id}", response_model=schemas.Message, summary="Edit your message")
async def update_message(message_id: MessageId, data: schemas.MessageUpdate, chat: Chat) -> schemas.Message:
    return await edits.do_update_message(chat, message_id, data)


@router.delete(
    "/messages/{message_id}",
    response_model=schemas.Message,
    summary="Delete a message (author or moderator)",
    description="Leaves a tombstone: the message keeps its place, its content is gone.",
)
async def delete_message(message_id: MessageId, chat: Chat) -> schemas.Message:
    return await edits.do_delete_message(chat, message_id)


@router.get(
    "/messages/{message_id}/history", response_model=list[schemas.MessageEdit], summary="Earlier versions"
)
async def message_history(message_id: MessageId, chat: Chat) -> list[schemas.MessageEdit]:
    return await messages.list_message_history(chat, message_id)


@router.get(
    "/messages/{message_id}/replies", response_model=schemas.MessagePage, summary="A thread's replies"
)
async def list_replies(
    message_id: MessageId,
    chat: Chat,
    before: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Limit = 50,
) -> schemas.MessagePage:
    parent = await messages.get_message(chat, message_id)
    return await messages.list_messages(
        chat, parent.channel_id, before=before, after=after, limit=limit, parent_id=message_id
    )


Emoji = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[^\s/]+$", description="Emoji or short name.")
]


@router.put("/messages/{message_id}/reactions/{emoji}", response_model=schemas.Message, summary="React")
async def add_reaction(message_id: MessageId, emoji: Emoji, chat: Chat) -> schemas.Message:
    return await reactions.do_react(chat, message_id, emoji, add=True)


@router.delete("/messages/{message_id}/reactions/{emoji}", response_model=schemas.Message, summary="Unreact")
async def remove_reaction(message_id: MessageId, emoji: Emoji, chat: Chat) -> schemas.Message:
    return await reactions.do_react(chat, message_id, emoji, add=False)


@router.put("/messages/{message_id}/pin", response_model=schemas.Message, summary="Pin a message")
async def pin(message_id: MessageId, chat: Chat) -> schemas.Message:
    return await edits.do_set_pinned(chat, message_id, pinned=True)


@router.delete("/messages/{message_id}/pin", response_model=schemas.Message, summary="Unpin a message")
async def unpin(message_id: MessageId, chat: Chat) -> schemas.Message:
    return await edits.do_set_pinned(chat, message_id, pinned=False)


# ---------------------------------------------------------------- moderation


@router.post(
    "/messages/{message_id}/reports",
    response_model=schemas.Report,
    status_code=status.HTTP_201_CREATED,
    summary="Report a message to the moderators",
)
async def report_message(
    message_id: MessageId,
    chat: Chat,
    data: schemas.ReportCreate = Body(default_factory=schemas.ReportCreate),
) -> schemas.Report:
    return await reports.do_report(chat, message_id, data.reason)


@router.get("/reports", response_model=list[schemas.Report], summary="The moderator queue")
async def list_reports(
    chat: Chat,
    status_filter: Annotated[Literal["open", "resolved", "dismissed"], Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.Report]:
    return await reports.list_reports(chat, status_filter, limit)


@router.post(
    "/reports/{report_id}/resolve", response_model=schemas.Report, summary="Resolve or dismiss a report"
)
async def resolve_report(report_id: uuid.UUID, data: schemas.ReportResolve, chat: Chat) -> schemas.Report:
    return await reports.do_resolve_report(chat, report_id, data)


@router.get(
    "/channels/{channel_id}/restrictions", response_model=list[schemas.Restriction], summary="Bans and mutes"
)
async def list_restrictions(channel_id: ChannelId, chat: Chat) -> list[schemas.Restriction]:
    return await moderation.list_restrictions(chat, channel_id)


@router.post(
    "/channels/{channel_id}/restrictions",
    response_model=schemas.Restriction,
    status_code=status.HTTP_201_CREATED,
    summary="Ban or mute a user in this channel",
)
async def restrict(channel_id: ChannelId, data: schemas.RestrictionCreate, chat: Chat) -> schemas.Restriction:
    return await moderation.do_restrict(chat, channel_id, data)


@router.delete(
    "/channels/{channel_id}/restrictions/{restriction_id}", status_code=204, summary="Lift a ban or mute"
)
async def lift_restriction(channel_id: ChannelId, restriction_id: uuid.UUID, chat: Chat) -> None:
    await moderation.do_lift_restriction(chat, channel_id, restriction_id)
