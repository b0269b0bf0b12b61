"""The Python SDK of Pentad chat: `ChatServer` for your backend (server key), `ChatClient` for a user.

It speaks the public wire protocols only (the REST API under /api/chat and the /ws realtime socket) and
needs nothing of the Pentad server: httpx, websockets and pydantic. See docs/chat-sdk-python.md.
"""

from __future__ import annotations

from pentad_chat._http import ChatAPIError, ChatClosedError, ChatError, ChatRealtimeError, TokenProvider
from pentad_chat.client import ChatClient, EventCallback, EventStream, OutgoingMessage
from pentad_chat.models import (
    AttachmentRef,
    Channel,
    ChannelEvent,
    ChannelState,
    ChatEvent,
    ChatUser,
    ChatUserDetail,
    ConnectionEvent,
    Member,
    MemberEvent,
    MentionEvent,
    Message,
    MessageEdit,
    MessageEvent,
    MessagePage,
    PresenceEvent,
    ReactionCount,
    ReactionEvent,
    ReadEvent,
    Restriction,
    SyncPage,
    Tenant,
    TypingEvent,
    UnknownEvent,
    UserChannelEvent,
    UserToken,
    parse_event,
)
from pentad_chat.server import ChatServer

__all__ = [
    "AttachmentRef",
    "Channel",
    "ChannelEvent",
    "ChannelState",
    "ChatAPIError",
    "ChatClient",
    "ChatClosedError",
    "ChatError",
    "ChatEvent",
    "ChatRealtimeError",
    "ChatServer",
    "ChatUser",
    "ChatUserDetail",
    "ConnectionEvent",
    "EventCallback",
    "EventStream",
    "Member",
    "MemberEvent",
    "MentionEvent",
    "Message",
    "MessageEdit",
    "MessageEvent",
    "MessagePage",
    "OutgoingMessage",
    "PresenceEvent",
    "ReactionCount",
    "ReactionEvent",
    "ReadEvent",
    "Restriction",
    "SyncPage",
    "Tenant",
    "TokenProvider",
    "TypingEvent",
    "UnknownEvent",
    "UserChannelEvent",
    "UserToken",
    "parse_event",
]
