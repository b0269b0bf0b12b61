"""The market's realtime topics and what is published on them.

- `market.user.{user_id}`: one user's own events — alerts fired (`alert.fired`), a character's sync
  (`character.synced`) or its link needing a new sign-in (`character.status`). Only that user may
  subscribe (requires `market.use`, as the REST routes reading the same data); nobody publishes from a
  client.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from pentad.apps.market.permissions import MARKET_USE
from pentad.core.realtime.topics import TopicAccess, TopicSpec


def user_topic(user_id: uuid.UUID) -> str:
    return f"market.user.{user_id}"


async def _is_own_user_topic(access: TopicAccess) -> bool:
    if access.action != "subscribe" or not access.principal.is_user:
        return False
    try:
        return uuid.UUID(access.params["user_id"]) == access.principal.id
    except ValueError:
        return False


class AlertFired(BaseModel):
    type: Literal["alert.fired"] = "alert.fired"
    id: uuid.UUID
    rule_id: uuid.UUID
    kind: str
    subject: str
    title: str
    detail: dict[str, Any]
    fired_at: datetime


class CharacterSynced(BaseModel):
    type: Literal["character.synced"] = "character.synced"
    character: uuid.UUID
    character_id: int
    status: str
    detail: str | None = None


class CharacterStatus(BaseModel):
    """A linked character's status changed; `needs_reauth`: EVE SSO no longer accepts the link (`reason`:
    refresh_refused, token_invalid or owner_changed) and the user must link it again."""

    type: Literal["character.status"] = "character.status"
    character: uuid.UUID
    character_id: int
    name: str
    status: str
    reason: str


TOPICS = (TopicSpec("market.user.{user_id}", _is_own_user_topic, history_size=100, requires=MARKET_USE),)
