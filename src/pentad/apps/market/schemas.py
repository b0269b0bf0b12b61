"""Request and response bodies of the market API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

CharacterStatus = Literal["ok", "needs_reauth"]


class CharacterRead(BaseModel):
    """A linked EVE character. Its tokens are never shown."""

    id: uuid.UUID = Field(description="The link's id (use it in URLs).")
    character_id: int = Field(description="The EVE character id.")
    name: str
    status: CharacterStatus = Field(
        description="ok: its data can be read; needs_reauth: EVE SSO no longer accepts the link (access "
        "revoked, token expired, or the character moved to another account): link it again."
    )
    scopes: list[str] = Field(description="The ESI scopes the character granted.")
    linked_at: datetime
    token_expires_at: datetime | None = Field(
        description="When the last access token issued for it expires (shows when it was last refreshed)."
    )
