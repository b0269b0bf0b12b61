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
