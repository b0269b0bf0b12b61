"""Even and as-soon-as-possible pacing against a zone's hourly traffic profile."""

from __future__ import annotations

from datetime import datetime

import pytest

from pentad.apps.ads.pacing import (
    FLAT_PROFILE,
    allowed_by_now,
    elapsed_share,
    elapsed_share_of,
    hour_starts,
    normalised,
    serve_probability,
)

EVENING_HEAVY = (0.0,) * 18 + (1.0,) * 6  # all traffic between 18:00 and 24:00


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 4, hour, minute)


def test_a_flat_profile_allows_budget_in_proportion_to_the_clock() -> None:
    assert allowed_by_now(24_000_000, FLAT_PROFILE, at(0)) == 0
    assert allowed_by_now(24_000_000, FLAT_PROFILE, at(6)) == pytest.approx(6_000_000)
    assert allowed_by_now(24_000_000, FLAT_PROFILE, at(12, 30)) == pytest.approx(12_500_000)
    assert allowed_by_now(24_000_000, FLAT_PROFILE, datetime(2026, 12, 4, 23, 59, 59, 999999)) == (
        pytest.approx(24_000_000, rel=1e-6)
    )


def test_even_pacing_follows_the_traffic_not_the_clock() -> None:
    assert allowed_by_now(600, EVENING_HEAVY, at(17, 59)) == 0
    assert allowed_by_now(600, EVENING_HEAVY, at(19, 30)) == pytest.approx(150)
    assert elapsed_share(EVENING_HEAVY, at(21)) == pytest.approx(0.5)


@pytest.mark.parametrize("profile", [(), (1.0,) * 23, (0.0,) * 24, (-1.0,) + (1.0,) * 23])
def test_a_broken_profile_falls_back_to_flat(profile: tuple[float, ...]) -> None:
    assert normalised(profile) == pytest.approx([1 / 24] * 24)


def test_even_pacing_closes_the_gap_over_the_next_minute() -> None:
    common = {"daily_budget": 2400.0, "profile": FLAT_PROFILE, "local_now": at(12)}  # allowed 1200
    assert serve_probability("even", delivered=1100, expected_next_minute=400, **common) == pytest.approx(
        0.25
    )
    assert serve_probability("even", delivered=0, expected_next_minute=400, **common) == 1.0
    assert serve_probability("even", delivered=1200, expected_next_minute=400, **common) == 0.0
    assert serve_probability("even", delivered=1300, expected_next_minute=400, **common) == 0.0
    assert serve_probability("even", delivered=1100, expected_next_minute=0, **common) == 1.0


def test_asap_serves_until_the_daily_budget_is_spent() -> None:
    common = {"profile": FLAT_PROFILE, "local_now": at(1), "expected_next_minute": 1000.0}
    assert serve_probability("asap", daily_budget=2400, delivered=2399, **common) == 1.0
    assert serve_probability("asap", daily_budget=2400, delivered=2400, **common) == 0.0
    assert serve_probability("even", daily_budget=2400, delivered=2400, **common) == 0.0


def test_no_daily_budget_means_no_pacing() -> None:
    assert (
        serve_probability(
            "even",
            daily_budget=None,
            delivered=10**9,
            profile=FLAT_PROFILE,
            local_now=at(0),
            expected_next_minute=1,
        )
        == 1.0
    )


def test_the_zone_precomputed_share_is_the_elapsed_share() -> None:
    shares = normalised(EVENING_HEAVY)
    for hour, minute in ((0, 0), (18, 0), (19, 30), (23, 59)):
        expected = elapsed_share(EVENING_HEAVY, at(hour, minute))
        assert elapsed_share_of(shares, hour_starts(shares), at(hour, minute)) == expected
    assert hour_starts(shares)[19] == pytest.approx(1 / 6)
