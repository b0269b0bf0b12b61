"""Budget pacing, pure: how much of a campaign's daily budget may be spent by now, and the probability that
the next eligible request serves it.

Even pacing follows the zone's traffic rather than the clock: with an hourly profile (24 weights, the
share of a day's requests each local hour gets), the amount allowed by now is
`daily budget x share of the day's traffic already elapsed` (the current hour counted in proportion to
its elapsed minutes). A campaign ahead of that line is not served; behind it, it is served with the
probability that closes the gap over the next minute:
`clamp((allowed_by_now - delivered) / expected_next_minute, 0, 1)`.
As-soon-as-possible pacing serves with probability 1 until the daily budget is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

PacingMode = Literal["even", "asap"]
HOURS = 24
FLAT_PROFILE: tuple[float, ...] = (1.0,) * HOURS


def normalised(profile: Sequence[float]) -> tuple[float, ...]:
    """The profile as shares summing to 1; a missing, wrong-length or all-zero profile is flat."""
    if len(profile) != HOURS or any(weight < 0 for weight in profile) or sum(profile) <= 0:
        profile = FLAT_PROFILE
    total = sum(profile)
    return tuple(weight / total for weight in profile)


def hour_starts(shares: Sequence[float]) -> tuple[float, ...]:
    """The share of a day's traffic gone by at the start of each local hour (running sums of `shares`, a
    normalised profile)."""
    starts, total = [], 0.0
    for share in shares:
        starts.append(total)
        total += share
    return tuple(starts)


def elapsed_share(profile: Sequence[float], local_now: datetime) -> float:
    """The share of a day's traffic that has gone by at `local_now` (the site's local time)."""
    shares = normalised(profile)
    return elapsed_share_of(shares, hour_starts(shares), local_now)


def elapsed_share_of(shares: Sequence[float], starts: Sequence[float], local_now: datetime) -> float:
    """`elapsed_share` from the normalised profile and its `hour_starts`, computed once (ZoneEntry)."""
    hour = local_now.hour
    into_hour = (local_now.minute * 60 + local_now.second + local_now.microsecond / 1e6) / 3600
    return min(1.0, starts[hour] + shares[hour] * into_hour)


def allowed_by_now(daily_budget: float, profile: Sequence[float], local_now: datetime) -> float:
    """How much of `daily_budget` (micros, impressions or clicks) even pacing allows spent by now."""
    return daily_budget * elapsed_share(profile, local_now)


def serve_probability(
    mode: PacingMode,
    *,
    daily_budget: float | None,
    delivered: float,
    profile: Sequence[float],
    local_now: datetime,
    expected_next_minute: float,
    elapsed: float | None = None,
) -> float:
    """The probability of serving the campaign to the next eligible request, in [0, 1].

    `daily_budget` None means no daily limit (always 1). `expected_next_minute` is what serving every
    eligible request for the next minute would deliver (in the budget's unit); when it is not positive
    there is nothing to pace against, so a campaign behind its line is served. `elapsed` is
    `elapsed_share(profile, local_now)` when the caller computed it once for many campaigns."""
    if daily_budget is None:
        return 1.0
    if delivered >= daily_budget:
        return 0.0
    if mode == "asap":
        return 1.0
    if elapsed is None:
        elapsed = elapsed_share(profile, local_now)
    gap = daily_budget * elapsed - delivered
    if gap <= 0:
        return 0.0
    if expected_next_minute <= 0:
        return 1.0
    return min(1.0, gap / expected_next_minute)
