"""The selection of one creative: priority tiers, weights, pacing and the house creative, checked over
many seeded draws against the binomial standard deviation of each expected share."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime

from pentad.apps.ads.decision import Candidate, select_creative
from pentad.apps.ads.targeting import RequestFacts, Targeting, compile_targeting

FACTS = RequestFacts(at=datetime(2026, 12, 4, 12, tzinfo=UTC), path="/news/x", country="DE")
HOUSE = uuid.uuid4()
DRAWS = 20_000


def candidate(priority: int = 5, weight: int = 1, probability: float = 1.0, **kwargs: object) -> Candidate:
    return Candidate(uuid.uuid4(), uuid.uuid4(), priority, weight, probability, **kwargs)  # type: ignore[arg-type]


def shares(
    candidates: list[Candidate], seed: int = 7, house: uuid.UUID | None = HOUSE
) -> Counter[uuid.UUID | None]:
    rng = random.Random(seed)
    counts: Counter[uuid.UUID | None] = Counter()
    for _ in range(DRAWS):
        selection = select_creative(candidates, FACTS, rng, house)
        counts[selection.creative_id if selection else None] += 1
    return counts


def assert_share(count: int, expected: float) -> None:
    """Within 5 binomial standard deviations of DRAWS x expected (a false alarm about once in 3.5 million)."""
    sd = math.sqrt(DRAWS * expected * (1 - expected))
    assert abs(count - DRAWS * expected) <= 5 * sd + 1, (count, DRAWS * expected, sd)


def test_weights_split_a_tier() -> None:
    heavy, light = candidate(weight=3), candidate(weight=1)
    counts = shares([heavy, light])
    assert_share(counts[heavy.creative_id], 0.75)
    assert_share(counts[light.creative_id], 0.25)
    assert counts[HOUSE] == 0


def test_the_highest_priority_tier_takes_everything_it_can() -> None:
    top, low = candidate(priority=9), candidate(priority=2, weight=100)
    counts = shares([low, top])
    assert counts[top.creative_id] == DRAWS


def test_pacing_throttles_and_the_rest_falls_to_the_next_tier() -> None:
    paced, fallback = candidate(priority=9, probability=0.3), candidate(priority=1)
    counts = shares([paced, fallback])
    assert_share(counts[paced.creative_id], 0.3)
    assert_share(counts[fallback.creative_id], 0.7)


def test_pacing_within_a_tier_hands_throttled_draws_to_the_others() -> None:
    always, half = candidate(), candidate(probability=0.5)
    counts = shares([always, half])
    # half passes pacing half the time, then wins the weighted draw half of those times
    assert_share(counts[half.creative_id], 0.25)
    assert_share(counts[always.creative_id], 0.75)


def test_the_house_creative_fills_what_pacing_leaves() -> None:
    paced = candidate(probability=0.2)
    counts = shares([paced])
    assert_share(counts[paced.creative_id], 0.2)
    assert_share(counts[HOUSE], 0.8)


def test_without_a_house_creative_nothing_is_served() -> None:
    assert shares([candidate(probability=0.0)], house=None) == Counter({None: DRAWS})
    selection = select_creative([], FACTS, random.Random(1), HOUSE)
    assert selection is not None
    assert selection.house
    assert selection.campaign_id is None


def test_targeting_and_zero_weight_make_a_candidate_ineligible() -> None:
    elsewhere = candidate(priority=10, targeting=compile_targeting(Targeting(countries=["FR"])))
    weightless = candidate(priority=10, weight=0)
    here = candidate(priority=1, targeting=compile_targeting(Targeting(paths=["/news/*"])))
    counts = shares([elsewhere, weightless, here])
    assert counts[here.creative_id] == DRAWS


def test_the_same_seed_gives_the_same_sequence() -> None:
    candidates = [candidate(weight=2), candidate(weight=5), candidate(probability=0.4)]
    assert shares(candidates, seed=11) == shares(candidates, seed=11)
