"""The ads app's settings: PENTAD_ADS__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(AdsSettings)`."""

from __future__ import annotations

from pydantic import BaseModel, Field

APP_NAME = "ads"


class AdsSettings(BaseModel):
    """The ads app (apps/ads): creatives, signed ad links."""

    click_token_ttl: int = Field(
        86_400, ge=60, le=2_592_000, description="How long a signed click link stays valid, seconds."
    )
    impression_token_ttl: int = Field(
        3600, ge=60, le=86_400, description="How long an impression token stays valid, seconds."
    )
    snapshot_poll: float = Field(
        2.0,
        ge=0.1,
        le=300,
        description="How often each process checks whether the ads setup changed, seconds.",
    )
    viewable_ratio: float = Field(
        0.5, gt=0, le=1, description="Share of an ad's pixels in view for it to count as viewable (IAB: 0.5)."
    )
    viewable_seconds: float = Field(
        1.0, ge=0, le=60, description="How long an ad stays that much in view, continuously, to be viewable."
    )
    max_creative_bytes: int = Field(
        2_097_152, ge=1024, le=104_857_600, description="Largest image creative upload, bytes."
    )
    max_html5_bytes: int = Field(
        5_242_880,
        ge=1024,
        le=104_857_600,
        description="Largest HTML5 creative (zip or HTML file), bytes, both as uploaded and unpacked.",
    )
