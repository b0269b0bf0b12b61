"""Visitor sketches (pure, run once): exact up to 128 visitors, HyperLogLog (p = 12) beyond with the
documented ≈1.6 % standard error, unions by merge, a stable byte form."""

from __future__ import annotations

import random

import pytest

from pentad.apps.analytics.hll import EXACT_LIMIT, STANDARD_ERROR, M, Sketch, visitor_hash


def ids(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(63) - (1 << 62) for _ in range(count)]


def test_small_sets_are_exact_and_round_trip() -> None:
    visitors = ids(EXACT_LIMIT, 1)
    sketch = Sketch.of(visitors + visitors[:10])  # repeats count once
    assert sketch.count() == EXACT_LIMIT
    raw = sketch.to_bytes()
    assert raw[:1] == b"E"
    assert len(raw) == 1 + 8 * EXACT_LIMIT
    assert Sketch.from_bytes(raw).count() == EXACT_LIMIT
    assert Sketch.from_bytes(b"").count() == 0
    with pytest.raises(ValueError, match="not a visitor sketch"):
        Sketch.from_bytes(b"Hshort")


def test_merging_exact_sketches_counts_the_union_exactly() -> None:
    first, second = ids(100, 2), ids(100, 3)
    merged = Sketch.of(first)
    merged.merge(Sketch.of(second[:80] + first[:40]))  # 120 visitors: stored exact
    assert merged.count() == 180  # an exact union, past the storage limit, until compacted
    merged.compact()
    assert merged.to_bytes()[:1] == b"H"


@pytest.mark.parametrize("count", [129, 1_000, 20_000, 200_000])
def test_large_sets_are_estimated_within_the_documented_error(count: int) -> None:
    sketch = Sketch.of(ids(count, count))
    raw = sketch.to_bytes()
    assert raw[:1] == b"H"
    assert len(raw) == 1 + M
    estimate = Sketch.from_bytes(raw).count()
    assert abs(estimate - count) <= 4 * STANDARD_ERROR * count  # four standard errors
    assert pytest.approx(0.01625, abs=1e-4) == STANDARD_ERROR


def test_merging_dense_sketches_estimates_the_union() -> None:
    shared = ids(30_000, 11)
    left, right = Sketch.of(shared + ids(10_000, 12)), Sketch.of(shared + ids(10_000, 13))
    union = Sketch()
    union.merge(Sketch.of(ids(50, 14)))  # exact into dense
    union.merge(left)
    union.merge(right)
    assert abs(union.count() - 50_050) <= 4 * STANDARD_ERROR * 50_050
    again = Sketch.from_bytes(left.to_bytes())
    again.merge(left)  # idempotent: a set merged with itself
    assert again.count() == left.count()


def test_visitor_hashes_are_stable_and_spread() -> None:
    assert visitor_hash(-5) == visitor_hash(-5)
    assert visitor_hash(-5) != visitor_hash(5)
    tops = {visitor_hash(v) >> 60 for v in range(200)}
    assert len(tops) == 16
