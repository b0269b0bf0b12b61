"""The analytics app's settings: PENTAD_ANALYTICS__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(AnalyticsSettings)`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pentad.core.config import CommaList

APP_NAME = "analytics"


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
