"""Targeting JSON: what the schema refuses, and what the compiled predicate lets through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pentad.apps.ads.targeting import RequestFacts, Targeting, compile_targeting, glob_pattern

MONDAY_NOON_UTC = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def facts(**overrides: object) -> RequestFacts:
    values: dict[str, object] = {"at": MONDAY_NOON_UTC, "path": "/", "country": "DE", "device": "desktop"}
    values.update(overrides)
    return RequestFacts(**values)  # type: ignore[arg-type]


def matches(targeting: dict[str, object], request: RequestFacts, timezone: str = "UTC") -> bool:
    return compile_targeting(Targeting.model_validate(targeting), timezone)(request)


def test_empty_targeting_matches_every_request() -> None:
    assert matches({}, facts(country=None, device=None, path="/anything/at/all"))


@pytest.mark.parametrize(
    ("country", "expected"), [("DE", True), ("de", True), ("FR", True), ("US", False), (None, False)]
)
def test_countries_are_any_of_and_case_insensitive(country: str | None, expected: bool) -> None:
    assert matches({"countries": ["de", "FR"]}, facts(country=country)) is expected


def test_excluded_countries_refuse_and_unknown_country_passes_exclusion() -> None:
    targeting = {"exclude_countries": ["US"]}
    assert not matches(targeting, facts(country="US"))
    assert matches(targeting, facts(country="DE"))
    assert matches(targeting, facts(country=None))


def test_device_browser_and_source_compare_case_insensitively() -> None:
    targeting = {"devices": ["Mobile"], "browsers": ["Firefox"], "sources": ["search"]}
    assert matches(targeting, facts(device="mobile", browser="firefox", source="Search"))
    assert not matches(targeting, facts(device="desktop", browser="firefox", source="search"))
    assert not matches(targeting, facts(device="mobile", browser="Chrome", source="search"))
    assert not matches(targeting, facts(device="mobile", browser="firefox", source="social"))


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("/blog/*", "/blog/post", True),
        ("/blog/*", "/blog/2026/post", False),
        ("/blog/*", "/blog", False),
        ("/blog/**", "/blog/2026/post", True),
        ("/blog/**", "/blog/", True),
        ("/p?ge", "/page", True),
        ("/p?ge", "/p/ge", False),
        ("/a.b", "/aXb", False),
        ("/docs/*.html", "/docs/x.html", True),
        ("/", "/", True),
        ("/", "/x", False),
    ],
)
def test_path_globs(glob: str, path: str, expected: bool) -> None:
    assert (glob_pattern(glob).fullmatch(path) is not None) is expected
    assert matches({"paths": [glob]}, facts(path=path)) is expected


def test_excluded_paths_win_over_included_paths() -> None:
    targeting = {"paths": ["/news/**"], "exclude_paths": ["/news/private/**"]}
    assert matches(targeting, facts(path="/news/today"))
    assert not matches(targeting, facts(path="/news/private/x"))
    assert not matches(targeting, facts(path="/sport"))


def test_utm_and_custom_keys_must_each_match() -> None:
    targeting = {
        "utm": {"source": ["newsletter"], "campaign": ["xmas", "nye"]},
        "keys": {"section": ["sport"]},
    }
    good = facts(utm={"source": "newsletter", "campaign": "nye"}, keys={"section": "sport", "other": "x"})
    assert matches(targeting, good)
    assert not matches(targeting, facts(utm={"source": "newsletter"}, keys={"section": "sport"}))
    assert not matches(targeting, facts(utm={"source": "newsletter", "campaign": "xmas"}, keys={}))
    assert not matches(targeting, facts(utm={"source": "ads", "campaign": "xmas"}, keys={"section": "sport"}))


def test_hours_and_weekdays_are_read_in_the_sites_timezone() -> None:
    late_sunday_utc = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # Monday 08:30 in Tokyo
    assert matches({"weekdays": [0], "hours": [8]}, facts(at=late_sunday_utc), "Asia/Tokyo")
    assert not matches({"weekdays": [0]}, facts(at=late_sunday_utc), "UTC")
    assert matches({"weekdays": [6], "hours": [23]}, facts(at=late_sunday_utc), "UTC")
    assert not matches({"hours": [9, 10]}, facts(at=late_sunday_utc), "Asia/Tokyo")


def test_all_keys_combine_with_and() -> None:
    targeting = {"countries": ["DE"], "devices": ["mobile"]}
    assert not matches(targeting, facts(country="DE", device="desktop"))
    assert not matches(targeting, facts(country="FR", device="mobile"))
    assert matches(targeting, facts(country="DE", device="mobile"))


@pytest.mark.parametrize(
    "bad",
    [
        {"countries": ["DEU"]},
        {"devices": ["fridge"]},
        {"sources": ["carrier-pigeon"]},
        {"utm": {"flavour": ["x"]}},
        {"hours": [24]},
        {"weekdays": [7]},
        {"paths": ["no-leading-slash"]},
        {"keys": {"bad key!": ["x"]}},
        {"keys": {"k": [""]}},
        {"unknown": True},
        {"countries": ["DE"] * 201},
    ],
)
def test_the_schema_refuses_bad_targeting(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Targeting.model_validate(bad)
