"""The chat app's named permissions and the channel roles that grant them."""

from __future__ import annotations

from pentad.core.auth.permissions import Permission

CHAT_USE = Permission("chat.use", "Chat as yourself: channels, messages, reactions, read state.")
CHAT_SERVER = Permission("chat.server", "Call a tenant's server API (tenant server keys hold this).")
CHAT_ADMIN = Permission("chat.admin", "Create and manage chat tenants, their keys and moderation.")

CHANNEL_READ = Permission("chat.channel.read", "Read a channel's messages and members.")
CHANNEL_POST = Permission("chat.channel.post", "Post, react and reply in a channel.")
CHANNEL_MODERATE = Permission(
    "chat.channel.moderate", "Delete others' messages, ban, mute, pin, slow mode and read reports."
)
CHANNEL_MANAGE = Permission("chat.channel.manage", "Rename, archive, invite and remove members, set roles.")

CHANNEL_RESOURCE = "chat.channel"

CHANNEL_ROLES = {
    "member": (CHANNEL_READ, CHANNEL_POST),
    "moderator": (CHANNEL_READ, CHANNEL_POST, CHANNEL_MODERATE),
    "owner": (CHANNEL_READ, CHANNEL_POST, CHANNEL_MODERATE, CHANNEL_MANAGE),
}

ALL = (CHAT_USE, CHAT_SERVER, CHAT_ADMIN, CHANNEL_READ, CHANNEL_POST, CHANNEL_MODERATE, CHANNEL_MANAGE)
