"""A campaign's targeting: the JSON a campaign stores, validated by `Targeting`, and compiled once into a
predicate over the facts of one ad request (`RequestFacts`).

Rules: every key given must match (AND); within a key, any listed value matches (OR); a missing or empty key
matches everything. Countries are ISO 3166-1 alpha-2, upper case; devices, browsers and sources compare
case-insensitively. Page paths are globs: `*` matches within one path segment, `**` across segments, `?` one
character (`/blog/*` matches `/blog/a` but not `/blog/a/b`; `/blog/**` matches both). Hours (0-23) and
weekdays (0 = Monday … 6 = Sunday) are read in the site's timezone. `exclude_*` keys refuse a match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

DEVICES = ("desktop", "mobile", "tablet", "tv", "bot", "other")
SOURCES = ("direct", "search", "social", "email", "paid", "referral")
UTM_KEYS = ("source", "medium", "campaign", "content", "term")

Country = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
Word = Annotated[str, StringConstraints(min_length=1, max_length=100)]
PathGlob = Annotated[str, StringConstraints(pattern=r"^/", max_length=500)]
KeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
MAX_VALUES = 200


@dataclass(frozen=True)
class RequestFacts:
    """What one ad request says about its visitor and page (the decision route fills it from the core's
    visitor facts and the loader's query). `at` is an aware UTC time; absent facts are None or empty."""

    at: datetime
    path: str = "/"
    country: str | None = None
    device: str | None = None
    browser: str | None = None
    source: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)
    keys: Mapping[str, str] = field(default_factory=dict)


Predicate = Callable[[RequestFacts], bool]


class Targeting(BaseModel):
    """A campaign's targeting JSON (all keys optional)."""

    model_config = ConfigDict(extra="forbid")

    countries: list[Country] = Field(default_factory=list, max_length=MAX_VALUES)
    exclude_countries: list[Country] = Field(default_factory=list, max_length=MAX_VALUES)
    devices: list[str] = Field(default_factory=list, max_length=len(DEVICES))
    browsers: list[Word] = Field(default_factory=list, max_length=MAX_VALUES)
    paths: list[PathGlob] = Field(default_factory=list, max_length=MAX_VALUES)
    exclude_paths: list[PathGlob] = Field(default_factory=list, max_length=MAX_VALUES)
    sources: list[str] = Field(default_factory=list, max_length=len(SOURCES))
    utm: dict[str, list[Word]] = Field(default_factory=dict)
    hours: list[Annotated[int, Field(ge=0, le=23)]] = Field(default_factory=list, max_length=24)
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(default_factory=list, max_length=7)
    keys: dict[KeyName, list[Word]] = Field(default_factory=dict, max_length=50)

    @field_validator("countries", "exclude_countries")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [country.upper() for country in value]

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, value: list[str]) -> list[str]:
        return _known(value, DEVICES, "device")

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        return _known(value, SOURCES, "source")

    @field_validator("utm")
    @classmethod
    def _known_utm(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, values in value.items():
            if key not in UTM_KEYS:
                raise ValueError(f"unknown UTM parameter {key!r} (one of {', '.join(UTM_KEYS)})")
            if len(values) > MAX_VALUES:
                raise ValueError(f"at most {MAX_VALUES} values per UTM parameter")
        return value

    @field_validator("keys")
    @classmethod
    def _bounded_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if any(len(values) > MAX_VALUES for values in value.values()):
            raise ValueError(f"at most {MAX_VALUES} values per key")
        return value


def _known(values: list[str], known: tuple[str, ...], what: str) -> list[str]:
    lowered = [value.lower() for value in values]
    for value in lowered:
        if value not in known:
            raise ValueError(f"unknown {what} {value!r} (one of {', '.join(known)})")
    return lowered


def glob_pattern(glob: str) -> re.Pattern[str]:
    """The regular expression of a path glob (module docstring); the whole path must match."""
    parts: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("**", index):
            parts.append(".*")
            index += 2
        elif glob[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(glob[index]))
            index += 1
    return re.compile("".join(parts))


def _any_glob(globs: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{glob_pattern(glob).pattern})" for glob in globs))


def compile_targeting(targeting: Targeting, timezone: str = "UTC") -> Predicate:
    """One predicate for the whole targeting; checks only the keys the targeting sets."""
    zone = ZoneInfo(timezone)
    checks: list[Predicate] = []
    if targeting.countries:
        countries = frozenset(targeting.countries)
        checks.append(lambda facts: (facts.country or "").upper() in countries)
    if targeting.exclude_countries:
        excluded = frozenset(targeting.exclude_countries)
        checks.append(lambda facts: (facts.country or "").upper() not in excluded)
    if targeting.devices:
        devices = frozenset(targeting.devices)
        checks.append(lambda facts: (facts.device or "").lower() in devices)
    if targeting.browsers:
        browsers = frozenset(browser.lower() for browser in targeting.browsers)
        checks.append(lambda facts: (facts.browser or "").lower() in browsers)
    if targeting.paths:
        paths = _any_glob(targeting.paths)
        checks.append(lambda facts: paths.fullmatch(facts.path) is not None)
    if targeting.exclude_paths:
        excluded_paths = _any_glob(targeting.exclude_paths)
        checks.append(lambda facts: excluded_paths.fullmatch(facts.path) is None)
    if targeting.sources:
        sources = frozenset(targeting.sources)
        checks.append(lambda facts: (facts.source or "").lower() in sources)
    for key, values in targeting.utm.items():
        if values:
            checks.append(_value_in("utm", key, frozenset(values)))
    for key, values in targeting.keys.items():
        if values:
            checks.append(_value_in("keys", key, frozenset(values)))
    if targeting.hours:
        hours = frozenset(targeting.hours)
        checks.append(lambda facts: _local(facts.at, zone).hour in hours)
    if targeting.weekdays:
        weekdays = frozenset(targeting.weekdays)
        checks.append(lambda facts: _local(facts.at, zone).weekday() in weekdays)

    def matches(facts: RequestFacts) -> bool:
        return all(check(facts) for check in checks)

    return matches


def _value_in(attribute: str, key: str, values: frozenset[str]) -> Predicate:
    def check(facts: RequestFacts) -> bool:
        found: Mapping[str, str] = getattr(facts, attribute)
        return found.get(key) in values

    return check


def _local(at: datetime, zone: ZoneInfo) -> datetime:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(zone)
