"""Topic patterns that apps register, and the authorisation question the hub asks them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext

TopicAction = Literal["subscribe", "publish", "presence", "call"]


@dataclass(frozen=True)
class TopicAccess:
    """What the hub asks an app's authorise callback: may `principal` do `action` on `topic`?"""

    principal: Principal
    topic: str
    params: Mapping[str, str]
    action: TopicAction
    session: AsyncSession
    platform: AppContext


Authorize = Callable[[TopicAccess], Awaitable[bool]]


@dataclass(frozen=True)
class TopicCall:
    """A client's `call` of a topic family's handler: what it sent, who it is, and a writing session
    (committed after the handler returns, so `publish` from it goes out after the commit)."""

    principal: Principal
    topic: str
    params: Mapping[str, str]
    method: str
    data: Mapping[str, Any]
    session: AsyncSession
    platform: AppContext
    connection_id: str


CallHandler = Callable[[TopicCall], Awaitable[BaseModel | None]]
"""Answers a call; the model becomes the acknowledgement's result. Raise AppError to refuse
(the client gets `call_failed` with its message); anything else is logged and answered as a failure."""


@dataclass(frozen=True)
class TopicSpec:
    """A family of topics, e.g. `chat.channel.{channel_id}`; each `{name}` matches one segment without dots.

    `requires` (mandatory, keyword) is the permission the REST routes reading the same data require: the
    hub checks it (after the credential's scopes) before it asks `authorize`, for every action, so an API
    key or token without it is refused here as it is over REST. history_size / history_ttl bound the
    replay buffer used for resume; client_publish lets clients publish (typing indicators); presence turns
    on join/leave tracking; calls maps method names to server-side handlers of client `call` frames (an
    RPC answered to the calling connection only). Everything not allowed is denied.
    """

    pattern: str
    authorize: Authorize
    history_size: int = 100
    history_ttl: float = 3600.0
    client_publish: bool = False
    presence: bool = False
    calls: Mapping[str, CallHandler] = field(default_factory=dict, hash=False, compare=False)
    requires: Permission = field(kw_only=True)


class TopicConflict(ValueError):
    """Raised when a pattern is registered twice."""


_PARAMETER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.split("."):
        parameter = _PARAMETER.match(segment)
        parts.append(f"(?P<{parameter.group(1)}>[^.]+)" if parameter else re.escape(segment))
    return re.compile(r"\.".join(parts))


@dataclass(frozen=True)
class TopicMatch:
    spec: TopicSpec
    params: Mapping[str, str]


class TopicRegistry:
    """The topic families the hub knows: the apps' (AppSpec.topics) and the core's own (`register`)."""

    def __init__(self, specs: Iterable[TopicSpec] = ()) -> None:
        self._compiled: list[tuple[re.Pattern[str], TopicSpec]] = []
        for spec in specs:
            self.register(spec)

    def register(self, spec: TopicSpec) -> None:
        if any(known.pattern == spec.pattern for _, known in self._compiled):
            raise TopicConflict(f"topic pattern {spec.pattern!r} is registered twice")
        self._compiled.append((_compile(spec.pattern), spec))

    def specs(self) -> list[TopicSpec]:
        """Every registered family, in registration order."""
        return [spec for _, spec in self._compiled]

    def match(self, topic: str) -> TopicMatch | None:
        """The spec whose pattern matches the whole topic name (the first registered wins), or None."""
        for regex, spec in self._compiled:
            found = regex.fullmatch(topic)
            if found:
                return TopicMatch(spec, found.groupdict())
        return None
