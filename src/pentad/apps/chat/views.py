"""API views of chat rows: users, channels, members, channel states and messages (loaded in bulk)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.models import ChatAttachment, ChatChannel, ChatMember, ChatMessage, ChatUser
from pentad.core.platform import Platform

REACTION_USERS_SHOWN = 20
SMALL_CHANNEL_KINDS = ("direct", "group")
MEMBERS_SHOWN = 20


def user_view(user: ChatUser) -> schemas.ChatUser:
    return schemas.ChatUser.model_validate(user)


def channel_view(channel: ChatChannel) -> schemas.Channel:
    return schemas.Channel.model_validate(channel)


def member_view(member: ChatMember, user: ChatUser) -> schemas.Member:
    return schemas.Member(
        user=user_view(user),
        role=member.role,
        last_read_seq=member.last_read_seq,
        last_delivered_seq=member.last_delivered_seq,
        last_read_at=member.last_read_at,
        joined_at=member.created_at,
    )


async def channel_states(
    session: AsyncSession, user_id: uuid.UUID, rows: Sequence[tuple[ChatChannel, ChatMember | None]]
) -> list[schemas.ChannelState]:
    """Channels as `user_id` sees them: their role, read position, unread counts and the member count
    (the members themselves for direct and group conversations)."""
    ids = [channel.id for channel, _ in rows]
    counts = await repository.count_members(session, ids)
    small = [channel.id for channel, _ in rows if channel.kind in SMALL_CHANNEL_KINDS]
    people = await repository.list_member_users(session, small, MEMBERS_SHOWN)
    states = []
    for channel, member in rows:
        read_seq = member.last_read_seq if member else channel.last_seq
        unread, mentions = (0, 0)
        if member is not None and channel.last_seq > read_seq:
            unread, mentions = await repository.count_unread(session, channel.id, user_id, read_seq)
        states.append(
            schemas.ChannelState(
                **channel_view(channel).model_dump(),
                role=member.role if member else None,
                last_read_seq=read_seq,
                unread_count=unread,
                unread_mentions=mentions,
                member_count=counts.get(channel.id, 0),
                members=[user_view(u) for u in people.get(channel.id, [])],
            )
        )
    return states


class MessageViews:
    """Turns message rows into API messages, loading authors, mentions, attachments and reactions in bulk."""

    def __init__(self, session: AsyncSession, platform: Platform) -> None:
        self.session = session
        self.platform = platform

    async def build(self, messages: Sequence[ChatMessage]) -> list[schemas.Message]:
        if not messages:
            return []
        ids = [m.id for m in messages]
        users = await repository.get_users(self.session, {m.user_id for m in messages if m.user_id})
        mentions = await repository.mentions_of(self.session, ids)
        reactions = await repository.reactions_of(self.session, ids, REACTION_USERS_SHOWN)
        return await self._assemble(messages, users, mentions, reactions)

    async def new(
        self, message: ChatMessage, author: ChatUser, mentioned: Sequence[uuid.UUID]
    ) -> schemas.Message:
        """The view of a message just sent: author and mentions are known and it has no reactions yet, so
        only attachments (if any) are read back — this is the send hot path."""
        return (await self._assemble([message], {author.id: author}, {message.id: list(mentioned)}, {}))[0]

    async def _assemble(
        self,
        messages: Sequence[ChatMessage],
        users: dict[uuid.UUID, ChatUser],
        mentions: dict[uuid.UUID, list[uuid.UUID]],
        reactions: dict[uuid.UUID, list[tuple[str, int, list[uuid.UUID]]]],
    ) -> list[schemas.Message]:
        attachments = await repository.attachments_of(
            self.session, [m.id for m in messages if m.has_attachments]
        )
        views = []
        for message in messages:
            author = users.get(message.user_id) if message.user_id else None
            views.append(
                schemas.Message(
                    id=message.id,
                    channel_id=message.channel_id,
                    seq=message.seq,
                    revision=message.revision,
                    client_id=message.client_id,
                    user=user_view(author) if author else None,
                    parent_id=message.parent_id,
                    type=message.type,
                    text=message.text,
                    html=message.html,
                    payload=message.payload,
                    mentioned_user_ids=mentions.get(message.id, []),
                    mentions_channel=message.mentions_channel,
                    attachments=[await self.attachment(a) for a in attachments.get(message.id, [])],
                    reactions=[
                        schemas.ReactionCount(emoji=emoji, count=count, user_ids=reactors)
                        for emoji, count, reactors in reactions.get(message.id, [])
                    ],
                    reply_count=message.reply_count,
                    last_reply_at=message.last_reply_at,
                    pinned_at=message.pinned_at,
                    edited_at=message.edited_at,
                    deleted_at=message.deleted_at,
                    created_at=message.created_at,
                )
            )
        return views

    async def one(self, message: ChatMessage) -> schemas.Message:
        return (await self.build([message]))[0]

    async def attachment(self, attachment: ChatAttachment) -> schemas.AttachmentRef:
        storage = self.platform.storage
        thumbnail = await storage.signed_url(attachment.thumbnail_key) if attachment.thumbnail_key else None
        return schemas.AttachmentRef(
            id=attachment.id,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            width=attachment.width,
            height=attachment.height,
            url=await storage.signed_url(attachment.storage_key, download_name=attachment.filename),
            thumbnail_url=thumbnail,
        )
