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
from pentad.apps.chat.dependencies import chat_actor, chat_service
from pentad.apps.chat.schemas import MAX_SEQ
from pentad.apps.chat.service import ChatService, user_view
from pentad.apps.chat.tenancy import USER_PRINCIPAL, mint_user_token
from pentad.core.auth.dependencies import db_session
from pentad.core.errors import PermissionDenied, also_answers, problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/chat",
    tags=["chat"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)

Service = Annotated[ChatService, Depends(chat_service)]
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
async def set_presence(data: schemas.PresenceUpdate, service: Service) -> schemas.ChatUser:
    return await service.set_presence(data.status)


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
    service: Service, include_archived: Annotated[bool, Query()] = False
) -> list[schemas.ChannelState]:
    return await service.list_channels(include_archived=include_archived)


@router.get("/channels/public", response_model=list[schemas.Channel], summary="Public channels you can join")
async def list_public_channels(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> list[schemas.Channel]:
    return await service.list_public_channels(limit, offset)


@router.post(
    "/channels",
    response_model=schemas.ChannelState,
    status_code=status.HTTP_201_CREATED,
    summary="Create a channel (public, private, direct or group)",
    responses=also_answers(200, schemas.ChannelState, "The direct channel existed already."),
    description="You become its owner. Creating a direct channel that exists returns it with 200.",
)
async def create_channel(
    data: schemas.ChannelCreate, service: Service, response: Response
) -> schemas.ChannelState:
    channel, created = await service.create_channel(data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return channel


@router.get("/channels/{channel_id}", response_model=schemas.ChannelState, summary="Get a channel")
async def get_channel(channel_id: ChannelId, service: Service) -> schemas.ChannelState:
    return await service.get_channel(channel_id)


@router.patch("/channels/{channel_id}", response_model=schemas.ChannelState, summary="Update a channel")
async def update_channel(
    channel_id: ChannelId, data: schemas.ChannelUpdate, service: Service
) -> schemas.ChannelState:
    return await service.update_channel(channel_id, data)


@router.put(
    "/channels/{channel_id}/archive", response_model=schemas.ChannelState, summary="Archive a channel"
)
async def archive_channel(channel_id: ChannelId, service: Service) -> schemas.ChannelState:
    return await service.set_archived(channel_id, True)


@router.delete("/channels/{channel_id}/archive", response_model=schemas.ChannelState, summary="Unarchive")
async def unarchive_channel(channel_id: ChannelId, service: Service) -> schemas.ChannelState:
    return await service.set_archived(channel_id, False)


@router.post(
    "/channels/{channel_id}/join", response_model=schemas.ChannelState, summary="Join a public channel"
)
async def join_channel(channel_id: ChannelId, service: Service) -> schemas.ChannelState:
    return await service.join(channel_id)


@router.post("/channels/{channel_id}/leave", status_code=204, summary="Leave a channel")
async def leave_channel(channel_id: ChannelId, service: Service) -> None:
    await service.remove_member(channel_id, service.actor.user_id)


@router.get(
    "/channels/{channel_id}/members",
    response_model=list[schemas.Member],
    summary="Members with their read receipts",
    description="Each member's `last_read_seq` and `last_delivered_seq`: who has read and received "
    "up to where.",
)
async def list_members(
    channel_id: ChannelId,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
) -> list[schemas.Member]:
    return await service.list_members(channel_id, limit, offset)


@router.post(
    "/channels/{channel_id}/members",
    response_model=list[schemas.Member],
    status_code=status.HTTP_201_CREATED,
    summary="Add members (channel managers)",
)
async def add_members(
    channel_id: ChannelId, data: schemas.MemberAdd, service: Service
) -> list[schemas.Member]:
    return await service.add_members(channel_id, data)


@router.patch(
    "/channels/{channel_id}/members/{user_id}", response_model=schemas.Member, summary="Change a role"
)
async def update_member(
    channel_id: ChannelId, user_id: uuid.UUID, data: schemas.MemberUpdate, service: Service
) -> schemas.Member:
    return await service.update_member(channel_id, user_id, data.role)


@router.delete("/channels/{channel_id}/members/{user_id}", status_code=204, summary="Remove a member")
async def remove_member(channel_id: ChannelId, user_id: uuid.UUID, service: Service) -> None:
    await service.remove_member(channel_id, user_id)


@router.post("/channels/{channel_id}/invites", response_model=InviteResult, summary="Invite users")
async def invite(channel_id: ChannelId, data: InviteRequest, service: Service) -> InviteResult:
    return InviteResult(invited=await service.invite(channel_id, data.user_ids))


@router.get("/invites", response_model=list[schemas.Invite], summary="Your pending invitations")
async def list_invites(service: Service) -> list[schemas.Invite]:
    return await service.list_invites()


@router.post(
    "/invites/{invite_id}/accept", response_model=schemas.ChannelState, summary="Accept an invitation"
)
async def accept_invite(invite_id: uuid.UUID, service: Service) -> schemas.ChannelState:
    channel = await service.answer_invite(invite_id, True)
    assert channel is not None
    return channel


@router.post("/invites/{invite_id}/decline", status_code=204, summary="Decline an invitation")
async def decline_invite(invite_id: uuid.UUID, service: Service) -> None:
    await service.answer_invite(invite_id, False)


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
    service: Service,
    before: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Limit = 50,
) -> schemas.MessagePage:
    return await service.list_messages(channel_id, before=before, after=after, limit=limit)


@router.post(
    "/channels/{channel_id}/messages",
    response_model=schemas.Message,
    status_code=status.HTTP_201_CREATED,
    summary="Send a message",
    responses=also_answers(200, schemas.Message, "A retry with a known `client_id`: the original message."),
    description="Idempotent with `client_id`: a retry returns the original message with 200.",
)
async def send_message(
    channel_id: ChannelId, data: schemas.MessageCreate, service: Service, response: Response
) -> schemas.Message:
    message, created = await service.send_message(channel_id, data)
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
    service: Service,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ)],
    limit: Limit = 200,
) -> schemas.SyncPage:
    return await service.sync(channel_id, since, limit)


@router.get("/channels/{channel_id}/pins", response_model=list[schemas.Message], summary="Pinned messages")
async def list_pins(channel_id: ChannelId, service: Service) -> list[schemas.Message]:
    return await service.list_pinned(channel_id)


@router.post(
    "/channels/{channel_id}/read", response_model=schemas.ChannelState, summary="Mark read up to seq"
)
async def mark_read(
    channel_id: ChannelId, data: schemas.ReadUpdate, service: Service
) -> schemas.ChannelState:
    return await service.mark(channel_id, read_seq=data.seq, delivered_seq=None)


@router.post(
    "/channels/{channel_id}/delivered", response_model=schemas.ChannelState, summary="Acknowledge delivery"
)
async def mark_delivered(
    channel_id: ChannelId, data: schemas.DeliveredUpdate, service: Service
) -> schemas.ChannelState:
    return await service.mark(channel_id, read_seq=None, delivered_seq=data.seq)


@router.post("/channels/{channel_id}/typing", status_code=204, summary="Start or stop typing")
async def typing(
    channel_id: ChannelId, service: Service, data: TypingUpdate = Body(default_factory=TypingUpdate)
) -> None:
    await service.typing(channel_id, data.active, data.parent_id)


@router.get("/messages/{message_id}", response_model=schemas.Message, summary="Get a message")
async def get_message(message_id: MessageId, service: Service) -> schemas.Message:
    return await service.get_message(message_id)


@router.patch("/messages/{message_id}", response_model=schemas.Message, summary="Edit your message")
async def update_message(
    message_id: MessageId, data: schemas.MessageUpdate, service: Service
) -> schemas.Message:
    return await service.update_message(message_id, data)


@router.delete(
    "/messages/{message_id}",
    response_model=schemas.Message,
    summary="Delete a message (author or moderator)",
    description="Leaves a tombstone: the message keeps its place, its content is gone.",
)
async def delete_message(message_id: MessageId, service: Service) -> schemas.Message:
    return await service.delete_message(message_id)


@router.get(
    "/messages/{message_id}/history", response_model=list[schemas.MessageEdit], summary="Earlier versions"
)
async def message_history(message_id: MessageId, service: Service) -> list[schemas.MessageEdit]:
    return await service.message_history(message_id)


@router.get(
    "/messages/{message_id}/replies", response_model=schemas.MessagePage, summary="A thread's replies"
)
async def list_replies(
    message_id: MessageId,
    service: Service,
    before: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Limit = 50,
) -> schemas.MessagePage:
    parent = await service.get_message(message_id)
    return await service.list_messages(
        parent.channel_id, before=before, after=after, limit=limit, parent_id=message_id
    )


Emoji = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[^\s/]+$", description="Emoji or short name.")
]


@router.put("/messages/{message_id}/reactions/{emoji}", response_model=schemas.Message, summary="React")
async def add_reaction(message_id: MessageId, emoji: Emoji, service: Service) -> schemas.Message:
    return await service.react(message_id, emoji, True)


@router.delete("/messages/{message_id}/reactions/{emoji}", response_model=schemas.Message, summary="Unreact")
async def remove_reaction(message_id: MessageId, emoji: Emoji, service: Service) -> schemas.Message:
    return await service.react(message_id, emoji, False)


@router.put("/messages/{message_id}/pin", response_model=schemas.Message, summary="Pin a message")
async def pin(message_id: MessageId, service: Service) -> schemas.Message:
    return await service.set_pinned(message_id, True)


@router.delete("/messages/{message_id}/pin", response_model=schemas.Message, summary="Unpin a message")
async def unpin(message_id: MessageId, service: Service) -> schemas.Message:
    return await service.set_pinned(message_id, False)


# ---------------------------------------------------------------- moderation


@router.post(
    "/messages/{message_id}/reports",
    response_model=schemas.Report,
    status_code=status.HTTP_201_CREATED,
    summary="Report a message to the moderators",
)
async def report_message(
    message_id: MessageId,
    service: Service,
    data: schemas.ReportCreate = Body(default_factory=schemas.ReportCreate),
) -> schemas.Report:
    return await service.report(message_id, data.reason)


@router.get("/reports", response_model=list[schemas.Report], summary="The moderator queue")
async def list_reports(
    service: Service,
    status_filter: Annotated[Literal["open", "resolved", "dismissed"], Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.Report]:
    return await service.list_reports(status_filter, limit)


@router.post(
    "/reports/{report_id}/resolve", response_model=schemas.Report, summary="Resolve or dismiss a report"
)
async def resolve_report(
    report_id: uuid.UUID, data: schemas.ReportResolve, service: Service
) -> schemas.Report:
    return await service.resolve_report(report_id, data)


@router.get(
    "/channels/{channel_id}/restrictions", response_model=list[schemas.Restriction], summary="Bans and mutes"
)
async def list_restrictions(channel_id: ChannelId, service: Service) -> list[schemas.Restriction]:
    return await service.list_restrictions(channel_id)


@router.post(
    "/channels/{channel_id}/restrictions",
    response_model=schemas.Restriction,
    status_code=status.HTTP_201_CREATED,
    summary="Ban or mute a user in this channel",
)
async def restrict(
    channel_id: ChannelId, data: schemas.RestrictionCreate, service: Service
) -> schemas.Restriction:
    return await service.restrict(channel_id, data)


@router.delete(
    "/channels/{channel_id}/restrictions/{restriction_id}", status_code=204, summary="Lift a ban or mute"
)
async def lift_restriction(channel_id: ChannelId, restriction_id: uuid.UUID, service: Service) -> None:
    await service.lift_restriction(channel_id, restriction_id)
