"""The analytics API's request and response bodies."""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pentad.apps.analytics.retention import validate_tiers

DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
SiteRole = Literal["owner", "viewer"]


def _domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if value.startswith(("http://", "https://")) or not DOMAIN.fullmatch(value):
        raise ValueError("a host name such as example.com (no scheme, no path)")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone such as Europe/Berlin") from None
    return value


def _paths(value: list[str]) -> list[str]:
    for pattern in value:
        if not pattern.startswith("/") or len(pattern) > 500:
            raise ValueError("path patterns start with / (`*` matches anything), at most 500 characters")
    return value


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(
        description="The site's canonical host name, e.g. example.com; the tracker's data-domain."
    )
    name: str | None = Field(
        None, min_length=1, max_length=200, description="Display name (default: domain)."
    )
    timezone: str = Field("UTC", description="IANA time zone the dashboard's days are in.")
    hosts: list[str] = Field(
        default_factory=list, max_length=50, description="More host names whose pages report to this site."
    )
    excluded_paths: list[str] = Field(default_factory=list, max_length=100, description="Paths not counted.")

    _check_domain = field_validator("domain")(_domain)
    _check_timezone = field_validator("timezone")(_timezone)
    _check_paths = field_validator("excluded_paths")(_paths)

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        return [_domain(host) for host in value]


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = None
    hosts: list[str] | None = Field(None, max_length=50)
    excluded_paths: list[str] | None = Field(None, max_length=100)
    retention: dict[str, str] | None = Field(
        None,
        description='Retention tiers to change, e.g. {"raw": "30d", "hourly": "1y"}: h, d, w, mo, y or '
        "forever; raw ≤ hourly ≤ daily ≤ monthly (tiers not given keep their value).",
    )

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else validate_tiers(value, complete=False)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return None if value is None else _timezone(value)

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_domain(host) for host in value]

    @field_validator("excluded_paths")
    @classmethod
    def _check_paths(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _paths(value)


class SiteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    domain: str
    name: str
    timezone: str
    hosts: list[str]
    excluded_paths: list[str]
    retention: dict[str, str] | None = Field(
        description="The site's own retention tiers (null: the default)."
    )
    created_at: datetime
    can_manage: bool = Field(False, description="Whether the caller may change the site.")


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320, description="The Pentad account to share the site with.")
    role: SiteRole = "viewer"


class GrantRead(BaseModel):
    user_id: uuid.UUID
    role: SiteRole


class DropCount(BaseModel):
    reason: str
    count: int


class DropsRead(BaseModel):
    period: str
    total: int
    reasons: list[DropCount]


# ------------------------------------------------------------------ goals, funnels, shared links

GoalKind = Literal["pageview", "event"]


def _pattern(value: str) -> str:
    value = value.strip()
    if not value.startswith("/") or len(value) > 500:
        raise ValueError("a path pattern starts with / (`*` matches anything), at most 500 characters")
    return value


class GoalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: GoalKind = Field(description="`pageview`: a page matching `path`; `event`: a custom event.")
    path: str | None = Field(None, description="For `pageview`: a path pattern, `*` matching anything.")
    event_name: str | None = Field(
        None, min_length=1, max_length=120, description="For `event`: the custom event's name."
    )
    name: str | None = Field(
        None, min_length=1, max_length=120, description="Display name (default: the event or `Visit <path>`)."
    )
    currency: str | None = Field(
        None,
        pattern=r"^[A-Za-z]{3}$",
        description="Count the revenue of completing events in this ISO 4217 currency.",
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        return None if value is None else _pattern(value)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()

    def model_post_init(self, _context: object) -> None:
        if self.kind == "pageview" and (self.path is None or self.event_name is not None):
            raise ValueError("a pageview goal has a `path` and no `event_name`")
        if self.kind == "event" and (self.event_name is None or self.path is not None):
            raise ValueError("an event goal has an `event_name` and no `path`")


class GoalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: GoalKind
    name: str
    path: str | None = Field(validation_alias="path_pattern")
    event_name: str | None
    currency: str | None
    created_at: datetime


class FunnelStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal_id: uuid.UUID | None = Field(None, description="A goal of the site.")
    path: str | None = Field(None, description="Or a pageview path pattern (`*` matches anything).")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        return None if value is None else _pattern(value)

    def model_post_init(self, _context: object) -> None:
        if (self.goal_id is None) == (self.path is None):
            raise ValueError("a step is a `goal_id` or a `path`, not both")


class FunnelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    steps: list[FunnelStep] = Field(min_length=2, max_length=8, description="2 to 8 steps, in order.")
    scope: Literal["visit", "day"] = Field(
        "visit", description="Steps within one visit, or within one day of a visitor."
    )


class FunnelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    steps: list[FunnelStep]
    scope: Literal["visit", "day"]
    created_at: datetime


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field("", max_length=120, description="What the link is for (shown to owners only).")
    password: str | None = Field(
        None, min_length=8, max_length=256, description="Protect the link with a password (stored hashed)."
    )


class ShareRead(BaseModel):
    id: uuid.UUID
    label: str
    url: str = Field(description="The link: anyone holding it sees the site's dashboard, read-only.")
    password_protected: bool
    created_at: datetime
