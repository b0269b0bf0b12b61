"""Which creative one ad request gets, as a pure function over candidates the caller has loaded.

Order (Revive's and Ad Manager's priority tiers): the eligible candidates (targeting matches and pacing
leaves a chance) → the highest priority tier with any → in that tier each candidate passes pacing with
its serve probability, and one of those that passed is drawn at random by weight → if none passed, the
next tier down → if no tier serves, the zone's house creative (which may be none). Dates, status, daily
caps and frequency caps are the caller's to apply before (they need counters); a capped candidate is
left out or given serve probability 0.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pentad.apps.ads.targeting import Predicate, RequestFacts


def _anything(facts: RequestFacts) -> bool:
    return True


@dataclass(frozen=True)
class Candidate:
    creative_id: uuid.UUID
    campaign_id: uuid.UUID
    priority: int
    """1-10, 10 first."""
    weight: int
    """Relative share within the tier (≥ 1)."""
    serve_probability: float = 1.0
    """From pacing.serve_probability, in [0, 1]."""
    targeting: Predicate = _anything


@dataclass(frozen=True)
class Selection:
    creative_id: uuid.UUID
    campaign_id: uuid.UUID | None
    house: bool


def select_creative(
    candidates: Sequence[Candidate],
    facts: RequestFacts,
    rng: random.Random,
    house_creative_id: uuid.UUID | None = None,
) -> Selection | None:
    """The creative to serve (module docstring); None when nothing is eligible and the zone has no house
    creative."""
    tiers: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.serve_probability > 0 and candidate.weight > 0 and candidate.targeting(facts):
            tiers.setdefault(candidate.priority, []).append(candidate)
    for priority in sorted(tiers, reverse=True):
        passed = [
            candidate
            for candidate in tiers[priority]
            if candidate.serve_probability >= 1 or rng.random() < candidate.serve_probability
        ]
        if passed:
            (chosen,) = rng.choices(passed, weights=[candidate.weight for candidate in passed])
            return Selection(chosen.creative_id, chosen.campaign_id, house=False)
    if house_creative_id is not None:
        return Selection(house_creative_id, None, house=True)
    return None
