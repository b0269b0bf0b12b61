"""Request and response bodies of the market API. This part: static data (types, hubs, import status)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


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
