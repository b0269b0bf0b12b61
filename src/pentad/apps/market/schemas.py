"""Request and response bodies of the market API: static data (types, hubs, import status) and linked
characters."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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


class BookStatus(BaseModel):
    """How fresh a region's market data is and whether ESI is answering: what every page and answer built
    on the region's book shows beside its figures."""

    region_id: int
    state: Literal["ok", "unavailable", "none"] = Field(
        description="`ok`: the last refresh worked; `unavailable`: the refreshes since the last good one "
        "failed (the data shown is the last good book); `none`: no book stored yet."
    )
    captured_at: datetime | None = Field(description="When the book in use was captured.")
    age_minutes: int | None = Field(description="Minutes since `captured_at`.")
    unavailable_since: datetime | None = Field(description="When the first failing refresh started.")
    retry_at: datetime | None = Field(description="When the next refresh is due after the failures.")
    reason: str | None = Field(description="What the last failing refresh met (e.g. `esi_unavailable: …`).")
    failed_attempts: int = Field(0, description="Failing refreshes since the last good one.")
    message: str = Field(description="One sentence for a banner.")


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
    book: BookStatus | None = Field(None, description="The freshness of the hub region's market data.")


class SdeStatus(BaseModel):
    """The last static data import and what the static tables hold now."""

    imported_at: datetime | None
    build: str | None
    source: str | None
    counts: dict[str, int]


# --- station trading and hauling ---------------------------------------------------------------------------

SkillLevel = Annotated[int, Field(ge=0, le=5)]
Standing = Annotated[Decimal, Field(ge=-10, le=10, max_digits=6, decimal_places=2)]
Isk = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), max_digits=20, decimal_places=2)]


class FeeSkillsQuery(BaseModel):
    """The trader's fee skills (levels 0-5); untrained by default."""

    model_config = ConfigDict(extra="forbid")

    accounting: SkillLevel = 0
    broker_relations: SkillLevel = 0
    advanced_broker_relations: SkillLevel = 0


class StationScanRequest(FeeSkillsQuery):
    faction_standing: Standing = Field(
        Decimal(0), description="Standing towards the station owner's faction."
    )
    corporation_standing: Standing = Field(Decimal(0), description="Standing towards the station's owner.")
    min_daily_volume: float = Field(0.0, ge=0, le=1e12, description="Skip types trading fewer units a day.")
    min_margin: Decimal | None = Field(
        None, ge=-1, le=100, max_digits=8, decimal_places=4, description="Skip margins below (0.05 = 5 %)."
    )
    max_capital: Isk | None = Field(None, description="ISK a day's buying may cost at most.")
    limit: int = Field(100, ge=1, le=1000)


class HaulingRequest(FeeSkillsQuery):
    hubs: list[str] = Field(
        default_factory=list, max_length=20, description="Hub keys to haul between (default: every hub)."
    )
    preference: Literal["shortest", "secure", "safer"] = Field(
        "secure", description="Route: shortest, high-sec only (secure), or avoiding low-sec where it can."
    )
    cargo_m3: float = Field(60_000.0, gt=0, le=10_000_000, description="Cargo hold, m3 (packaged volumes).")
    collateral: Isk = Field(Decimal(1_000_000_000), description="ISK that may be spent at the source.")
    limit: int = Field(100, ge=1, le=1000)


class FeeRatesRead(BaseModel):
    broker: Decimal
    sales_tax: Decimal
    relist: Decimal


class StationTradeRead(BaseModel):
    type_id: int
    type_name: str | None
    best_bid: Decimal
    best_ask: Decimal
    buy_price: Decimal = Field(description="Where to place the buy order (volume-weighted bid + one tick).")
    sell_price: Decimal = Field(description="Where to place the sell order (volume-weighted ask - one tick).")
    daily_volume: Decimal
    volume_source: Literal["history", "book"]
    bid_count: int
    ask_count: int
    updates_last_hour: int
    units_per_day: Decimal
    profit_per_unit: Decimal
    relists_per_day: Decimal
    relist_cost_per_day: Decimal
    daily_profit: Decimal = Field(description="What the type could earn a day (the ranking).")
    margin: Decimal
    capital: Decimal


class StationScanRead(BaseModel):
    hub: str
    station_id: int
    region_id: int
    snapshot_id: int
    captured_at: datetime = Field(description="When the order book read was captured (its age matters).")
    rates: FeeRatesRead
    trades: list[StationTradeRead]
    book_status: BookStatus | None = Field(None, description="Freshness of the book and ESI's state now.")


class HaulRead(BaseModel):
    type_id: int
    type_name: str | None
    source: str
    destination: str
    jumps: int
    lowest_security: float = Field(description="Lowest displayed security on the route.")
    units: int
    volume_m3: float = Field(description="Packaged volume of one unit.")
    cost: Decimal = Field(description="Paid at the source, taking its sell orders cheapest first.")
    revenue: Decimal = Field(description="Received at the destination from its buy orders, before tax.")
    tax: Decimal
    profit: Decimal
    profit_per_jump: Decimal
    profit_per_m3: Decimal | None
    buy_average: Decimal | None
    sell_average: Decimal | None
    buy_orders: int
    sell_orders: int
    limited_by: Literal["book", "cargo", "collateral"]


class HaulingRead(BaseModel):
    hubs: list[str]
    preference: str
    sales_tax: Decimal
    books: dict[str, datetime] = Field(description="When each region's book read was captured.")
    hauls: list[HaulRead]
    book_status: list[BookStatus] = Field(
        default_factory=list, description="Freshness of each region's book and ESI's state now."
    )


# --- the AI advisor --------------------------------------------------------------------------------------

AiProvider = Literal["anthropic", "openai"]


class AdvisorQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000, description="A trading question.")
    conversation_id: uuid.UUID | None = Field(
        None, description="Continue this conversation (default: a new one)."
    )


class AdvisorAttempt(BaseModel):
    provider: str
    reason: str = Field(description="Why this provider did not answer (timeout, overloaded, …).")


class AdvisorToolCall(BaseModel):
    name: str
    input: dict[str, Any]


class AdvisorAnswerRead(BaseModel):
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    text: str
    provider: Literal["anthropic", "openai", "offline"] = Field(
        description="Who answered: a model, or the offline answer from the data when no model could."
    )
    own_key: bool = Field(description="Whether the user's own key paid for it.")
    cached: bool = Field(description="Reused: the same question on the same market data within the hour.")
    grounded: bool = Field(description="Every ISK figure in the text came from a tool result.")
    attempts: list[AdvisorAttempt] = Field(description="Providers that failed before this answer.")
    tool_calls: list[AdvisorToolCall]
    tokens_in: int
    tokens_out: int


class AdvisorMessageRead(BaseModel):
    id: uuid.UUID
    role: Literal["user", "assistant"]
    text: str
    status: str
    provider: str | None
    grounded: bool | None
    error: str | None
    created_at: datetime


class ConversationRead(BaseModel):
    id: uuid.UUID
    title: str
    updated_at: datetime


class ConversationDetail(ConversationRead):
    messages: list[AdvisorMessageRead]


class AiKeyWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: SecretStr = Field(description="Your API key of the provider (stored encrypted, never shown again).")


class AiKeyRead(BaseModel):
    provider: AiProvider
    last4: str = Field(description="The key's last four characters, to tell keys apart.")
    created_at: datetime


class AdvisorUsageRead(BaseModel):
    day: str
    platform_tokens: int
    platform_budget: int
    own_key_tokens: int
    own_key_budget: int


class HistoryDayRead(BaseModel):
    date: str
    average: Decimal
    highest: Decimal
    lowest: Decimal
    volume: int
    order_count: int


class HistoryRead(BaseModel):
    hub: str
    region_id: int
    type_id: int
    type_name: str
    days: list[HistoryDayRead]
