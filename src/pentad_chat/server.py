"""ChatServer: the server API (/api/chat/server) for the embedding product's backend, with its `pck_` key.

    async with ChatServer("https://chat.example.com", server_key) as server:
        await server.upsert_user("alice", name="Alice")
        token = await server.create_user_token("alice")   # hand token.token to Alice's client

Requests that are safe to repeat (reads, upserts, revocations, sends with a `client_id`) are retried on
network errors, 5xx and 429 with exponential backoff; everything else raises ChatAPIError at once.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import quote

import httpx

from pentad_chat._http import HttpApi, base_urls
from pentad_chat.models import ChannelState, ChatUserDetail, Member, Message, Restriction, Tenant, UserToken

ChannelKind = Literal["public", "private", "direct", "group"]
MemberRole = Literal["owner", "moderator", "member"]
UserRole = Literal["user", "moderator", "admin", "bot"]


def _user_path(external_id: str) -> str:
    return f"/api/chat/server/users/{quote(external_id, safe='')}"


class ChatServer:
    def __init__(
        self,
        base_url: str,
        server_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_initial: float = 0.25,
        backoff_max: float = 5.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        root, _ = base_urls(base_url)
        self._api = HttpApi(
            root,
            server_key,
            None,
            timeout=timeout,
            retries=retries,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        await self._api.aclose()

    async def __aenter__(self) -> ChatServer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ tenant

    async def tenant(self) -> Tenant:
        """The tenant this key belongs to."""
        return Tenant.model_validate(await self._api.request("GET", "/api/chat/server/tenant", retry=True))

    async def set_blocked_words(self, words: list[str]) -> Tenant:
        """Messages containing any of these words (case-insensitive) are refused from now on."""
        body = {"blocked_words": words}
        path = "/api/chat/server/tenant/blocked-words"
        answer = await self._api.request("PUT", path, json=body, retry=True)
        return Tenant.model_validate(answer)

    # ------------------------------------------------------------ users and tokens

    async def upsert_user(
        self,
        external_id: str,
        *,
        name: str,
        handle: str | None = None,
        image_url: str | None = None,
        email: str | None = None,
        role: UserRole = "user",
        data: dict[str, Any] | None = None,
    ) -> ChatUserDetail:
        """Create or update the user you know as `external_id`."""
        body = {
            "name": name,
            "handle": handle,
            "image_url": image_url,
            "email": email,
            "role": role,
            "data": data or {},
        }
        answer = await self._api.request("PUT", _user_path(external_id), json=body, retry=True)
        return ChatUserDetail.model_validate(answer)

    async def get_user(self, external_id: str) -> ChatUserDetail:
        return ChatUserDetail.model_validate(
            await self._api.request("GET", _user_path(external_id), retry=True)
        )

    async def create_user_token(self, external_id: str, *, ttl: int | None = None) -> UserToken:
        """A short-lived `pcu_` token for the user's client (`ttl` seconds; default: the server's)."""
        body = {"ttl": ttl} if ttl is not None else None
        answer = await self._api.request("POST", _user_path(external_id) + "/tokens", json=body, retry=True)
        return UserToken.model_validate(answer)

    async def revoke_user_tokens(self, external_id: str) -> None:
        """Every token minted for the user so far stops working (open sockets close at their next check)."""
        await self._api.request("POST", _user_path(external_id) + "/revoke-tokens", retry=True)

    async def deactivate_user(self, external_id: str) -> ChatUserDetail:
        answer = await self._api.request("POST", _user_path(external_id) + "/deactivate", retry=True)
        return ChatUserDetail.model_validate(answer)

    async def reactivate_user(self, external_id: str) -> ChatUserDetail:
        answer = await self._api.request("POST", _user_path(external_id) + "/reactivate", retry=True)
        return ChatUserDetail.model_validate(answer)

    # ------------------------------------------------------------ channels and messages

    async def create_channel(
        self,
        created_by: str,
        *,
        kind: ChannelKind = "public",
        name: str = "",
        topic: str = "",
        members: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> ChannelState:
        """A channel owned by `created_by` with `members` (external ids; upsert them first)."""
        body = {
            "kind": kind,
            "name": name,
            "topic": topic,
            "created_by": created_by,
            "members": members or [],
            "data": data or {},
        }
        # Only a direct channel is idempotent (it is answered with the existing one).
        direct = kind == "direct"
        answer = await self._api.request("POST", "/api/chat/server/channels", json=body, retry=direct)
        return ChannelState.model_validate(answer)

    async def add_members(
        self, channel_id: uuid.UUID | str, user_ids: list[str], *, role: MemberRole = "member"
    ) -> list[Member]:
        """Add users (external ids) to a channel."""
        body = {"user_ids": user_ids, "role": role}
        answer = await self._api.request("POST", f"/api/chat/server/channels/{channel_id}/members", json=body)
        return [Member.model_validate(item) for item in answer]

    async def send_message(
        self,
        channel_id: uuid.UUID | str,
        user_id: str,
        text: str = "",
        *,
        client_id: str | None = None,
        type: str = "text",
        payload: dict[str, Any] | None = None,
        parent_id: uuid.UUID | str | None = None,
        attachment_ids: list[uuid.UUID | str] | None = None,
        mentioned_user_ids: list[uuid.UUID | str] | None = None,
    ) -> Message:
        """Post as the user `user_id` (external id; a member of the channel).

        A `client_id` (generated when not given) makes retries safe: the server answers a repeat with the
        original message."""
        body = {
            "user_id": user_id,
            "client_id": client_id or uuid.uuid4().hex,
            "text": text,
            "type": type,
            "payload": payload,
            "parent_id": str(parent_id) if parent_id else None,
            "attachment_ids": [str(a) for a in attachment_ids or ()],
            "mentioned_user_ids": [str(u) for u in mentioned_user_ids or ()],
        }
        answer = await self._api.request(
            "POST", f"/api/chat/server/channels/{channel_id}/messages", json=body, retry=True
        )
        return Message.model_validate(answer)

    # ------------------------------------------------------------ tenant-wide moderation

    async def list_restrictions(self) -> list[Restriction]:
        """Tenant-wide bans and mutes."""
        answer = await self._api.request("GET", "/api/chat/server/restrictions", retry=True)
        return [Restriction.model_validate(item) for item in answer]

    async def restrict(
        self,
        user_id: str,
        kind: Literal["ban", "mute"],
        *,
        reason: str = "",
        duration: int | None = None,
    ) -> Restriction:
        """Ban (no access) or mute (read only) a user (external id) in every channel, for `duration`
        seconds or until lifted."""
        body = {"user_id": user_id, "kind": kind, "reason": reason, "duration": duration}
        answer = await self._api.request("POST", "/api/chat/server/restrictions", json=body)
        return Restriction.model_validate(answer)

    async def lift_restriction(self, restriction_id: uuid.UUID | str) -> None:
        await self._api.request("DELETE", f"/api/chat/server/restrictions/{restriction_id}")
