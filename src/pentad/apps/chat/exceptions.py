"""The chat app's errors, rendered as problem+json by the core."""

from __future__ import annotations

from pentad.core.errors import BadRequest, Conflict, NotFound, PermissionDenied, TooManyRequests


class ChannelNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such channel, or you may not see it.", code="channel_not_found")


class MessageNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such message, or you may not see it.", code="message_not_found")


class ChatUserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such chat user in this tenant.", code="chat_user_not_found")


class TenantNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such chat tenant.", code="tenant_not_found")


class Banned(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("You are banned here.", code="banned")


class Muted(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("You are muted here: you can read but not post.", code="muted")


class ChannelArchived(Conflict):
    def __init__(self) -> None:
        super().__init__("The channel is archived; nothing can be posted.", code="channel_archived")


class SlowMode(TooManyRequests):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Slow mode: wait {retry_after} s between messages.",
            code="slow_mode",
            headers={"Retry-After": str(retry_after)},
        )


class BlockedWord(BadRequest):
    def __init__(self) -> None:
        super().__init__("The message contains a word this chat does not allow.", code="blocked_word")


class ClientIdReused(Conflict):
    def __init__(self) -> None:
        super().__init__("This client_id was already used for a different message.", code="client_id_reused")
