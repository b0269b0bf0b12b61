"""The market app's tables (docs/plans/market.md §3), all created in the first session so later parts only
add code:

- static data from EVE's static data export (sde.py): regions, constellations, systems (with security),
  stargates, types, groups, market groups, NPC corporations, stations, and one row per import;
- market data from ESI: conditional-request state, order-book snapshots with their orders and per-type book
  statistics, daily history, per-region state (which snapshot is current), ingest runs;
- character data from ESI through EVE SSO: linked characters (refresh tokens encrypted), SSO logins in
  flight, orders, wallet transactions and journal, FIFO lots and realised trades, skills, standings;
- alerts (rules, fired events, preferences, Web Push subscriptions) and the AI advisor (own keys encrypted,
  conversations, messages, token usage).

EVE ids are BIGINT (order and character ids pass 2^31, structure ids are ~1e12); the static tables use the
game's ids as keys. Prices are NUMERIC(20,2). Three tables grow with time and expire by time, so they are
partitioned (core/db/partitions.py): order rows by hour, book statistics by day, history by month — the
time column is in their primary key and they carry no foreign keys (MariaDB's rules for partitioned tables).
Their migration builds them through `create_partitioned_table`; `PARTITIONED` hands them to the AppSpec.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGTEXT
from sqlalchemy.orm import Mapped, mapped_column

from pentad.apps.market.settings import MarketSettings
from pentad.core.context import AppContext
from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin, utcnow
from pentad.core.db.partitions import PartitionedTable

PRICE = Numeric(20, 2)
SERIAL = BigInteger().with_variant(Integer(), "sqlite")
LONG_TEXT = Text().with_variant(LONGTEXT(), "mysql", "mariadb")
"""Text of any size (MariaDB's plain TEXT stops at 64 KiB)."""
"""An auto-incrementing 64-bit key (SQLite only autoincrements an INTEGER PRIMARY KEY)."""

STATION_KINDS = ("npc", "structure")
CHARACTER_STATUSES = ("ok", "needs_reauth")
SNAPSHOT_STATUSES = ("ok", "failed")
RUN_STATUSES = ("running", "ok", "not_modified", "failed", "deferred")
ORDER_STATES = ("open", "expired", "cancelled", "filled")
AI_PROVIDERS = ("anthropic", "openai")
MESSAGE_STATUSES = ("queued", "streaming", "done", "failed")


# --- static data (SDE) -----------------------------------------------------------------------------------


class MarketRegion(Base):
    __tablename__ = "market_regions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100), index=True)


class MarketConstellation(Base):
    __tablename__ = "market_constellations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    region_id: Mapped[int] = mapped_column(BigInteger, index=True)


class MarketSystem(Base):
    """A solar system; `security` is the true security status (rounded to one decimal for display and for
    the high-sec rule, ≥ 0.5)."""

    __tablename__ = "market_systems"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100), index=True)
    constellation_id: Mapped[int] = mapped_column(BigInteger)
    region_id: Mapped[int] = mapped_column(BigInteger, index=True)
    security: Mapped[float] = mapped_column(Float)


class MarketStargate(Base):
    """One direction of a stargate connection (each gate has a partner in the destination system)."""

    __tablename__ = "market_stargates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    system_id: Mapped[int] = mapped_column(BigInteger, index=True)
    dest_system_id: Mapped[int] = mapped_column(BigInteger)
    dest_stargate_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class MarketType(Base):
    """An item type. `packaged_volume_m3` is what hauling uses (ships are repackaged smaller)."""

    __tablename__ = "market_types"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200), index=True)
    group_id: Mapped[int] = mapped_column(BigInteger, index=True)
    market_group_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    volume_m3: Mapped[float] = mapped_column(Float, default=0.0)
    packaged_volume_m3: Mapped[float] = mapped_column(Float, default=0.0)
    published: Mapped[bool] = mapped_column(Boolean, default=True)


class MarketGroup(Base):
    """An inventory group (e.g. Mineral, Frigate, Trade skills) and its category."""

    __tablename__ = "market_groups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    category_id: Mapped[int] = mapped_column(BigInteger)


class MarketMarketGroup(Base):
    """A node of the in-game market tree."""

    __tablename__ = "market_market_groups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    name: Mapped[str] = mapped_column(String(200))


class MarketNpcCorporation(Base):
    """An NPC corporation (station owners: their and their faction's standings lower the broker fee)."""

    __tablename__ = "market_npc_corporations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    faction_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class MarketStation(Base):
    """A place with a market: an NPC station from the SDE (`kind="npc"`) or a player structure resolved
    through ESI (`kind="structure"`, kept across SDE imports). `broker_fee_override` is an admin-entered
    rate (structures set their own)."""

    __tablename__ = "market_stations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    system_id: Mapped[int] = mapped_column(BigInteger, index=True)
    region_id: Mapped[int] = mapped_column(BigInteger, index=True)
    owner_corp_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    faction_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    kind: Mapped[str] = mapped_column(String(16), default="npc")
    broker_fee_override: Mapped[float | None] = mapped_column(Float, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketSdeImport(IdMixin, Base):
    """One completed static data import: where from, which build, how many rows of each kind."""

    __tablename__ = "market_sde_imports"

    build: Mapped[str | None] = mapped_column(String(64), default=None)
    source: Mapped[str] = mapped_column(String(500))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- market data from ESI --------------------------------------------------------------------------------


class MarketEsiCache(Base):
    """Conditional-request state of one ESI URL (`url_key` = SHA-256 of the URL without the page)."""

    __tablename__ = "market_esi_cache"

    url_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(1000))
    etag: Mapped[str | None] = mapped_column(String(200), default=None)
    etags: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """Per-page ETags of a paginated resource ({"1": "…", …})."""
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_modified: Mapped[datetime | None] = mapped_column(default=None)
    page_count: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketSnapshot(Base):
    """One complete order book of a region, stored in one transaction."""

    __tablename__ = "market_snapshots"
    __table_args__ = (Index("ix_market_snapshots_region_id_captured_at", "region_id", "captured_at"),)

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    region_id: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime]
    last_modified: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    etag_set: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class MarketRegionState(Base):
    """Per region: the snapshot readers use (swapped in the snapshot's own transaction) and when ESI will
    have the next one."""

    __tablename__ = "market_region_state"

    region_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    current_snapshot_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    captured_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_modified: Mapped[datetime | None] = mapped_column(default=None)
    history_updated_at: Mapped[datetime | None] = mapped_column(default=None)


class MarketOrder(Base):
    """An order of a snapshot's book (partitioned by `captured_at`, one partition an hour). `page` is the
    ESI page it came from, so a page answered 304 copies its rows forward from the previous snapshot."""

    __tablename__ = "market_orders"
    __table_args__ = (
        Index("ix_market_orders_book", "snapshot_id", "location_id", "type_id", "is_buy", "price"),
    )

    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    page: Mapped[int] = mapped_column(Integer)
    type_id: Mapped[int] = mapped_column(BigInteger)
    location_id: Mapped[int] = mapped_column(BigInteger)
    system_id: Mapped[int] = mapped_column(BigInteger)
    is_buy: Mapped[bool] = mapped_column(Boolean)
    price: Mapped[Decimal] = mapped_column(PRICE)
    volume_remain: Mapped[int] = mapped_column(BigInteger)
    volume_total: Mapped[int] = mapped_column(BigInteger)
    min_volume: Mapped[int] = mapped_column(BigInteger, default=1)
    range: Mapped[str] = mapped_column(String(16))
    issued: Mapped[datetime]
    duration: Mapped[int] = mapped_column(Integer)


class MarketHubLadder(Base):
    """Per snapshot and trade hub: the ladders hauling reads (analysis/hauling.py), computed at ingest in
    the snapshot's own transaction — each type's sell orders at the station cheapest first and the buy
    orders that can be sold into there highest first, each side cut to the search's depth — packed
    (repository.pack_ladders: base64 text, as aiomysql cannot bind bytes). `cover` fingerprints the depth
    and which buy orders counted (the hub's system and the systems within each jump range): a search whose
    own differs (a re-imported map, another depth) ranks the orders itself. Partitioned like the orders
    (`captured_at`, one partition an hour)."""

    __tablename__ = "market_hub_ladders"

    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    station_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    cover: Mapped[str] = mapped_column(String(64))
    asks: Mapped[str] = mapped_column(LONG_TEXT)
    bids: Mapped[str] = mapped_column(LONG_TEXT)


class MarketBookStat(Base):
    """Per snapshot, station and type: best prices, order counts, units, recent updates (derived at ingest;
    scans read these). Partitioned by `captured_at`, one partition a day."""

    __tablename__ = "market_book_stats"
    __table_args__ = (Index("ix_market_book_stats_snapshot_type", "snapshot_id", "type_id"),)

    captured_at: Mapped[datetime] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    location_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    best_bid: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    best_ask: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    bid_count: Mapped[int] = mapped_column(Integer, default=0)
    ask_count: Mapped[int] = mapped_column(Integer, default=0)
    bid_units: Mapped[int] = mapped_column(BigInteger, default=0)
    ask_units: Mapped[int] = mapped_column(BigInteger, default=0)
    updates_last_hour: Mapped[int] = mapped_column(Integer, default=0)


class MarketHistory(Base):
    """ESI's daily market history of a type in a region (partitioned by `date`, one partition a month)."""

    __tablename__ = "market_history"

    region_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    average: Mapped[Decimal] = mapped_column(PRICE)
    highest: Mapped[Decimal] = mapped_column(PRICE)
    lowest: Mapped[Decimal] = mapped_column(PRICE)
    volume: Mapped[int] = mapped_column(BigInteger)
    order_count: Mapped[int] = mapped_column(BigInteger)


class MarketTypeVolume(Base):
    """Traded volume and price of a type in a region over recent days, rebuilt after each history ingest."""

    __tablename__ = "market_type_volume"

    region_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    avg_volume_7d: Mapped[float] = mapped_column(Float, default=0.0)
    avg_volume_30d: Mapped[float] = mapped_column(Float, default=0.0)
    avg_price_30d: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketIngestRun(IdMixin, Base):
    """One ingest attempt (a region's book, history, a character's data): its outcome as users see it."""

    __tablename__ = "market_ingest_runs"
    __table_args__ = (Index("ix_market_ingest_runs_kind_scope_started_at", "kind", "scope", "started_at"),)

    kind: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="running")
    detail: Mapped[str | None] = mapped_column(String(1000), default=None)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    esi_errors: Mapped[int] = mapped_column(Integer, default=0)
    snapshot_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
    """A failed or deferred run: when the next attempt is due (shown to users beside the data's age)."""


# --- characters (EVE SSO) and their data ----------------------------------------------------------------


class MarketCharacter(IdMixin, TimestampMixin, Base):
    """An EVE character a Pentad user linked through EVE SSO. The refresh token is encrypted at rest (bound
    to the row); access tokens are never stored. A changed `owner_hash` means the character was sold."""

    __tablename__ = "market_characters"
    __table_args__ = (UniqueConstraint("user_id", "character_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    character_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(100))
    owner_hash: Mapped[str] = mapped_column(String(255))
    corporation_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    access_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(24), default="ok")
    last_sync: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketSsoState(TimestampMixin, Base):
    """An SSO login in flight: the state is kept hashed, the PKCE verifier encrypted; used once."""

    __tablename__ = "market_sso_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    code_verifier: Mapped[str] = mapped_column(EncryptedText)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    return_to: Mapped[str | None] = mapped_column(String(500), default=None)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class MarketCharOrder(Base):
    """A character's market order as ESI last reported it (open ones, then history)."""

    __tablename__ = "market_char_orders"
    __table_args__ = (Index("ix_market_char_orders_character_id_state", "character_id", "state"),)

    character_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type_id: Mapped[int] = mapped_column(BigInteger)
    location_id: Mapped[int] = mapped_column(BigInteger)
    region_id: Mapped[int] = mapped_column(BigInteger)
    is_buy: Mapped[bool] = mapped_column(Boolean, default=False)
    price: Mapped[Decimal] = mapped_column(PRICE)
    volume_total: Mapped[int] = mapped_column(BigInteger)
    volume_remain: Mapped[int] = mapped_column(BigInteger)
    min_volume: Mapped[int | None] = mapped_column(BigInteger, default=None)
    escrow: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    issued: Mapped[datetime]
    duration: Mapped[int] = mapped_column(Integer)
    range: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class MarketWalletTransaction(Base):
    """A character's market transaction (kept forever: ESI only reaches back 30 days)."""

    __tablename__ = "market_wallet_transactions"
    __table_args__ = (
        Index("ix_market_wallet_transactions_character_type_date", "character_id", "type_id", "date"),
    )

    character_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    date: Mapped[datetime]
    type_id: Mapped[int] = mapped_column(BigInteger)
    location_id: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[Decimal] = mapped_column(PRICE)
    is_buy: Mapped[bool] = mapped_column(Boolean)
    is_personal: Mapped[bool] = mapped_column(Boolean, default=True)
    client_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    journal_ref_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class MarketWalletJournal(Base):
    """A character's wallet journal entry (taxes and broker fees for P&L)."""

    __tablename__ = "market_wallet_journal"
    __table_args__ = (
        Index("ix_market_wallet_journal_character_context", "character_id", "context_id"),
        Index("ix_market_wallet_journal_character_date", "character_id", "date"),
    )

    character_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ref_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    date: Mapped[datetime]
    ref_type: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    balance: Mapped[Decimal | None] = mapped_column(PRICE, default=None)
    context_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    context_id_type: Mapped[str | None] = mapped_column(String(32), default=None)
    first_party_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    second_party_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    description: Mapped[str | None] = mapped_column(String(500), default=None)


class MarketFifoLot(IdMixin, Base):
    """An open buy lot of a P&L pool (`pool` = a character id, or `user:<uuid>` when a user pools their
    characters), consumed oldest first by sells."""

    __tablename__ = "market_fifo_lots"
    __table_args__ = (Index("ix_market_fifo_lots_pool_type_date", "pool", "type_id", "date"),)

    pool: Mapped[str] = mapped_column(String(64))
    type_id: Mapped[int] = mapped_column(BigInteger)
    character_id: Mapped[int] = mapped_column(BigInteger)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    date: Mapped[datetime]
    quantity_left: Mapped[int] = mapped_column(BigInteger)
    unit_cost: Mapped[Decimal] = mapped_column(PRICE)


class MarketRealized(IdMixin, Base):
    """A sell matched against FIFO lots: proceeds, cost, tax and fees; units without a lot are
    `unknown_quantity` (never counted as profit)."""

    __tablename__ = "market_realized"
    __table_args__ = (
        Index("ix_market_realized_pool_date", "pool", "date"),
        Index("ix_market_realized_pool_type", "pool", "type_id"),
    )

    pool: Mapped[str] = mapped_column(String(64))
    type_id: Mapped[int] = mapped_column(BigInteger)
    character_id: Mapped[int] = mapped_column(BigInteger)
    sell_transaction_id: Mapped[int] = mapped_column(BigInteger)
    date: Mapped[datetime]
    quantity: Mapped[int] = mapped_column(BigInteger)
    unknown_quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    proceeds: Mapped[Decimal] = mapped_column(PRICE)
    cost: Mapped[Decimal] = mapped_column(PRICE)
    tax: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))


class MarketSkill(Base):
    """A character's trained skill level (fees read Accounting, Broker Relations, Advanced Broker
    Relations)."""

    __tablename__ = "market_skills"

    character_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    skill_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    level: Mapped[int] = mapped_column(SmallInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketStanding(Base):
    """A character's standing towards an NPC corporation, faction or agent."""

    __tablename__ = "market_standings"

    character_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    from_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    from_type: Mapped[str] = mapped_column(String(16))
    standing: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- alerts ------------------------------------------------------------------------------------------------


class MarketAlertRule(IdMixin, TimestampMixin, Base):
    """A user's alert rule: `kind` undercut | expiring | price_cross | margin, its `params`, and where it is
    delivered (`channels`: hub, mail, push)."""

    __tablename__ = "market_alert_rules"

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cooldown: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketAlertEvent(IdMixin, Base):
    """A rule's condition holding for a subject: one row per state change (deleted when it clears, which
    re-arms the rule for that subject)."""

    __tablename__ = "market_alert_events"
    __table_args__ = (UniqueConstraint("rule_id", "subject_key", "state"),)

    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("market_alert_rules.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    subject_key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(32))
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    delivered: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class MarketUserPrefs(Base):
    """A user's alert preferences: time zone, quiet hours (minutes after local midnight), hourly cap, and
    whether P&L pools all their characters."""

    __tablename__ = "market_user_prefs"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_start: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    quiet_end: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    alerts_per_hour: Mapped[int | None] = mapped_column(Integer, default=None)
    pool_characters_for_pnl: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketPushSubscription(IdMixin, TimestampMixin, Base):
    """A browser's Web Push subscription for market alerts; endpoint and keys encrypted at rest."""

    __tablename__ = "market_push_subscriptions"
    __table_args__ = (UniqueConstraint("user_id", "endpoint_hash"),)

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    endpoint: Mapped[str] = mapped_column(EncryptedText)
    endpoint_hash: Mapped[str] = mapped_column(String(64))
    keys: Mapped[str] = mapped_column(EncryptedText)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)


# --- AI advisor ------------------------------------------------------------------------------------------


class MarketAiKey(IdMixin, TimestampMixin, Base):
    """A user's own AI provider key: encrypted at rest, shown as provider and last four characters only."""

    __tablename__ = "market_ai_keys"
    __table_args__ = (UniqueConstraint("user_id", "provider"),)

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    provider: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(EncryptedText)
    last4: Mapped[str] = mapped_column(String(4))
    verified_at: Mapped[datetime | None] = mapped_column(default=None)


class MarketAiConversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "market_ai_conversations"
    __table_args__ = (Index("ix_market_ai_conversations_user_id_updated_at", "user_id", "updated_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketAiMessage(IdMixin, TimestampMixin, Base):
    """A question or an answer; an answer records its provider, tool calls, tokens and whether every ISK
    figure in it came from a tool result (`grounded`)."""

    __tablename__ = "market_ai_messages"
    __table_args__ = (
        Index("ix_market_ai_messages_conversation_id_created_at", "conversation_id", "created_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("market_ai_conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="done")
    provider: Mapped[str | None] = mapped_column(String(16), default=None)
    tool_calls: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    grounded: Mapped[bool | None] = mapped_column(Boolean, default=None)
    error: Mapped[str | None] = mapped_column(String(200), default=None)


class MarketAiUsage(Base):
    """AI tokens a user spent on a day with a provider, on the platform's key or their own."""

    __tablename__ = "market_ai_usage"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    own_key: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)


# --- partitioned tables ------------------------------------------------------------------------------------


def _orders_retention(context: AppContext) -> timedelta:
    return timedelta(hours=context.app_settings(MarketSettings).order_retention_hours)


def _stats_retention(context: AppContext) -> timedelta:
    return timedelta(days=context.app_settings(MarketSettings).stats_retention_days)


def _history_retention(context: AppContext) -> timedelta:
    return timedelta(days=context.app_settings(MarketSettings).history_retention_days)


ORDERS = PartitionedTable(
    cast(Table, MarketOrder.__table__), "captured_at", "hour", ahead=2, retention=_orders_retention
)
BOOK_STATS = PartitionedTable(
    cast(Table, MarketBookStat.__table__), "captured_at", "day", ahead=2, retention=_stats_retention
)
HUB_LADDERS = PartitionedTable(
    cast(Table, MarketHubLadder.__table__), "captured_at", "hour", ahead=2, retention=_orders_retention
)
HISTORY = PartitionedTable(
    cast(Table, MarketHistory.__table__), "date", "month", ahead=1, retention=_history_retention
)
PARTITIONED = (ORDERS, BOOK_STATS, HISTORY, HUB_LADDERS)
"""The market's time-partitioned tables (AppSpec.partitioned_tables): the core's cron job makes their
periods ahead and drops those older than the retention settings."""
