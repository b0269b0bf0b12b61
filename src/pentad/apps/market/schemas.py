"""Request and response bodies of the market API: static data (types, hubs, import status) and linked
characters."""

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


class TypeRead(BaseModel):
    """An item type: packaged volume is what fits in a cargo hold (ships are repackaged smaller)."""

    id: int
    name: str
    group_id: int
    market_group_id: int | None = Field(description="Its place in the market tree; none: not tradeable.")
    volume_m3: float
    packaged_volume_m3: float


class HubRead(BaseModel):
    """A configured trade hub as the static data knows it (`known` false: its station or region is missing
    from the imported data, or the station is not in the configured region)."""

    key: str
    station_id: int
    region_id: int
    known: bool
    station_name: str | None = None
    system_id: int | None = None
    system_name: str | None = None
    security: float | None = Field(None, description="True security status of the hub's system.")
    security_display: float | None = Field(
        None, description="Security rounded to one decimal (≥ 0.5: high-sec)."
    )
    region_name: str | None = None


class SdeStatus(BaseModel):
    """The last static data import and what the static tables hold now."""

    imported_at: datetime | None
    build: str | None
    source: str | None
    counts: dict[str, int]
