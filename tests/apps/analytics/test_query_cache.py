"""The dashboard's fast paths give the answers of the slow ones: the sketch operations without per-register
loops equal the per-register definitions; the planner's cached merge of closed parts answers like raw
events (exact unions stay exact through the cache), cold and warm; two ranges whose stored buckets differ
only by where a dirty hour leaves its gap do not share a cache entry; the open hour is computed from raw
events once for every panel of a load, and again once a new event is stored."""

from __future__ import annotations

import math
import random
from datetime import date
from typing import Any

import pytest
from sqlalchemy import delete

from pentad.apps.analytics import query, rollups
from pentad.apps.analytics.hll import _ALPHA, EXACT_LIMIT, M, P, Sketch, StoredSketch, register_max
from pentad.apps.analytics.ingest import EventRow
from pentad.apps.analytics.models import AnalyticsDirtyBucket
from pentad.apps.analytics.tasks import run_rollups
from pentad.core.cache import MemoryCache
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import (
    GOALS,
    NOW,
    TIMEOUT,
    _ms,
    compare_all,
    seeded_rows,
    site_key_of,
    store,
)


def _registers(rng: random.Random, top: int) -> bytearray:
    return bytearray(rng.choice((0, 0, 1, 2, 3, rng.randrange(0, top + 1))) for _ in range(M))


def _reference_count(registers: bytearray) -> int:
    """The HyperLogLog estimate as defined, one register at a time."""
    estimate = _ALPHA * M * M / sum(2.0**-rank for rank in registers)
    zeros = registers.count(0)
    if estimate <= 2.5 * M and zeros:
        estimate = M * math.log(M / zeros)
    return round(estimate)


@pytest.mark.parametrize("seed", range(6))
def test_register_max_and_count_equal_their_per_register_definitions(seed: int) -> None:
    rng = random.Random(seed)
    top = 64 - P + 1  # the largest rank a register can hold
    left, right = _registers(rng, top), _registers(rng, top)
    left[0], right[0], left[1], right[1] = top, 0, 0, top  # both extremes on either side
    assert register_max(left, right) == bytes(map(max, left, right))
    assert register_max(right, left) == bytes(map(max, left, right))
    for registers in (left, right, bytearray(M), bytearray([top]) * M, bytearray(register_max(left, right))):
        sketch = Sketch.from_bytes(b"H" + bytes(registers))
        assert sketch.count() == _reference_count(registers)
    merged = Sketch.from_bytes(b"H" + bytes(left))
    merged.merge(Sketch.from_bytes(b"H" + bytes(right)))
    assert merged.registers == bytearray(map(max, left, right))


@pytest.mark.parametrize("size", [5, EXACT_LIMIT * 3])
def test_a_stored_sketch_counts_without_decoding_and_merges_like_the_sketch_it_stands_for(size: int) -> None:
    rng = random.Random(size)
    original = Sketch()
    for _ in range(size):
        original.add_hash(rng.getrandbits(64))
    original.compact()
    other = Sketch()
    for _ in range(40):
        other.add_hash(rng.getrandbits(64))
    stored = StoredSketch(original.to_text(), original.count())
    assert stored.count() == original.count()
    assert not stored._decoded  # counted from the entry
    into = Sketch()
    into.merge(other)
    into.merge(stored)  # decodes it
    expected = Sketch()
    expected.merge(other)
    expected.merge(original)
    assert into.count() == expected.count()
    grown = StoredSketch(original.to_text(), original.count())
    grown.merge(other)
    assert grown.count() == expected.count()
    assert grown.to_text() == expected.to_text()


def test_an_exact_union_past_the_limit_keeps_its_form_uncompacted() -> None:
    union = Sketch.of(range(EXACT_LIMIT))
    union.merge(Sketch.of(range(EXACT_LIMIT, 2 * EXACT_LIMIT)))
    kept = Sketch.from_text(union.to_text(compact=False))
    assert kept.exact is not None
    assert kept.count() == 2 * EXACT_LIMIT
    assert Sketch.from_text(union.to_text()).exact is None  # the stored form: registers


async def test_cached_merges_answer_like_raw_events_cold_and_warm(
    platform: Platform, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key))  # more than EXACT_LIMIT visitors per value over a month
    await run_rollups(platform, now=NOW)
    cache = MemoryCache(default_ttl=60, max_entries=1000)
    planning = query.Planning(now=NOW, cache=cache, site_version=1)
    # closed days, closed hours of today and the open hour: exact, as raw events count
    spans: list[tuple[str, date | None, date | None]] = [("30d", None, None)]
    async with platform.database.transaction() as session:
        await compare_all(session, key, "UTC", spans, planning)  # cold: fills the cache
        await compare_all(session, key, "UTC", spans, planning)  # warm: answers from it
        # with a closed month (February; its stored sketches are estimates): as the uncached planner
        span = query.resolve_range("custom", "UTC", start=date(2026, 2, 1), end=date(2026, 3, 20), now=NOW)
        uncached = query.Planning(now=NOW)
        expected = await query.totals(session, key, span, TIMEOUT, uncached)
        for _ in range(2):
            assert await query.totals(session, key, span, TIMEOUT, planning) == expected
        for dimension in rollups.DIMS:
            expected_rows = await query.breakdown(
                session, key, span, dimension, limit=1000, session_timeout=TIMEOUT, planning=uncached
            )
            for _ in range(2):
                rows = await query.breakdown(
                    session, key, span, dimension, limit=1000, session_timeout=TIMEOUT, planning=planning
                )
                assert rows == expected_rows, dimension


async def test_ranges_differing_only_in_where_the_gap_is_do_not_share_a_cache_entry(
    platform: Platform, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=2, per_day=40, seed=3))
    await run_rollups(platform, now=NOW)
    planning = query.Planning(now=NOW, cache=MemoryCache(default_ttl=60, max_entries=100), site_version=1)
    span = query.resolve_range("day", "UTC", now=NOW)  # today's closed hours come from hourly rows
    midnight = _ms(NOW) // 86_400_000 * 24
    first, second = midnight + 8, midnight + 10
    async with platform.database.transaction() as session:
        raw = await query.raw_totals(session, key, span, TIMEOUT)
        hourly = await query.raw_timeseries(session, key, span)
        assert hourly[8].pageviews
        assert hourly[10].pageviews
        # A rollup run claimed hour 8's mark while a flush marked hour 10 (the epoch has not moved): the
        # stored hours are the same in number, first and last, but not the same hours.
        session.add(AnalyticsDirtyBucket(site_key=key, hour=first))
        await session.flush()
        assert await query.totals(session, key, span, TIMEOUT, planning) == raw
        await session.execute(delete(AnalyticsDirtyBucket).where(AnalyticsDirtyBucket.hour == first))
        session.add(AnalyticsDirtyBucket(site_key=key, hour=second))
        await session.flush()
        assert await query.totals(session, key, span, TIMEOUT, planning) == raw
        before = await query.breakdown(
            session, key, span, "pages", limit=100, session_timeout=TIMEOUT, planning=query.Planning(now=NOW)
        )
        assert (
            await query.breakdown(
                session, key, span, "pages", limit=100, session_timeout=TIMEOUT, planning=planning
            )
            == before
        )


async def test_the_open_hour_is_computed_once_for_every_panel_and_again_after_a_new_event(
    platform: Platform, site: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=2, per_day=40, seed=5))
    await run_rollups(platform, now=NOW)
    planning = query.Planning(now=NOW, cache=MemoryCache(default_ttl=60, max_entries=100), site_version=1)
    uncached = query.Planning(now=NOW)
    computed: list[set[int]] = []
    compute_hours = rollups.compute_hours

    async def counted(*args: Any, **kwargs: Any) -> rollups.HoursResult:
        computed.append(set(args[2]))
        return await compute_hours(*args, **kwargs)

    monkeypatch.setattr(rollups, "compute_hours", counted)
    span = query.resolve_range("30d", "UTC", now=NOW)
    open_hour = _ms(NOW) // rollups.HOUR_MS

    async def every_panel(chosen: query.Planning) -> list[Any]:
        found: list[Any] = [await query.totals(session, key, span, TIMEOUT, chosen)]
        found.append(await query.timeseries(session, key, span, TIMEOUT, chosen))
        for dimension in rollups.DIMS:
            found.append(
                await query.breakdown(
                    session, key, span, dimension, limit=100, session_timeout=TIMEOUT, planning=chosen
                )
            )
        found.append(await query.conversions(session, key, span, GOALS, TIMEOUT, chosen))
        for prop in (None, "plan"):
            found.append(await query.properties(session, key, span, prop, TIMEOUT, chosen, limit=100))
        return found

    async with platform.database.transaction() as session:
        expected = await every_panel(uncached)
        assert computed == [{open_hour}] * len(expected)  # without a cache: once a panel
        computed.clear()
        assert await every_panel(planning) == expected
        assert computed == [{open_hour}]  # with one: once for them all
    await store(
        platform,
        [EventRow(site_key=key, ts=_ms(NOW) - 1000, visitor_id=77, name="pageview", hostname="shop.example",
                  path="/just-now")],
    )  # fmt: skip
    async with platform.database.transaction() as session:
        pages = await query.breakdown(
            session, key, span, "pages", limit=100, session_timeout=TIMEOUT, planning=planning
        )
        assert "/just-now" in [row.value for row in pages]
        assert computed == [{open_hour}] * 2
