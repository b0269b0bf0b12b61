"""The chat rules: channels, membership, messages, reactions, read state, typing, presence, moderation.

Services never commit; the request (or job) owns the transaction, and realtime events go out after it
commits (core publish). Every channel operation starts with `channel_access`, so no path skips the rules.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import markdown, notifications, repository, schemas, webhooks
from pentad.apps.chat.access import (
    ChannelAccess,
    ChatActor,
    channel_access,
    require_permission,
    require_post,
)
from pentad.apps.chat.events import (
    ChannelEvent,
    MemberEvent,
    MentionEvent,
    MessageEvent,
    PresenceEvent,
    ReactionEvent,
    ReadEvent,
    TypingEvent,
    UserChannelEvent,
    channel_topic,
    user_topic,
)
from pentad.apps.chat.exceptions import (
    BlockedWord,
    ChannelArchived,
    ChannelNotFound,
    ChatUserNotFound,
    ClientIdReused,
    MessageNotFound,
    SlowMode,
)
from pentad.apps.chat.models import (
    ChatAttachment,
    ChatChannel,
    ChatInvite,
    ChatMember,
    ChatMention,
    ChatMessage,
    ChatMessageEdit,
    ChatReaction,
    ChatReport,
    ChatRestriction,
    ChatUser,
)
from pentad.apps.chat.permissions import CHANNEL_MANAGE, CHANNEL_MODERATE, CHANNEL_POST, CHANNEL_RESOURCE
from pentad.apps.chat.settings import ChatSettings
from pentad.apps.chat.tenancy import restriction_expiry
from pentad.apps.chat.topics import recheck_channel_reader
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.db.base import utcnow
from pentad.core.errors import BadRequest, Conflict, NotFound, PermissionDenied
from pentad.core.platform import Platform
from pentad.core.realtime.publish import publish

REACTION_USERS_SHOWN = 20
PRESENCE_FANOUT_CHANNELS = 200
SMALL_CHANNEL_KINDS = ("direct", "group")
MEMBERS_SHOWN = 20


def user_view(user: ChatUser) -> schemas.ChatUser:
    return schemas.ChatUser.model_validate(user)


def channel_view(channel: ChatChannel) -> schemas.Channel:
    return schemas.Channel.model_validate(channel)


def _word_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)


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


class ChatService:
    def __init__(
        self, session: AsyncSession, platform: Platform, actor: ChatActor, audit_actor: Actor
    ) -> None:
        self.session = session
        self.platform = platform
        self.actor = actor
        self.audit_actor = audit_actor
        self.settings = platform.app_settings(ChatSettings)
        self.views = MessageViews(session, platform)

    async def access(self, channel_id: uuid.UUID) -> ChannelAccess:
        return await channel_access(self.session, self.platform, self.actor, channel_id)

    # ------------------------------------------------------------ channels

    async def list_channels(self, *, include_archived: bool = False) -> list[schemas.ChannelState]:
        rows = await repository.list_member_channels(
            self.session, self.actor.user_id, include_archived=include_archived
        )
        banned = await repository.banned_channel_ids(self.session, self.actor.tenant.id, self.actor.user_id)
        if None in banned:
            return []
        rows = [(c, m) for c, m in rows if c.id not in banned]
        return await self._states(rows)

    async def _states(
        self, rows: Sequence[tuple[ChatChannel, ChatMember | None]]
    ) -> list[schemas.ChannelState]:
        ids = [channel.id for channel, _ in rows]
        counts = await repository.count_members(self.session, ids)
        small = [channel.id for channel, _ in rows if channel.kind in SMALL_CHANNEL_KINDS]
        people = await repository.list_member_users(self.session, small, MEMBERS_SHOWN)
        states = []
        for channel, member in rows:
            read_seq = member.last_read_seq if member else channel.last_seq
            unread, mentions = (0, 0)
            if member is not None and channel.last_seq > read_seq:
                unread, mentions = await repository.count_unread(
                    self.session, channel.id, self.actor.user_id, read_seq
                )
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

    async def get_channel(self, channel_id: uuid.UUID) -> schemas.ChannelState:
        access = await self.access(channel_id)
        return (await self._states([(access.channel, access.member)]))[0]

    async def list_public_channels(self, limit: int, offset: int) -> list[schemas.Channel]:
        channels = await repository.list_public_channels(
            self.session, self.actor.tenant.id, limit=limit, offset=offset
        )
        banned = await repository.banned_channel_ids(self.session, self.actor.tenant.id, self.actor.user_id)
        if None in banned:
            return []
        return [channel_view(c) for c in channels if c.id not in banned]

    async def create_channel(self, data: schemas.ChannelCreate) -> tuple[schemas.ChannelState, bool]:
        """Create a channel with the caller as owner. A direct channel with the same person is returned
        again rather than duplicated (second value False)."""
        tenant = self.actor.tenant
        await self._check_not_banned_in_tenant()
        others = await self._tenant_users(data.members)
        if data.kind == "direct":
            if len(others) != 1 or others[0].id == self.actor.user_id:
                raise BadRequest("A direct channel has exactly one other member.", code="direct_needs_one")
            key = ":".join(sorted(str(u) for u in (self.actor.user_id, others[0].id)))
            existing = await repository.get_direct_channel(self.session, tenant.id, key)
            if existing is not None:
                return await self.get_channel(existing.id), False
        elif data.kind in ("public", "private") and not data.name.strip():
            raise BadRequest("Public and private channels need a name.", code="name_required")
        channel = ChatChannel(
            tenant_id=tenant.id,
            kind=data.kind,
            name=data.name.strip(),
            topic=data.topic,
            data=data.data,
            created_by=self.actor.user_id,
            direct_key=key if data.kind == "direct" else None,
            last_seq=0,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(channel)
                await self.session.flush()
        except IntegrityError:
            # The same direct conversation was created concurrently: answer with that one.
            if data.kind != "direct":
                raise
            existing = await repository.get_direct_channel(self.session, tenant.id, key, latest=True)
            if existing is None:
                raise
            return await self.get_channel(existing.id), False
        owner_role = "member" if data.kind == "direct" else "owner"
        self.session.add(ChatMember(channel_id=channel.id, user_id=self.actor.user_id, role=owner_role))
        for user in others:
            if user.id != self.actor.user_id:
                self.session.add(ChatMember(channel_id=channel.id, user_id=user.id, role="member"))
        await self.session.flush()
        view = channel_view(channel)
        for user in [self.actor.user, *others]:
            publish(self.session, user_topic(user.id), UserChannelEvent(type="channel.added", channel=view))
        audit.record(
            self.session,
            self.audit_actor,
            "chat.channel_created",
            resource_type="chat.channel",
            resource_id=channel.id,
            kind=channel.kind,
        )
        return await self.get_channel(channel.id), True

    async def _tenant_users(self, user_ids: Sequence[uuid.UUID]) -> list[ChatUser]:
        found = await repository.get_users(self.session, user_ids)
        users = []
        for user_id in dict.fromkeys(user_ids):
            user = found.get(user_id)
            if user is None or user.tenant_id != self.actor.tenant.id or user.deactivated_at is not None:
                raise ChatUserNotFound()
            users.append(user)
        return users

    async def _check_not_banned_in_tenant(self) -> None:
        banned = await repository.banned_channel_ids(self.session, self.actor.tenant.id, self.actor.user_id)
        if None in banned:
            raise PermissionDenied("You are banned from this chat.", code="banned")

    async def update_channel(
        self, channel_id: uuid.UUID, data: schemas.ChannelUpdate
    ) -> schemas.ChannelState:
        access = await self.access(channel_id)
        channel = access.channel
        if data.slow_mode_seconds is not None:
            require_permission(access, CHANNEL_MODERATE)
            channel.slow_mode_seconds = data.slow_mode_seconds
        if data.name is not None or data.topic is not None or data.data is not None:
            require_permission(access, CHANNEL_MANAGE)
            if channel.kind == "direct":
                raise BadRequest("Direct channels have no name or topic.", code="direct_channel")
            if data.name is not None:
                channel.name = data.name.strip()
            if data.topic is not None:
                channel.topic = data.topic
            if data.data is not None:
                channel.data = data.data
        await self.session.flush()
        publish(
            self.session,
            channel_topic(channel.id),
            ChannelEvent(type="channel.updated", channel=channel_view(channel)),
        )
        audit.record(
            self.session,
            self.audit_actor,
            "chat.channel_updated",
            resource_type="chat.channel",
            resource_id=channel.id,
            changes=data.model_dump(exclude_none=True, exclude={"data"}),
        )
        return await self.get_channel(channel_id)

    async def set_archived(self, channel_id: uuid.UUID, archived: bool) -> schemas.ChannelState:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MANAGE)
        channel = access.channel
        channel.archived_at = utcnow() if archived else None
        await self.session.flush()
        kind = "channel.archived" if archived else "channel.unarchived"
        publish(
            self.session, channel_topic(channel.id), ChannelEvent(type=kind, channel=channel_view(channel))
        )
        audit.record(
            self.session,
            self.audit_actor,
            f"chat.{kind.replace('.', '_')}",
            resource_type="chat.channel",
            resource_id=channel.id,
        )
        return await self.get_channel(channel_id)

    # ------------------------------------------------------------ members and invites

    async def list_members(self, channel_id: uuid.UUID, limit: int, offset: int) -> list[schemas.Member]:
        await self.access(channel_id)
        rows = await repository.list_members(self.session, channel_id, limit=limit, offset=offset)
        return [self._member_view(member, user) for member, user in rows]

    def _member_view(self, member: ChatMember, user: ChatUser) -> schemas.Member:
        return schemas.Member(
            user=user_view(user),
            role=member.role,
            last_read_seq=member.last_read_seq,
            last_delivered_seq=member.last_delivered_seq,
            last_read_at=member.last_read_at,
            joined_at=member.created_at,
        )

    async def join(self, channel_id: uuid.UUID) -> schemas.ChannelState:
        access = await self.access(channel_id)
        if access.member is not None:
            return await self.get_channel(channel_id)
        if access.channel.kind != "public":
            raise PermissionDenied("Only public channels can be joined freely.", code="not_public")
        if access.channel.archived_at is not None:
            raise ChannelArchived()
        await self._add_member(access.channel, self.actor.user, "member")
        return await self.get_channel(channel_id)

    async def _add_member(self, channel: ChatChannel, user: ChatUser, role: str) -> ChatMember:
        member = ChatMember(
            channel_id=channel.id,
            user_id=user.id,
            role=role,
            last_read_seq=channel.last_seq,
            last_delivered_seq=channel.last_seq,
        )
        self.session.add(member)
        invite = await repository.get_invite_for(self.session, channel.id, user.id)
        if invite is not None:
            await self.session.delete(invite)
        await self.session.flush()
        publish(
            self.session,
            channel_topic(channel.id),
            MemberEvent(type="member.added", channel_id=channel.id, user=user_view(user), role=role),
        )
        publish(
            self.session,
            user_topic(user.id),
            UserChannelEvent(type="channel.added", channel=channel_view(channel)),
        )
        return member

    async def add_members(self, channel_id: uuid.UUID, data: schemas.MemberAdd) -> list[schemas.Member]:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MANAGE)
        if access.channel.kind == "direct":
            raise BadRequest("Direct channels keep their two members.", code="direct_channel")
        users = await self._tenant_users(data.user_ids)
        present = await repository.member_user_ids(self.session, channel_id, [u.id for u in users])
        added = []
        for user in users:
            if user.id in present:
                continue
            member = await self._add_member(access.channel, user, data.role)
            added.append(self._member_view(member, user))
        audit.record(
            self.session,
            self.audit_actor,
            "chat.members_added",
            resource_type="chat.channel",
            resource_id=channel_id,
            user_ids=[str(m.user.id) for m in added],
            role=data.role,
        )
        return added

    async def update_member(self, channel_id: uuid.UUID, user_id: uuid.UUID, role: str) -> schemas.Member:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MANAGE)
        member = await repository.get_member(self.session, channel_id, user_id)
        user = await repository.get_user(self.session, user_id)
        if member is None or user is None:
            raise NotFound("That user is not a member of this channel.", code="member_not_found")
        member.role = role
        await self.session.flush()
        publish(
            self.session,
            channel_topic(channel_id),
            MemberEvent(type="member.updated", channel_id=channel_id, user=user_view(user), role=role),
        )
        audit.record(
            self.session,
            self.audit_actor,
            "chat.member_role_changed",
            resource_type="chat.channel",
            resource_id=channel_id,
            user_id=str(user_id),
            role=role,
        )
        return self._member_view(member, user)

    async def remove_member(self, channel_id: uuid.UUID, user_id: uuid.UUID) -> None:
        access = await self.access(channel_id)
        if user_id != self.actor.user_id:
            require_permission(access, CHANNEL_MANAGE)
        elif access.channel.kind == "direct":
            raise BadRequest("You cannot leave a direct conversation.", code="direct_channel")
        user = await repository.get_user(self.session, user_id)
        if user is None or not await repository.delete_member(self.session, channel_id, user_id):
            raise NotFound("That user is not a member of this channel.", code="member_not_found")
        publish(
            self.session,
            channel_topic(channel_id),
            MemberEvent(type="member.removed", channel_id=channel_id, user=user_view(user), role=None),
        )
        publish(
            self.session,
            user_topic(user_id),
            UserChannelEvent(type="channel.removed", channel=channel_view(access.channel)),
        )
        recheck_channel_reader(self.session, channel_id, user)
        action = "chat.member_left" if user_id == self.actor.user_id else "chat.member_removed"
        audit.record(
            self.session,
            self.audit_actor,
            action,
            resource_type="chat.channel",
            resource_id=channel_id,
            user_id=str(user_id),
        )

    async def invite(self, channel_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> int:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MANAGE)
        if access.channel.kind == "direct":
            raise BadRequest("Direct channels keep their two members.", code="direct_channel")
        users = await self._tenant_users(user_ids)
        present = await repository.member_user_ids(self.session, channel_id, [u.id for u in users])
        invited = 0
        for user in users:
            if user.id in present or await repository.get_invite_for(self.session, channel_id, user.id):
                continue
            self.session.add(
                ChatInvite(channel_id=channel_id, user_id=user.id, invited_by=self.actor.user_id)
            )
            publish(
                self.session,
                user_topic(user.id),
                UserChannelEvent(type="invite.received", channel=channel_view(access.channel)),
            )
            invited += 1
        await self.session.flush()
        return invited

    async def list_invites(self) -> list[schemas.Invite]:
        rows = await repository.list_invites(self.session, self.actor.user_id)
        return [
            schemas.Invite(
                id=invite.id,
                channel=channel_view(channel),
                invited_by=invite.invited_by,
                created_at=invite.created_at,
            )
            for invite, channel in rows
        ]

    async def answer_invite(self, invite_id: uuid.UUID, accept: bool) -> schemas.ChannelState | None:
        invite = await repository.get_invite(self.session, invite_id)
        if invite is None or invite.user_id != self.actor.user_id:
            raise NotFound("No such invitation.", code="invite_not_found")
        channel = await repository.get_channel(self.session, invite.channel_id)
        if not accept or channel is None:
            await self.session.delete(invite)
            await self.session.flush()
            return None
        banned = await repository.banned_channel_ids(self.session, self.actor.tenant.id, self.actor.user_id)
        if channel.id in banned or None in banned:
            raise PermissionDenied("You are banned from this channel.", code="banned")
        await self._add_member(channel, self.actor.user, "member")
        return await self.get_channel(channel.id)

    # ------------------------------------------------------------ messages

    async def send_message(
        self, channel_id: uuid.UUID, data: schemas.MessageCreate
    ) -> tuple[schemas.Message, bool]:
        """Post a message; (message, created). A retry with the same client_id returns the original."""
        if data.client_id is not None:
            existing = await repository.get_message_by_client_id(
                self.session, self.actor.user_id, data.client_id
            )
            if existing is not None:
                return await self._replay(existing, channel_id), False
        access = await self.access(channel_id)
        require_post(access)
        self._check_content(data.text, data.type, data.payload)
        parent = await self._thread_parent(channel_id, data.parent_id)
        member = access.member
        assert member is not None
        now = utcnow()
        self._check_slow_mode(access, member, now)
        html = markdown.render(data.text) if data.text else ""
        handles, mentions_channel = markdown.mentioned_handles(data.text)
        message = ChatMessage(
            channel_id=channel_id,
            user_id=self.actor.user_id,
            client_id=data.client_id,
            parent_id=parent.id if parent else None,
            type=data.type,
            text=data.text,
            html=html,
            payload=data.payload,
            mentions_channel=mentions_channel,
            has_attachments=bool(data.attachment_ids),
            created_at=now,
        )
        message_at = now if parent is None else None
        if data.client_id is None or self.session.get_bind().dialect.name == "sqlite":
            # No race to lose: without a client_id nothing can collide, and SQLite's write transactions
            # (BEGIN IMMEDIATE) run one at a time, so the check above already saw any earlier retry.
            message.seq = message.revision = await repository.next_seq(
                self.session, channel_id, message_at=message_at
            )
            self.session.add(message)
            await self.session.flush()
        else:
            try:
                # The sequence number is taken inside the savepoint: a send that loses a client_id race gives
                # it back, so the channel's numbers stay gapless.
                async with self.session.begin_nested():
                    message.seq = message.revision = await repository.next_seq(
                        self.session, channel_id, message_at=message_at
                    )
                    self.session.add(message)
                    await self.session.flush()
            except IntegrityError:
                # A concurrent retry with the same client_id won the race; answer with its message.
                existing = await repository.get_message_by_client_id(
                    self.session, self.actor.user_id, data.client_id, latest=True
                )
                if existing is None:
                    raise
                return await self._replay(existing, channel_id), False
        seq = message.seq
        await self._bind_attachments(message, data.attachment_ids)
        mentioned = await self._record_mentions(message, handles, data.mentioned_user_ids)
        member.last_sent_at = now
        await repository.advance_read(self.session, member, read_seq=seq, delivered_seq=seq)
        parent_view = None
        if parent is not None:
            parent.reply_count += 1
            parent.last_reply_at = now
            parent.revision = seq
            await self.session.flush()
            parent_view = await self.views.one(parent)
        view = await self.views.new(message, self.actor.user, sorted(mentioned))
        publish(
            self.session,
            channel_topic(channel_id),
            MessageEvent(
                type="message.new", channel_id=channel_id, seq=seq, message=view, parent=parent_view
            ),
        )
        # The sender has read their own message: every subscriber can tell from message.new, so no
        # read.updated goes out (it would double the fan-out of every send).
        for user_id in mentioned:
            publish(self.session, user_topic(user_id), MentionEvent(channel_id=channel_id, message=view))
        await webhooks.dispatch(self.session, self.platform, self.actor.tenant.id, "message.new", view)
        await notifications.message_posted(self.session, self.platform, access.channel, view, mentioned)
        return view, True

    async def _replay(self, existing: ChatMessage, channel_id: uuid.UUID) -> schemas.Message:
        if existing.channel_id != channel_id:
            raise ClientIdReused()
        await self.access(channel_id)
        return await self.views.one(existing)

    def _check_content(self, text: str, message_type: str, payload: dict[str, Any] | None) -> None:
        if len(text) > self.settings.max_message_length:
            raise BadRequest(
                f"The text is longer than {self.settings.max_message_length} characters.",
                code="message_too_long",
            )
        if payload is not None and len(orjson.dumps(payload)) > self.settings.max_payload_bytes:
            raise BadRequest(
                f"The payload is larger than {self.settings.max_payload_bytes} bytes.",
                code="payload_too_large",
            )
        if message_type == "text" and not text.strip() and payload is None:
            raise BadRequest("A text message needs text.", code="empty_message")
        pattern = _word_pattern(self.actor.tenant.blocked_words)
        if pattern is not None and text and pattern.search(text):
            raise BlockedWord()

    def _check_slow_mode(self, access: ChannelAccess, member: ChatMember, now: Any) -> None:
        seconds = access.channel.slow_mode_seconds
        if not seconds or access.has(CHANNEL_MODERATE) or member.last_sent_at is None:
            return
        wait = seconds - (now - member.last_sent_at).total_seconds()
        if wait > 0:
            raise SlowMode(int(wait) + 1)

    async def _thread_parent(
        self, channel_id: uuid.UUID, parent_id: uuid.UUID | None, *, replying: bool = True
    ) -> ChatMessage | None:
        """A thread's first message; once deleted it takes no new replies, but its thread stays readable."""
        if parent_id is None:
            return None
        parent = await repository.get_message(self.session, parent_id)
        if parent is None or parent.channel_id != channel_id:
            raise MessageNotFound()
        if parent.parent_id is not None:
            raise BadRequest("Reply to the thread's first message, not to a reply.", code="nested_thread")
        if replying and parent.deleted_at is not None:
            raise BadRequest("That message was deleted.", code="message_deleted")
        return parent

    async def _bind_attachments(self, message: ChatMessage, attachment_ids: Sequence[uuid.UUID]) -> None:
        if not attachment_ids:
            return
        found = await repository.unbound_attachments(
            self.session, attachment_ids, message.channel_id, self.actor.user_id
        )
        if len(found) != len(set(attachment_ids)):
            raise BadRequest(
                "Attach only files you uploaded to this channel and have not sent yet.", code="bad_attachment"
            )
        for attachment in found:
            attachment.message_id = message.id
        await self.session.flush()

    async def _record_mentions(
        self, message: ChatMessage, handles: set[str], user_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        candidates = {
            u.id for u in await repository.get_users_by_handles(self.session, self.actor.tenant.id, handles)
        }
        candidates |= set(user_ids)
        candidates.discard(self.actor.user_id)
        # Only members are notified: mentioning someone does not leak a private channel to them.
        mentioned = await repository.member_user_ids(self.session, message.channel_id, candidates)
        for user_id in mentioned:
            self.session.add(
                ChatMention(
                    message_id=message.id, user_id=user_id, channel_id=message.channel_id, seq=message.seq
                )
            )
        if mentioned:
            await self.session.flush()
        return mentioned

    async def list_messages(
        self,
        channel_id: uuid.UUID,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        parent_id: uuid.UUID | None = None,
    ) -> schemas.MessagePage:
        access = await self.access(channel_id)
        if parent_id is not None:
            await self._thread_parent(channel_id, parent_id, replying=False)
        limit = min(limit, self.settings.history_page_max)
        rows = await repository.list_messages(
            self.session, channel_id, parent_id=parent_id, before=before, after=after, limit=limit
        )
        has_more = len(rows) > limit
        rows = rows[:limit]
        if after is None:
            rows.reverse()
        return schemas.MessagePage(
            messages=await self.views.build(rows), has_more=has_more, last_seq=access.channel.last_seq
        )

    async def sync(self, channel_id: uuid.UUID, since: int, limit: int) -> schemas.SyncPage:
        access = await self.access(channel_id)
        limit = min(limit, self.settings.history_page_max)
        rows = await repository.list_changes(self.session, channel_id, since, limit + 1)
        page = rows[:limit]
        # A thread reply and its parent share a revision; a page never ends between them, or `since=<last
        # revision>` would skip the second one.
        if len(rows) > limit and rows[limit].revision == page[-1].revision:
            page.append(rows[limit])
        has_more = len(rows) > len(page)
        last_seq = access.channel.last_seq
        # The channel row was read before the changes, when every revision up to its last_seq was
        # committed: the final page covers the channel up to there.
        next_since = page[-1].revision if has_more else max(since, last_seq, page[-1].revision if page else 0)
        return schemas.SyncPage(
            messages=await self.views.build(page), has_more=has_more, next_since=next_since, last_seq=last_seq
        )

    async def _message_access(self, message_id: uuid.UUID) -> tuple[ChatMessage, ChannelAccess]:
        message = await repository.get_message(self.session, message_id)
        if message is None:
            raise MessageNotFound()
        try:
            access = await self.access(message.channel_id)
        except ChannelNotFound:
            raise MessageNotFound() from None
        return message, access

    async def get_message(self, message_id: uuid.UUID) -> schemas.Message:
        message, _ = await self._message_access(message_id)
        return await self.views.one(message)

    async def message_history(self, message_id: uuid.UUID) -> list[schemas.MessageEdit]:
        message, _ = await self._message_access(message_id)
        return [
            schemas.MessageEdit.model_validate(e)
            for e in await repository.list_edits(self.session, message.id)
        ]

    async def update_message(self, message_id: uuid.UUID, data: schemas.MessageUpdate) -> schemas.Message:
        message, access = await self._message_access(message_id)
        if message.user_id != self.actor.user_id:
            raise PermissionDenied("Only the author can edit a message.", code="not_author")
        require_post(access)
        if message.deleted_at is not None:
            raise Conflict("A deleted message cannot be edited.", code="message_deleted")
        text = data.text if data.text is not None else message.text
        payload = data.payload if data.payload is not None else message.payload
        self._check_content(text, message.type, payload)
        if text == message.text and payload == message.payload:
            return await self.views.one(message)
        self.session.add(
            ChatMessageEdit(
                message_id=message.id,
                text=message.text,
                payload=message.payload,
                edited_by=self.actor.user_id,
            )
        )
        handles, mentions_channel = markdown.mentioned_handles(text)
        message.text, message.payload = text, payload
        message.html = markdown.render(text) if text else ""
        message.mentions_channel = mentions_channel
        message.edited_at = utcnow()
        message.revision = await repository.next_seq(self.session, message.channel_id)
        await repository.delete_mentions(self.session, message.id)
        await self.session.flush()
        await self._record_mentions(message, handles, [])
        return await self._publish_change(message, "message.updated")

    async def _publish_change(self, message: ChatMessage, kind: Any) -> schemas.Message:
        await self.session.flush()
        view = await self.views.one(message)
        publish(
            self.session,
            channel_topic(message.channel_id),
            MessageEvent(type=kind, channel_id=message.channel_id, seq=message.revision, message=view),
        )
        await webhooks.dispatch(self.session, self.platform, self.actor.tenant.id, kind, view)
        return view

    async def delete_message(self, message_id: uuid.UUID) -> schemas.Message:
        message, access = await self._message_access(message_id)
        own = message.user_id == self.actor.user_id
        if not own:
            require_permission(access, CHANNEL_MODERATE)
        if message.deleted_at is not None:
            return await self.views.one(message)
        # A tombstone keeps nothing of what was said: no text, no earlier versions, no files offered.
        message.text, message.html, message.payload = "", "", None
        message.has_attachments = False
        message.deleted_at = utcnow()
        message.pinned_at = None
        message.revision = await repository.next_seq(self.session, message.channel_id)
        await repository.delete_mentions(self.session, message.id)
        await repository.delete_edits(self.session, message.id)
        if not own:
            audit.record(
                self.session,
                self.audit_actor,
                "chat.message_deleted_by_moderator",
                resource_type="chat.message",
                resource_id=message.id,
                channel_id=str(message.channel_id),
                author_id=str(message.user_id),
            )
        return await self._publish_change(message, "message.deleted")

    async def set_pinned(self, message_id: uuid.UUID, pinned: bool) -> schemas.Message:
        message, access = await self._message_access(message_id)
        require_permission(
            access, CHANNEL_MODERATE if access.channel.kind in ("public", "private") else CHANNEL_POST
        )
        if message.deleted_at is not None:
            raise Conflict("A deleted message cannot be pinned.", code="message_deleted")
        if (message.pinned_at is not None) == pinned:
            return await self.views.one(message)
        message.pinned_at = utcnow() if pinned else None
        message.pinned_by = self.actor.user_id if pinned else None
        message.revision = await repository.next_seq(self.session, message.channel_id)
        return await self._publish_change(message, "message.updated")

    async def list_pinned(self, channel_id: uuid.UUID) -> list[schemas.Message]:
        await self.access(channel_id)
        return await self.views.build(await repository.list_pinned(self.session, channel_id, 100))

    async def react(self, message_id: uuid.UUID, emoji: str, add: bool) -> schemas.Message:
        message, access = await self._message_access(message_id)
        require_post(access)
        if message.deleted_at is not None:
            raise Conflict("A deleted message cannot be reacted to.", code="message_deleted")
        existing = await repository.get_reaction(self.session, message.id, self.actor.user_id, emoji)
        if add == (existing is not None):
            return await self.views.one(message)
        if add:
            self.session.add(ChatReaction(message_id=message.id, user_id=self.actor.user_id, emoji=emoji))
        else:
            assert existing is not None
            await self.session.delete(existing)
        message.revision = await repository.next_seq(self.session, message.channel_id)
        await self.session.flush()
        view = await self.views.one(message)
        event = ReactionEvent(
            type="reaction.added" if add else "reaction.removed",
            channel_id=message.channel_id,
            seq=message.revision,
            user_id=self.actor.user_id,
            emoji=emoji,
            message=view,
        )
        publish(self.session, channel_topic(message.channel_id), event)
        await webhooks.dispatch(self.session, self.platform, self.actor.tenant.id, event.type, event)
        return view

    # ------------------------------------------------------------ read state, typing, presence

    async def mark(
        self, channel_id: uuid.UUID, *, read_seq: int | None, delivered_seq: int | None
    ) -> schemas.ChannelState:
        access = await self.access(channel_id)
        member = access.member
        if member is None:
            raise PermissionDenied("Only members keep read state.", code="not_a_member")
        last = access.channel.last_seq
        read_seq = min(read_seq, last) if read_seq is not None else None
        delivered_seq = min(delivered_seq, last) if delivered_seq is not None else None
        if await repository.advance_read(
            self.session, member, read_seq=read_seq, delivered_seq=delivered_seq
        ):
            publish(
                self.session,
                channel_topic(channel_id),
                ReadEvent(
                    channel_id=channel_id,
                    user_id=self.actor.user_id,
                    last_read_seq=member.last_read_seq,
                    last_delivered_seq=member.last_delivered_seq,
                ),
            )
        return (await self._states([(access.channel, member)]))[0]

    async def typing(self, channel_id: uuid.UUID, active: bool, parent_id: uuid.UUID | None) -> None:
        access = await self.access(channel_id)
        require_post(access)
        publish(
            self.session,
            channel_topic(channel_id),
            TypingEvent(
                type="typing.start" if active else "typing.stop",
                channel_id=channel_id,
                user=user_view(self.actor.user),
                parent_id=parent_id,
            ),
        )

    async def set_presence(self, status: str) -> schemas.ChatUser:
        user = self.actor.user
        changed = user.presence != status
        user.presence = status
        user.last_seen_at = utcnow()
        await self.session.flush()
        view = user_view(user)
        if changed:
            for channel_id in await repository.list_member_channel_ids(
                self.session, user.id, PRESENCE_FANOUT_CHANNELS
            ):
                publish(self.session, channel_topic(channel_id), PresenceEvent(user=view))
        return view

    # ------------------------------------------------------------ moderation

    async def restrict(self, channel_id: uuid.UUID, data: schemas.RestrictionCreate) -> schemas.Restriction:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MODERATE)
        target = (await self._tenant_users([data.user_id]))[0]
        if target.id == self.actor.user_id:
            raise BadRequest("You cannot ban or mute yourself.", code="self_restriction")
        # A ban also removes the member, so a moderator could otherwise throw out the channel's owner.
        target_member = await repository.get_member(self.session, channel_id, target.id)
        if (
            target_member is not None
            and CHANNEL_MODERATE.key
            in self.platform.permissions.resource_role_permissions(CHANNEL_RESOURCE, target_member.role)
            and not access.has(CHANNEL_MANAGE)
        ):
            raise PermissionDenied(
                "Only the channel's managers can ban or mute its moderators.", code="target_is_moderator"
            )
        expires = restriction_expiry(data.duration)
        restriction = ChatRestriction(
            tenant_id=self.actor.tenant.id,
            channel_id=channel_id,
            user_id=target.id,
            kind=data.kind,
            reason=data.reason,
            expires_at=expires,
            created_by=self.actor.user_id,
        )
        self.session.add(restriction)
        if data.kind == "ban" and await repository.delete_member(self.session, channel_id, target.id):
            publish(
                self.session,
                channel_topic(channel_id),
                MemberEvent(type="member.removed", channel_id=channel_id, user=user_view(target), role=None),
            )
            publish(
                self.session,
                user_topic(target.id),
                UserChannelEvent(type="channel.removed", channel=channel_view(access.channel)),
            )
        if data.kind == "ban":
            recheck_channel_reader(self.session, channel_id, target)
        await self.session.flush()
        audit.record(
            self.session,
            self.audit_actor,
            "chat.user_banned" if data.kind == "ban" else "chat.user_muted",
            resource_type="chat.channel",
            resource_id=channel_id,
            user_id=str(target.id),
            reason=data.reason,
            expires_at=expires.isoformat() if expires else None,
        )
        return schemas.Restriction.model_validate(restriction)

    async def list_restrictions(self, channel_id: uuid.UUID) -> list[schemas.Restriction]:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MODERATE)
        rows = await repository.list_restrictions(self.session, self.actor.tenant.id, channel_id)
        return [schemas.Restriction.model_validate(r) for r in rows]

    async def lift_restriction(self, channel_id: uuid.UUID, restriction_id: uuid.UUID) -> None:
        access = await self.access(channel_id)
        require_permission(access, CHANNEL_MODERATE)
        restriction = await repository.get_restriction(self.session, restriction_id)
        if restriction is None or restriction.channel_id != channel_id:
            raise NotFound("No such ban or mute in this channel.", code="restriction_not_found")
        await self.session.delete(restriction)
        await self.session.flush()
        audit.record(
            self.session,
            self.audit_actor,
            f"chat.{restriction.kind}_lifted",
            resource_type="chat.channel",
            resource_id=channel_id,
            user_id=str(restriction.user_id),
        )

    async def report(self, message_id: uuid.UUID, reason: str) -> schemas.Report:
        message, _ = await self._message_access(message_id)
        if message.user_id == self.actor.user_id:
            raise BadRequest("You cannot report your own message.", code="own_message")
        existing = await repository.get_report_by(self.session, message.id, self.actor.user_id)
        if existing is not None:
            return schemas.Report.model_validate(existing)
        report = ChatReport(
            tenant_id=self.actor.tenant.id,
            channel_id=message.channel_id,
            message_id=message.id,
            reporter_id=self.actor.user_id,
            reason=reason,
        )
        self.session.add(report)
        await self.session.flush()
        audit.record(
            self.session,
            self.audit_actor,
            "chat.message_reported",
            resource_type="chat.message",
            resource_id=message.id,
            report_id=str(report.id),
        )
        return schemas.Report.model_validate(report)

    async def list_reports(self, status: str, limit: int) -> list[schemas.Report]:
        """The moderator queue: every report of the tenant for tenant moderators, else those of the
        channels the caller moderates."""
        channel_ids: list[uuid.UUID] | None = None
        if self.actor.user.role not in ("admin", "moderator"):
            channel_ids = await repository.moderated_channel_ids(self.session, self.actor.user_id)
        rows = await repository.list_reports(
            self.session, self.actor.tenant.id, channel_ids=channel_ids, status=status, limit=limit
        )
        return [schemas.Report.model_validate(r) for r in rows]

    async def resolve_report(self, report_id: uuid.UUID, data: schemas.ReportResolve) -> schemas.Report:
        report = await repository.get_report(self.session, report_id)
        if report is None or report.tenant_id != self.actor.tenant.id:
            raise NotFound("No such report.", code="report_not_found")
        try:
            access = await self.access(report.channel_id)
        except ChannelNotFound:
            raise NotFound("No such report.", code="report_not_found") from None
        require_permission(access, CHANNEL_MODERATE)
        if data.delete_message:
            await self.delete_message(report.message_id)
        report.status = data.status
        report.resolution = data.resolution
        report.resolved_by = self.actor.user_id
        report.resolved_at = utcnow()
        await self.session.flush()
        audit.record(
            self.session,
            self.audit_actor,
            f"chat.report_{data.status}",
            resource_type="chat.report",
            resource_id=report.id,
            message_deleted=data.delete_message,
        )
        return schemas.Report.model_validate(report)
