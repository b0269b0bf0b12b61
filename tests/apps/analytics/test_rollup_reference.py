"""rollups.compute_hours (C-level counters, one read of a whole day's window when many visitors are in it)
gives exactly what the straightforward per-event computation it replaced gave — every row's numbers and
sketch bytes and the visits — on a generated set, for whole days and single hours,
through both of its read paths."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import select

from pentad.apps.analytics import rollups
from pentad.apps.analytics.hll import visitor_hash
from pentad.apps.analytics.models import AnalyticsEvent
from pentad.apps.analytics.rollups import ACQUISITION, COLUMNS, DIMS, HOUR_MS, PAGEVIEW, TOTALS, Agg, Key
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import NOW, TIMEOUT, _ms, seeded_rows, site_key_of, store

_READ = (
    "visitor_id", "ts", "name", "revenue_micros", "currency", "props",
    *sorted(set(COLUMNS.values()) - {"name", "exit"}),
)  # fmt: skip


async def reference_hours(session: Any, site_key: int, hours: set[int]) -> tuple[Any, Any]:
    """The per-event computation rollups used before (one dict per event, every key's sketch fed one
    event at a time): by hour, {key: numbers and sketch text}; the visits."""
    day = min(hours) * HOUR_MS // rollups.DAY_MS
    timeout_ms = TIMEOUT * 1000
    window = (day * rollups.DAY_MS - timeout_ms, (day + 1) * rollups.DAY_MS + timeout_ms)
    first, last = min(hours) * HOUR_MS, (max(hours) + 1) * HOUR_MS
    columns = [getattr(AnalyticsEvent, name) for name in _READ]
    events = (
        await session.execute(
            select(*columns)
            .where(
                AnalyticsEvent.site_key == site_key,
                AnalyticsEvent.ts >= window[0],
                AnalyticsEvent.ts < window[1],
            )
            .order_by(AnalyticsEvent.visitor_id, AnalyticsEvent.ts)
        )
    ).all()
    seen = {int(row[0]) for row in events if first <= int(row[1]) < last}
    aggs: dict[int, dict[Key, Agg]] = {hour: defaultdict(Agg) for hour in hours}
    visits: list[rollups.Visit] = []
    current: rollups.Visit | None = None
    counted: list[tuple[dict[str, Any], rollups.Visit]] = []
    for raw in events:
        event = dict(zip(_READ, raw, strict=True))
        visitor, ts, is_view = int(event["visitor_id"]), int(event["ts"]), event["name"] == PAGEVIEW
        if visitor not in seen:
            continue
        if current is None or current.visitor_id != visitor or ts - current.end > timeout_ms:
            current = rollups.Visit(visitor, ts, ts, event, event["path"])
            visits.append(current)
        current.end, current.last_path = ts, event["path"]
        if is_view:
            current.pageviews += 1
        else:
            current.events += 1
        if ts // HOUR_MS in hours:
            counted.append((event, current))
    for event, visit in counted:  # the visits are whole now: their exit pages are known
        visitor, ts, is_view = int(event["visitor_id"]), int(event["ts"]), event["name"] == PAGEVIEW
        keys: list[Key] = [(TOTALS, "")]
        for name, dim in DIMS.items():
            if (name == "pages" and not is_view) or (name == "events" and is_view):
                continue
            if name == "exit_pages":
                keys.append((dim, visit.last_path))
            else:
                keys.append((dim, (visit.first if name in ACQUISITION else event)[COLUMNS[name]]))
        for prop, value in (event["props"] or {}).items():
            keys += [(rollups.PROP_KEYS, prop), (rollups.PROP_VALUES, rollups.prop_value(prop, value))]
        if event["revenue_micros"] and event["currency"]:
            keys.append(
                (rollups.REVENUE, rollups.revenue_value(event["currency"], event["name"], event["path"]))
            )
        for key in keys:
            agg = aggs[ts // HOUR_MS][key]
            agg.sketch.add_hash(visitor_hash(visitor))
            agg.pageviews += int(is_view)
            agg.events += int(not is_view)
            agg.revenue_micros += int(event["revenue_micros"] or 0)
    for visit in visits:
        start_hour = visit.start // HOUR_MS
        if start_hour in hours:
            for key in [
                (TOTALS, ""),
                *((DIMS[name], visit.first[COLUMNS[name]]) for name in sorted(ACQUISITION)),
                (DIMS["exit_pages"], visit.last_path),
            ]:
                agg = aggs[start_hour][key]
                agg.visits += 1
                agg.bounces += int(visit.bounce)
                agg.duration_ms += visit.end - visit.start
    return _numbers(aggs), _visits(visits)


def _numbers(aggs: dict[int, dict[Key, Agg]]) -> dict[int, dict[Key, tuple[Any, ...]]]:
    return {
        hour: {
            key: (a.sketch.count(), a.visits, a.pageviews, a.events, a.bounces, a.duration_ms,
                  a.revenue_micros, a.sketch.to_text())
            for key, a in by_key.items()
        }
        for hour, by_key in aggs.items()
    }  # fmt: skip


def _visits(visits: list[rollups.Visit]) -> list[tuple[Any, ...]]:
    return sorted(
        (v.visitor_id, v.start, v.end, v.pageviews, v.events, v.last_path, sorted(v.first.items()))
        for v in visits
    )


@pytest.mark.parametrize("in_limit", [30_000, 7], ids=["in-list", "whole-window"])
async def test_compute_hours_equals_the_per_event_reference(
    platform: Platform, site: dict[str, str], monkeypatch: pytest.MonkeyPatch, in_limit: int
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=6, per_day=60, seed=11))
    monkeypatch.setattr(rollups, "_IN_LIMIT", in_limit)
    last_day = _ms(NOW) // rollups.DAY_MS
    groups = [set(range(day * 24, day * 24 + 24)) for day in range(last_day - 6, last_day + 1)]
    groups += [{(last_day - 2) * 24 + 9}, {(last_day - 3) * 24 + 12, (last_day - 3) * 24 + 15}]
    checked = 0
    async with platform.database.transaction() as session:
        for hours in groups:
            result = await rollups.compute_hours(session, key, hours, TIMEOUT)
            numbers, visits = await reference_hours(session, key, hours)
            assert _numbers(result.aggs) == numbers
            assert _visits(result.visits) == visits
            checked += sum(len(by_key) for by_key in numbers.values())
    assert checked > 1000
