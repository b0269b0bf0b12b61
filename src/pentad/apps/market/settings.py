"""The market app's settings: PENTAD_MARKET__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(MarketSettings)`. Every setting of the plan (docs/plans/market.md §3) is here from the
first session — ESI, SSO, storage retention, fees, alerts, the AI advisor — so later parts only read them.

A light module: it imports nothing of the platform but the settings helpers (`pentad config show` loads it
without the app)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from pentad.core.config import CommaList

APP_NAME = "market"

DEFAULT_HUBS = [
    "jita:60003760:10000002",
    "amarr:60008494:10000043",
    "dodixie:60011866:10000032",
    "rens:60004588:10000030",
    "hek:60005686:10000042",
]
DEFAULT_SCOPES = [
    "esi-markets.read_character_orders.v1",
    "esi-wallet.read_character_wallet.v1",
    "esi-skills.read_skills.v1",
    "esi-characters.read_standings.v1",
    "esi-assets.read_assets.v1",
]
DEFAULT_STRUCTURE_SCOPES = ["esi-markets.structure_markets.v1", "esi-universe.read_structures.v1"]

_HUB = re.compile(r"^([a-z][a-z0-9_-]{0,31}):([1-9][0-9]{0,14}):([1-9][0-9]{0,9})$")
_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
_RATE = re.compile(r"^[1-9][0-9]*\s*(/|per)\s*([1-9][0-9]*\s*)?(second|minute|hour|day)s?$")
_SCOPE = re.compile(r"^[a-z0-9_.-]+$")


@dataclass(frozen=True)
class Hub:
    """A trade hub: its short key (URLs, topics), NPC station and region."""

    key: str
    station_id: int
    region_id: int


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class MarketSettings(BaseModel):
    """The market app (apps/market): EVE Online market data, character data and a trading advisor."""

    contact: str | None = Field(
        None,
        description="Contact (e-mail or URL) in the ESI User-Agent; ESI is not called until it is set.",
    )
    esi_base_url: str = Field("https://esi.evetech.net", description="Base URL of ESI.")
    sso_base_url: str = Field("https://login.eveonline.com", description="Base URL of EVE SSO.")
    esi_client_id: str | None = Field(
        None, description="EVE SSO application id (linking characters needs it; the analysis does not)."
    )
    esi_secret: SecretStr | None = Field(
        None, description="EVE SSO application secret (unset: a public client using PKCE only)."
    )
    sso_callback_path: str = Field(
        "/market/sso/callback", description="Path of the SSO callback, appended to the public base URL."
    )
    sso_state_ttl: int = Field(600, ge=60, le=3600, description="Seconds a login's state stays usable.")
    compatibility_date: str = Field(
        "2025-09-30", description="ESI `X-Compatibility-Date` (YYYY-MM-DD, never in the future)."
    )
    hubs: CommaList = Field(
        default_factory=lambda: list(DEFAULT_HUBS),
        description="Trade hubs as key:station_id:region_id, comma-separated.",
    )
    esi_page_concurrency: int = Field(
        16, ge=1, le=64, description="Pages of one paginated ESI resource fetched at once."
    )
    esi_timeout: float = Field(20.0, gt=0, le=300, description="Timeout of one ESI request, seconds.")
    esi_max_retries: int = Field(
        4, ge=0, le=20, description="Retries of a failed ESI request (5xx, network)."
    )
    esi_reserve_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of a rate-limit group's tokens user-triggered work leaves to ingest.",
    )
    esi_error_floor: int = Field(
        20, ge=1, le=100, description="ESI calls stop while the error limit's remainder is at or below this."
    )
    esi_expiry_margin: int = Field(
        5, ge=0, le=300, description="Seconds after `Expires` before a resource is fetched again."
    )
    esi_inconsistent_restarts: int = Field(
        3, ge=0, le=20, description="Restarts of a paginated fetch whose pages disagree before it fails."
    )
    esi_user_limit: str = Field(
        "30/minute", description="ESI-backed actions one user may start (e.g. 30/minute)."
    )
    downtime: str = Field(
        "10:58-11:20", description="Daily EVE downtime window (UTC, HH:MM-HH:MM): ESI work waits it out."
    )
    market_cache_min: int = Field(
        300, ge=0, le=86_400, description="Shortest time a market answer (scan) is cached, seconds."
    )
    market_cache_max: int = Field(
        900, ge=0, le=86_400, description="Longest time a market answer (scan) is cached, seconds."
    )
    order_retention_hours: int = Field(
        6, ge=1, le=24 * 90, description="Hours order-book snapshots are kept (hourly partitions)."
    )
    stats_retention_days: int = Field(
        14, ge=1, le=3650, description="Days book statistics are kept (daily partitions)."
    )
    history_retention_days: int = Field(
        400, ge=30, le=36_500, description="Days of daily market history kept (monthly partitions)."
    )
    sales_tax_base: float = Field(
        0.075, ge=0, lt=1, description="Sales tax before skills (Accounting), as a fraction."
    )
    broker_fee_base: float = Field(
        0.03, ge=0, lt=1, description="NPC station broker fee before skills and standings, as a fraction."
    )
    broker_fee_min_isk: float = Field(100.0, ge=0, description="Smallest broker fee or tax charged, ISK.")
    broker_fee_min_rate: float = Field(
        0.01, ge=0, lt=1, description="Lowest NPC station broker fee rate skills and standings reach."
    )
    structure_broker_fee: float = Field(
        0.01, ge=0, lt=1, description="Broker fee assumed at player structures, as a fraction."
    )
    scan_min_daily_volume: float = Field(
        5.0, ge=0, description="Types trading fewer units a day are left out of station trading scans."
    )
    alerts_per_hour: int = Field(
        20, ge=1, le=10_000, description="Alerts mailed or pushed to one user per hour; more go in a digest."
    )
    expiry_warning_hours: int = Field(
        24, ge=1, le=24 * 90, description="Hours before an order expires that the expiry alert fires."
    )
    push_subject: str | None = Field(
        None, description="VAPID subject (mailto: or https:) of market Web Push (unset: the core's)."
    )
    anthropic_api_key: SecretStr | None = Field(None, description="Platform Anthropic API key.")
    openai_api_key: SecretStr | None = Field(None, description="Platform OpenAI API key.")
    anthropic_base_url: str | None = Field(None, description="Anthropic API base URL (unset: the SDK's).")
    openai_base_url: str | None = Field(None, description="OpenAI API base URL (unset: the SDK's).")
    anthropic_model: str | None = Field(None, description="Anthropic model id (required with a key).")
    openai_model: str | None = Field(None, description="OpenAI model id (required with a key).")
    ai_connect_timeout: float = Field(5.0, gt=0, le=120, description="AI provider connect timeout, seconds.")
    ai_first_token_timeout: float = Field(
        20.0, gt=0, le=600, description="Wait for an AI provider's first token before failing over, seconds."
    )
    ai_total_timeout: float = Field(
        90.0, gt=0, le=3600, description="Longest one AI provider answer may take, seconds."
    )
    ai_max_tool_rounds: int = Field(6, ge=0, le=50, description="Tool-call rounds in one advisor answer.")
    ai_cache_ttl: int = Field(3600, ge=0, le=86_400 * 7, description="Seconds an advisor answer is reused.")
    ai_daily_tokens: int = Field(
        200_000, ge=0, description="AI tokens a user may spend a day on the platform's keys."
    )
    ai_byo_daily_tokens: int = Field(
        2_000_000, ge=0, description="AI tokens a user may spend a day on their own keys."
    )
    ai_breaker_failures: int = Field(
        3, ge=1, le=100, description="Failures in a row after which an AI provider is skipped for a while."
    )
    ai_breaker_cooldown: float = Field(
        60.0, gt=0, le=86_400, description="Seconds a failing AI provider is skipped."
    )
    sde_path: str | None = Field(
        None,
        description="Static data export (zip or folder) imported on first run (unset: the shipped subset).",
    )
    scopes: CommaList = Field(
        default_factory=lambda: list(DEFAULT_SCOPES), description="ESI scopes asked when linking a character."
    )
    structure_scopes: CommaList = Field(
        default_factory=lambda: list(DEFAULT_STRUCTURE_SCOPES),
        description="Extra scopes asked when a user opts in to structure markets.",
    )

    @field_validator("esi_base_url", "sso_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        checked = _url(value)
        assert checked is not None
        return checked

    @field_validator("anthropic_base_url", "openai_base_url")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        return _url(value)

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value or any(ch in value for ch in "\r\n()") or len(value) > 200:
            raise ValueError("give an e-mail address or URL (no parentheses or line breaks)")
        return value

    @field_validator("sso_callback_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value or " " in value:
            raise ValueError("a path starting with / (no query or fragment)")
        return value

    @field_validator("compatibility_date")
    @classmethod
    def _compatibility_date(cls, value: str) -> str:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
        if day > datetime.now(UTC).date():
            raise ValueError(f"{value} is in the future; ESI compatibility dates are past dates")
        return day.isoformat()

    @field_validator("hubs")
    @classmethod
    def _hubs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one hub, e.g. jita:60003760:10000002")
        keys: set[str] = set()
        for item in value:
            match = _HUB.match(item)
            if match is None:
                raise ValueError(
                    f"{item!r}: write hubs as key:station_id:region_id, e.g. jita:60003760:10000002"
                )
            if match.group(1) in keys:
                raise ValueError(f"hub {match.group(1)!r} is named twice")
            keys.add(match.group(1))
        return value

    @field_validator("esi_user_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not _RATE.match(value.strip()):
            raise ValueError(f"{value!r} is not a rate such as 30/minute")
        return value.strip()

    @field_validator("downtime")
    @classmethod
    def _downtime(cls, value: str) -> str:
        if not _WINDOW.match(value.strip()):
            raise ValueError(f"{value!r}: write the window as HH:MM-HH:MM (UTC), e.g. 10:58-11:20")
        return value.strip()

    @field_validator("scopes", "structure_scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        bad = [scope for scope in value if not _SCOPE.match(scope)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an ESI scope name")
        return value

    @field_validator("push_subject")
    @classmethod
    def _push_subject(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mailto:", "https://")):
            raise ValueError("a VAPID subject starts with mailto: or https://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MarketSettings:
        if self.market_cache_min > self.market_cache_max:
            raise ValueError("MARKET_CACHE_MIN is longer than MARKET_CACHE_MAX")
        if self.anthropic_api_key is not None and not self.anthropic_model:
            raise ValueError("ANTHROPIC_MODEL is required when ANTHROPIC_API_KEY is set")
        if self.openai_api_key is not None and not self.openai_model:
            raise ValueError("OPENAI_MODEL is required when OPENAI_API_KEY is set")
        return self

    @property
    def hub_list(self) -> list[Hub]:
        """HUBS parsed, in the order given."""
        hubs = []
        for item in self.hubs:
            key, station, region = item.split(":")
            hubs.append(Hub(key, int(station), int(region)))
        return hubs

    def hub(self, key: str) -> Hub | None:
        return next((hub for hub in self.hub_list if hub.key == key), None)

    @property
    def downtime_window(self) -> tuple[time, time]:
        """DOWNTIME as (start, end) UTC times of day."""
        start, end = self.downtime.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)
