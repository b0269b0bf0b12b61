"""Request and response bodies of a trader's own data: character sync, fees, my orders, P&L, alerts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

SyncState = Literal["never", "ok", "deferred", "failed", "needs_reauth"]


class SyncStatus(BaseModel):
    """Where a character's ESI data stands."""

    character: uuid.UUID = Field(description="The character link's id.")
    character_id: int
    status: SyncState = Field(
        description="never: not synced yet; ok: the last run stored everything; deferred: ESI or EVE SSO "
        "asked us to wait, it runs again at next_at; failed: ESI refused a request; needs_reauth: EVE SSO "
        "refused the character's token, link it again."
    )
    detail: str | None = None
    synced_at: datetime | None = Field(None, description="When the data was last stored.")
    attempted_at: datetime | None = None
    next_at: datetime | None = Field(None, description="When the next run is due (ESI's Expires).")
    queued: bool = Field(False, description="A run was queued by this request.")


class FeesRead(BaseModel):
    """The character's fee rates at a station, from its synced skills and standings."""

    character: uuid.UUID
    station_id: int
    kind: str
    broker_rate: Decimal
    sales_tax_rate: Decimal
    relist_rate: Decimal
    min_fee_isk: Decimal
    floored: bool = Field(description="The broker rate is the minimum rate.")
    accounting: int
    broker_relations: int
    advanced_broker_relations: int
    faction_standing: Decimal
    corporation_standing: Decimal
    skills_synced: bool = Field(description="False: no skills synced yet (level 0 assumed).")


class MyOrderRead(BaseModel):
    """One of the caller's characters' market orders, checked against the current book."""

    character: uuid.UUID
    character_id: int
    order_id: int
    type_id: int
    type_name: str | None
    location_id: int
    location_name: str | None = Field(
        None, description="The station or structure (None: not yet resolved through ESI, or not visible)."
    )
    system_name: str | None = Field(None, description="The location's solar system.")
    region_id: int
    is_buy: bool
    price: Decimal
    volume_total: int
    volume_remain: int
    filled: float = Field(description="Share of the order filled, 0 to 1.")
    issued: datetime = Field(description="When the order was placed or its price last changed.")
    expires_at: datetime
    expiring: bool = Field(description="Expires within EXPIRY_WARNING_HOURS.")
    state: str
    best_competitor: Decimal | None = Field(
        None, description="The best other price on the same side at the same station (None: none)."
    )
    undercut: bool = Field(
        False, description="Someone sells cheaper (sell order) or buys dearer (buy order) at the station."
    )
    beaten_since_update: bool = Field(
        False, description="A better order was placed or repriced after this order's last update."
    )
    competitors_ahead: int = Field(0, description="Other orders with a better price.")
    book_captured_at: datetime | None = Field(None, description="Age of the book compared against.")


class PnlItem(BaseModel):
    type_id: int
    type_name: str | None
    quantity_sold: int
    unknown_cost_quantity: int = Field(
        description="Units sold that no recorded buy covers (no profit counted)."
    )
    proceeds: Decimal
    cost: Decimal
    sales_tax: Decimal
    broker_fees: Decimal
    profit: Decimal


class PnlPoint(BaseModel):
    day: date
    profit: Decimal
    cumulative: Decimal


class PnlRead(BaseModel):
    """Realised profit (FIFO cost basis) over a period, per item and in total, and per day."""

    since: date
    until: date
    items: list[PnlItem]
    total: PnlItem
    unattributed_broker_fees: Decimal = Field(
        description="Broker fees no order of an item could be found for."
    )
    daily: list[PnlPoint]
    open_lots_value: Decimal = Field(description="Cost of units bought and not sold yet.")


AlertKind = Literal["undercut", "expiring", "price_cross", "margin"]
Channel = Literal["hub", "mail", "push"]


def _hub_only() -> list[Channel]:
    return ["hub"]


class AlertRuleIn(BaseModel):
    kind: AlertKind
    params: dict[str, Any] = Field(default_factory=dict)
    channels: list[Channel] = Field(default_factory=_hub_only, min_length=1, max_length=3)
    enabled: bool = True
    cooldown: int = Field(0, ge=0, le=7 * 86400, description="Seconds before the rule fires again.")


class AlertRulePatch(BaseModel):
    params: dict[str, Any] | None = None
    channels: list[Channel] | None = Field(None, min_length=1, max_length=3)
    enabled: bool | None = None
    cooldown: int | None = Field(None, ge=0, le=7 * 86400)


class AlertRuleRead(BaseModel):
    id: uuid.UUID
    kind: AlertKind
    params: dict[str, Any]
    channels: list[str]
    enabled: bool
    cooldown: int
    created_at: datetime


class AlertEventRead(BaseModel):
    id: uuid.UUID
    rule_id: uuid.UUID
    kind: str
    subject: str
    fired_at: datetime
    detail: dict[str, Any] | None
    delivered: dict[str, Any] | None


class AlertPrefs(BaseModel):
    timezone: str = Field("UTC", max_length=64)
    quiet_start: int | None = Field(None, ge=0, lt=1440, description="Minutes after local midnight.")
    quiet_end: int | None = Field(None, ge=0, lt=1440)
    alerts_per_hour: int | None = Field(None, ge=1, le=1000)
    pool_characters_for_pnl: bool = Field(
        False, description="P&L matches a sell on one of your characters with a buy on another (one FIFO)."
    )
