"""The analytics app's settings: PENTAD_ANALYTICS__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(AnalyticsSettings)`."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from pentad.core.config import CommaList

APP_NAME = "analytics"


def parse_tier_text(value: Any) -> Any:
    """`raw=30d,hourly=1y` or a JSON object → a dict of tiers (retention.py checks them)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        return json.loads(text)
    tiers: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, sep, duration = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r}: write tiers as name=duration, e.g. raw=30d,hourly=2y")
        tiers[name.strip().lower()] = duration.strip()
    return tiers


def _check_default_tiers(value: dict[str, str]) -> dict[str, str]:
    from pentad.apps.analytics.retention import DEFAULT, validate_tiers

    return validate_tiers({**DEFAULT, **value}, complete=True)


class ClickHouseSettings(BaseModel):
    """Where the ClickHouse events store is (PENTAD_ANALYTICS__CLICKHOUSE__<NAME>; store/clickhouse.py)."""

    url: str = Field(
        "clickhouse://127.0.0.1:9000",
        pattern=r"^clickhouses?://[^/?#@\s]+$",
        description="Server of the native protocol: `clickhouse://host:port` (`clickhouses://` for TLS).",
    )
    database: str = Field(
        "pentad",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Database of the events table (created at start if missing).",
    )
    user: str = Field("default", min_length=1, max_length=64, description="ClickHouse user.")
    password: SecretStr | None = Field(None, description="Password of that user.")
    timeout: float = Field(10.0, gt=0, le=600, description="Connect and per-query timeout, seconds.")
    pool: int = Field(4, ge=1, le=64, description="Connections each process keeps open.")


class AnalyticsSettings(BaseModel):
    """The analytics app (apps/analytics): ingest limits, sessions, tracker caching."""

    max_event_bytes: int = Field(
        8192, ge=512, le=65_536, description="Largest event body the ingest endpoint takes, bytes (else 413)."
    )
    max_props: int = Field(30, ge=0, le=200, description="Most custom properties one event may carry.")
    max_prop_value: int = Field(
        2000, ge=16, le=10_000, description="Longest custom property key or value, characters."
    )
    max_clock_skew: int = Field(
        300,
        ge=0,
        le=86_400,
        description="How far an event's own `ts` may lie from the server clock, seconds (else 400).",
    )
    session_timeout: int = Field(
        1800, ge=60, le=86_400, description="Inactivity after which a visitor's next event starts a visit, s."
    )
    tracker_max_age: int = Field(
        86_400, ge=0, description="Cache lifetime of the stable /analytics/js/script.js URL, seconds."
    )
    registry_poll: float = Field(
        2.0, gt=0, le=300, description="How often each process checks the sites for changes, seconds."
    )
    download_extensions: CommaList = Field(
        default_factory=lambda: ["pdf", "zip", "dmg", "exe", "csv", "xlsx", "docx", "mp3", "mp4", "gz"],
        description="File extensions whose links the tracker reports as downloads.",
    )
    rollup_batch: int = Field(
        200,
        ge=1,
        le=10_000,
        description="Dirty (site, hour) buckets one `analytics.rollup` transaction drains, with the rest of "
        "its last UTC day's.",
    )
    default_retention: str = Field(
        "raw=60d,hourly=2y,daily=forever,monthly=forever",
        description="Retention tiers of sites without their own: `name=duration,…` or a JSON object "
        "(h, d, w, mo, y or forever; raw ≤ hourly ≤ daily ≤ monthly; tiers not named keep these).",
    )

    ga4_endpoint: str = Field(
        "https://www.google-analytics.com",
        description="Base URL of GA4's Measurement Protocol (`/mp/collect`, `/debug/mp/collect`).",
    )
    ga4_batch: int = Field(
        500, ge=25, le=5000, description="Most events one `analytics.ga4_forward` job carries."
    )
    ga4_max_attempts: int = Field(
        8,
        ge=1,
        le=20,
        description="Tries of a GA4 request that fails with 5xx, 429 or no answer, then dropped.",
    )
    ga4_import_max_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Largest GA4 CSV export an owner may upload, bytes (else 413)."
    )
    report_hour: int = Field(
        8,
        ge=0,
        le=23,
        description="Hour (site time zone) from which weekly and monthly e-mail reports go out.",
    )
    store: Literal["sql", "clickhouse"] = Field(
        "sql",
        description="Where raw events go and dashboards read them: `sql` (the database, with rollups) or "
        "`clickhouse` (PENTAD_ANALYTICS__CLICKHOUSE__*, queried raw).",
    )
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)

    @field_validator("default_retention", mode="before")
    @classmethod
    def _check_default_retention(cls, value: Any) -> str:
        tiers = _check_default_tiers(parse_tier_text(value))
        return ",".join(f"{name}={duration}" for name, duration in tiers.items())

    @property
    def default_tiers(self) -> dict[str, str]:
        """DEFAULT_RETENTION as a dict of tiers."""
        tiers: dict[str, str] = parse_tier_text(self.default_retention)
        return tiers
