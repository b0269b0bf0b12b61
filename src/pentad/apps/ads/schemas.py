"""Request and response bodies of the ads API (/api/ads). Money is in micros (integers, 1/1,000,000 of the
currency unit); times are ISO 8601 with a timezone."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from pentad.apps.ads.targeting import PathGlob, Targeting
from pentad.core.emails import Email

Pricing = Literal["cpm", "cpc", "flat"]
Pacing = Literal["even", "asap"]
CampaignStatus = Literal["active", "paused", "archived"]
CreativeStatus = Literal["active", "paused"]
ZoneMode = Literal["direct", "gpt"]
Role = Literal["admin", "owner", "viewer"]

MAX_MICROS = 10**15
"""A billion currency units: far above any real budget, far below 64-bit integers."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Micros = Annotated[int, Field(ge=0, le=MAX_MICROS)]
Count = Annotated[int, Field(ge=1, le=10**12)]
GoalName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _destination(value: str) -> str:
    """An absolute http(s) URL with a host and no credentials: where a click goes."""
    if _CONTROL.search(value):
        raise ValueError("the URL must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("the destination must be an http or https URL")
    if not parts.hostname:
        raise ValueError("the destination must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the destination must not carry a user name or password")
    try:
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError as error:
        raise ValueError("the destination's port is not valid") from error
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if not _HOSTNAME.match(value):
        raise ValueError("give the site's host name, e.g. news.example.com (no scheme, path or port)")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError("unknown timezone; use an IANA name such as Europe/Berlin") from error
    if value not in available_timezones() and value != "UTC":
        raise ValueError("unknown timezone; use an IANA name such as Europe/Berlin")
    return value


DestinationUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_destination)]
Domain = Annotated[str, StringConstraints(max_length=253), AfterValidator(_domain)]
Timezone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]
GptAdUnit = Annotated[str, StringConstraints(max_length=300, pattern=r"^/\d+(/[A-Za-z0-9_.\-]+)+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- advertisers


class AdvertiserCreate(Strict):
    name: Name
    contact_email: Email | None = Field(None, description="Stored encrypted; shown to its managers only.")


class AdvertiserUpdate(Strict):
    name: Name | None = None
    contact_email: Email | None = None


class Advertiser(BaseModel):
    id: uuid.UUID
    name: str
    contact_email: str | None = Field(description="Null for viewers, who do not see it.")
    owner_id: uuid.UUID
    role: Role = Field(description="Your role on it.")
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- sites and zones


class SiteCreate(Strict):
    name: Name
    domain: Domain
    timezone: Timezone = "UTC"


class SiteUpdate(Strict):
    name: Name | None = None
    domain: Domain | None = None
    timezone: Timezone | None = None


class Site(BaseModel):
    id: uuid.UUID
    name: str
    domain: str
    timezone: str
    owner_id: uuid.UUID
    role: Role
    created_at: datetime
    updated_at: datetime


class ZoneBody(Strict):
    """A zone, whole (PUT replaces every field)."""

    name: Name
    width: int = Field(ge=1, le=4000, description="Pixels.")
    height: int = Field(ge=1, le=4000, description="Pixels.")
    path_patterns: list[PathGlob] = Field(
        default_factory=list, max_length=50, description="Page path globs it appears on; empty: every page."
    )
    mode: ZoneMode = Field("direct", description="`gpt`: Google Ad Manager first, Pentad as fallback.")
    gpt_ad_unit: GptAdUnit | None = Field(None, description="The GPT ad unit path, e.g. /1234/home_top.")
    house_creative_id: uuid.UUID | None = Field(
        None, description="Served when no campaign is; a creative of an advertiser you manage."
    )

    @model_validator(mode="after")
    def _gpt_needs_ad_unit(self) -> Self:
        if self.mode == "gpt" and self.gpt_ad_unit is None:
            raise ValueError("a gpt zone needs gpt_ad_unit")
        return self


class Zone(BaseModel):
    id: uuid.UUID
    site_id: uuid.UUID
    name: str
    width: int
    height: int
    path_patterns: list[str]
    mode: ZoneMode
    gpt_ad_unit: str | None
    house_creative_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- campaigns


class CampaignBody(Strict):
    """A campaign, whole (PUT replaces every field)."""

    name: Name
    status: CampaignStatus = "active"
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    pricing: Pricing = Field(
        description="cpm: per 1,000 viewable impressions; cpc: per click; flat: in total."
    )
    rate_micros: Micros = Field(description="The price per unit of `pricing` (flat: the whole price).")
    budget_micros: Micros | None = Field(None, description="Total budget; null: unlimited.")
    daily_budget_micros: Micros | None = None
    daily_impressions: Count | None = None
    daily_clicks: Count | None = None
    frequency_cap: int | None = Field(None, ge=1, le=1000, description="Impressions per visitor per day.")
    pacing: Pacing = "even"
    priority: int = Field(5, ge=1, le=10, description="10 serves first.")
    weight: int = Field(1, ge=1, le=1000, description="Share within its priority.")
    targeting: Targeting = Field(default_factory=Targeting)
    zone_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=200, description="Zones it runs in (you must manage their sites)."
    )
    conversion_goals: list[GoalName] = Field(
        default_factory=list,
        max_length=50,
        description="Names of the analytics goals (of the sites it runs on) that count as its conversions.",
    )
    click_window: int = Field(
        86_400, ge=60, le=86_400, description="Seconds after a click a completion counts as post-click."
    )
    view_window: int = Field(
        3600,
        ge=0,
        le=86_400,
        description="Seconds after a viewable impression it counts as post-view (0: none).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self.starts_at = self.starts_at.astimezone(UTC)
        self.ends_at = self.ends_at.astimezone(UTC) if self.ends_at is not None else None
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if (
            self.budget_micros is not None
            and self.daily_budget_micros is not None
            and self.daily_budget_micros > self.budget_micros
        ):
            raise ValueError("daily_budget_micros cannot exceed budget_micros")
        if len(set(self.zone_ids)) != len(self.zone_ids):
            raise ValueError("zone_ids lists a zone twice")
        return self


class Campaign(BaseModel):
    id: uuid.UUID
    advertiser_id: uuid.UUID
    name: str
    status: CampaignStatus
    starts_at: datetime
    ends_at: datetime | None
    pricing: Pricing
    rate_micros: int
    budget_micros: int | None
    daily_budget_micros: int | None
    daily_impressions: int | None
    daily_clicks: int | None
    frequency_cap: int | None
    pacing: Pacing
    priority: int
    weight: int
    targeting: Targeting
    zone_ids: list[uuid.UUID]
    conversion_goals: list[str]
    click_window: int
    view_window: int
    exhausted_at: datetime | None = Field(description="When its total budget was found spent (it stopped).")
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- creatives


class TextCreativeCreate(Strict):
    name: Name
    destination_url: DestinationUrl
    headline: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    body: Annotated[str, StringConstraints(max_length=1000)] = ""
    status: CreativeStatus = "active"


class ImageCreativeForm(Strict):
    """The text fields of a multipart image upload (the image itself is the `file` part). Multipart parts
    pass no core NUL guard, so this model refuses NUL characters itself. Other parts (the file) are not
    its business."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, values: object) -> object:
        if isinstance(values, dict) and any(isinstance(v, str) and "\x00" in v for v in values.values()):
            raise ValueError("text fields must not contain NUL characters")
        return values

    name: Name
    destination_url: DestinationUrl
    alt_text: Annotated[str, StringConstraints(max_length=300)] = ""
    status: CreativeStatus = "active"


class Html5CreativeForm(ImageCreativeForm):
    """The text fields of a multipart HTML5 upload (the zip or HTML file is the `file` part)."""

    width: int = Field(ge=1, le=4000, description="Pixels: the size it is framed at.")
    height: int = Field(ge=1, le=4000, description="Pixels.")


class CreativeUpdate(Strict):
    name: Name | None = None
    destination_url: DestinationUrl | None = None
    alt_text: Annotated[str, StringConstraints(max_length=300)] | None = None
    headline: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None
    ) = None
    body: Annotated[str, StringConstraints(max_length=1000)] | None = None
    status: CreativeStatus | None = None


class Creative(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    kind: Literal["image", "text", "html5"]
    name: str
    status: CreativeStatus
    destination_url: str
    width: int | None
    height: int | None
    alt_text: str
    headline: str
    body: str
    content_type: str | None
    byte_size: int | None
    image_url: str | None = Field(description="A signed link to the uploaded image (image creatives).")
    variants: dict[str, Any] = Field(
        default_factory=dict,
        description="Image: the rendered `widths` and `formats`; HTML5: its `files` (keys of stored objects "
        "left out).",
    )
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- sharing

SharedRole = Literal["owner", "viewer"]


class Holder(BaseModel):
    """An account holding a role on an advertiser or site through a grant."""

    user_id: uuid.UUID
    role: SharedRole
    granted_by: uuid.UUID | None
    granted_at: datetime


class StatsHour(BaseModel):
    hour: datetime = Field(description="Start of the hour (UTC) the impressions were served in.")
    served: int
    viewable: int
    clicks: int
    spend_micros: int
    conversions: int
    revenue_micros: int


class CampaignStats(BaseModel):
    """A campaign's delivery between `since` and `until` (hours of the impressions; clicks count in the hour
    of the impression they came from)."""

    campaign_id: uuid.UUID
    pricing: str
    since: datetime
    until: datetime
    served: int = Field(description="Ads handed out by the decision route.")
    viewable: int = Field(description="Of those, reported viewable by the loader.")
    clicks: int = Field(description="Counted clicks (one per impression).")
    ctr: float = Field(description="clicks ÷ viewable impressions (0 without any).")
    viewability: float = Field(description="viewable ÷ served (0 without any).")
    spend_micros: int = Field(description="CPM: per 1,000 viewable impressions; CPC: per click; flat: 0.")
    conversions: int = Field(
        description="Goal completions attributed to its clicks and viewable impressions."
    )
    revenue_micros: int = Field(description="The revenue those completions reported.")
    conversion_rate: float = Field(description="conversions ÷ clicks (0 without any).")
    budget_spent: float | None = Field(description="Spend (all time) ÷ budget_micros; null without a budget.")
    hours: list[StatsHour]
