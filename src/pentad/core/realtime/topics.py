"""Topic patterns that apps register, and the authorisation question the hub asks them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth.principal import Principal

if TYPE_CHECKING:
    from pentad.core.platform import Platform

TopicAction = Literal["subscribe", "publish", "presence"]


@dataclass(frozen=True)
class TopicAccess:
    """What the hub asks an app's authorise callback: may `principal` do `action` on `topic`?"""

    principal: Principal
    topic: str
    params: Mapping[str, str]
    action: TopicAction
    session: AsyncSession
    platform: Platform


Authorize = Callable[[TopicAccess], Awaitable[bool]]


@dataclass(frozen=True)
class TopicSpec:
    """A family of topics, e.g. `chat.channel.{channel_id}`; each `{name}` matches one segment without dots.

    history_size / history_ttl bound the replay buffer used for resume; client_publish lets clients publish
    (typing indicators); presence turns on join/leave tracking. Everything not allowed is denied.
    """

    pattern: str
    authorize: Authorize
    history_size: int = 100
    history_ttl: float = 3600.0
    client_publish: bool = False
    presence: bool = False
