"""Retention tiers: how long a site keeps raw events, hourly, daily and monthly rollups.

A site's `retention` is `{"raw": "60d", "hourly": "2y", "daily": "forever", "monthly": "forever"}`
(a missing tier takes the server default, PENTAD_ANALYTICS__DEFAULT_RETENTION). A duration is a number and
a unit — `h` hours, `d` days, `w` weeks, `mo` months, `y` years — or `forever`; each tier keeps at least
as long as the one before (raw ≤ hourly ≤ daily ≤ monthly). The cron job `analytics.enforce_retention`
(daily) deletes what is older, raw events and sessions in chunks of DELETE_CHUNK rows per transaction.

On PostgreSQL raw events are partitioned by month (RAW_EVENTS, migration analytics_0005): a month every
site's raw tier has passed is dropped whole first (`drop_expired_raw`), so the chunked deletes only have
the months some site still keeps, or the days of a month that has not wholly expired, to do.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import rollups
from pentad.apps.analytics.models import (
    AnalyticsDrop,
    AnalyticsEvent,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsRollupMonthly,
    AnalyticsSession,
    AnalyticsSite,
)
from pentad.core.db import partitions
from pentad.core.errors import AppError

TIERS = ("raw", "hourly", "daily", "monthly")
FOREVER = "forever"
DEFAULT = {"raw": "60d", "hourly": "2y", "daily": FOREVER, "monthly": FOREVER}
DELETE_CHUNK = 5000
_DURATION = re.compile(r"^([1-9][0-9]{0,4})(h|d|w|mo|y)$")
_APPROX_HOURS = {"h": 1, "d": 24, "w": 24 * 7, "mo": 24 * 30, "y": 24 * 365}

RAW_EVENTS = partitions.PartitionedTable(
    cast(Table, AnalyticsEvent.__table__), "ts", "month", ahead=2, engines=("postgresql",), epoch="ms"
)
"""Raw events: a partition a month on PostgreSQL, made ahead by the core's cron job; a plain table on
SQLite and MariaDB. No `retention` of its own: the sites' tiers decide (drop_expired_raw)."""


class RawDataExpired(AppError):
    """A question only raw events can answer, over a range older than the raw tier keeps them."""

    status, code = 422, "filter_needs_raw_data"


def parse_duration(text: str) -> tuple[int, str] | None:
    """`(count, unit)`, or None for `forever`; ValueError for anything else."""
    text = text.strip().lower()
    if text == FOREVER:
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 48h, 60d, 8w, 6mo, 2y or forever")
    return int(match.group(1)), match.group(2)


def _approx_hours(text: str) -> float:
    parsed = parse_duration(text)
    return float("inf") if parsed is None else parsed[0] * _APPROX_HOURS[parsed[1]]


def validate_tiers(tiers: Mapping[str, str], *, complete: bool) -> dict[str, str]:
    """Check names, durations and order (raw ≤ hourly ≤ daily ≤ monthly); ValueError says what is wrong."""
    unknown = set(tiers) - set(TIERS)
    if unknown:
        raise ValueError(
            f"unknown retention tier(s) {', '.join(sorted(unknown))}; tiers are {', '.join(TIERS)}"
        )
    if complete and set(tiers) != set(TIERS):
        raise ValueError(f"retention needs every tier: {', '.join(TIERS)}")
    clean = {name: tiers[name].strip().lower() for name in TIERS if name in tiers}
    for value in clean.values():
        parse_duration(value)
    present = [name for name in TIERS if name in clean]
    for shorter, longer in itertools.pairwise(present):
        if _approx_hours(clean[shorter]) > _approx_hours(clean[longer]):
            raise ValueError(f"{shorter} ({clean[shorter]}) must not outlast {longer} ({clean[longer]})")
    return clean


def effective(site_tiers: Mapping[str, str] | None, default: Mapping[str, str]) -> dict[str, str]:
    """A site's tiers with the server default filled in."""
    return {**default, **(site_tiers or {})}


def merge_checked(
    current: Mapping[str, str] | None, change: Mapping[str, str], default: Mapping[str, str]
) -> dict[str, str]:
    """The tiers a site has after `change` (some tiers); 422 `bad_retention` when they are out of order."""
    try:
        return validate_tiers({**effective(current, default), **change}, complete=True)
    except ValueError as error:
        raise AppError(str(error), status=422, code="bad_retention") from None


def cutoff(text: str, now: datetime) -> datetime | None:
    """The first instant a tier of this duration still keeps; None for forever."""
    parsed = parse_duration(text)
    if parsed is None:
        return None
    count, unit = parsed
    if unit in ("h", "d", "w"):
        return now - timedelta(hours=count * _APPROX_HOURS[unit])
    months = count * (12 if unit == "y" else 1)
    index = now.year * 12 + now.month - 1 - months
    year, month = divmod(index, 12)
    day = min(now.day, 28)
    return now.replace(year=year, month=month + 1, day=day)


def raw_floor_ms(tiers: Mapping[str, str], now: datetime) -> int:
    """Unix ms before which raw events are gone (0: kept forever)."""
    moment = cutoff(tiers["raw"], now)
    return 0 if moment is None else int(moment.timestamp() * 1000)


def ensure_raw_available(start_ms: int, tiers: Mapping[str, str], now: datetime | None = None) -> None:
    """Raise 422 `filter_needs_raw_data` when a range starting at `start_ms` needs raw events the raw
    tier no longer keeps (filters and other questions rollups cannot answer)."""
    floor = raw_floor_ms(tiers, now or datetime.now(UTC))
    if start_ms < floor:
        raise RawDataExpired(
            f"This question needs raw events, which this site keeps for {tiers['raw']} (tier `raw`); "
            "pick a shorter, more recent range or drop the filter.",
            tier="raw",
            kept=tiers["raw"],
        )


@dataclass
class Pruned:
    events: int = 0
    sessions: int = 0
    drops: int = 0
    hourly: int = 0
    daily: int = 0
    monthly: int = 0
    partitions: int = 0
    """Whole months of raw events dropped (PostgreSQL; their rows are not in `events`)."""


async def _chunked_delete(
    session: AsyncSession,
    table: type[AnalyticsEvent] | type[AnalyticsDrop],
    site_key: int,
    condition: ColumnElement[bool],
) -> int:
    query = select(table.id).where(table.site_key == site_key, condition).limit(DELETE_CHUNK)
    ids = list((await session.scalars(query)).all())
    if ids:
        # The condition again: on a partitioned table it keeps the delete to the partitions it names.
        await session.execute(delete(table).where(table.id.in_(ids), condition))
    return len(ids)


async def drop_expired_raw(
    session: AsyncSession, default: Mapping[str, str], now: datetime, pruned: Pruned
) -> None:
    """Drop the months of raw events that every site's raw tier has passed, whole (PostgreSQL; elsewhere
    nothing): the partitions that end at or before the earliest of the sites' raw floors, and the default
    partition's rows of those months. One site keeping raw events forever keeps every month."""
    stored = (await session.scalars(select(AnalyticsSite.retention))).all()
    floors = [raw_floor_ms(effective(tiers, default), now) for tiers in stored]
    if not floors or min(floors) == 0:
        return
    cutoff = datetime.fromtimestamp(min(floors) / 1000, UTC)
    dropped = await partitions.drop_expired(session, RAW_EVENTS, cutoff)
    pruned.partitions += len(dropped.partitions)
    pruned.events += dropped.default_rows


async def prune_site_step(
    session: AsyncSession, site: AnalyticsSite, tiers: Mapping[str, str], now: datetime, pruned: Pruned
) -> bool:
    """One chunk of a site's pruning (one transaction's worth); True while more is left."""
    floor = raw_floor_ms(tiers, now)
    if floor:
        count = await _chunked_delete(session, AnalyticsEvent, site.key, AnalyticsEvent.ts < floor)
        pruned.events += count
        drops = await _chunked_delete(
            session, AnalyticsDrop, site.key, AnalyticsDrop.minute < floor // 60_000
        )
        pruned.drops += drops
        if count == DELETE_CHUNK or drops == DELETE_CHUNK:
            return True
        result = await session.execute(
            delete(AnalyticsSession).where(
                AnalyticsSession.site_key == site.key, AnalyticsSession.start_ts < floor
            )
        )
        pruned.sessions += int(getattr(result, "rowcount", 0) or 0)
    zone = zoneinfo.ZoneInfo(site.timezone)
    local = now.astimezone(zone)
    for tier, table, attribute in (
        ("hourly", AnalyticsRollupHourly, "hourly"),
        ("daily", AnalyticsRollupDaily, "daily"),
        ("monthly", AnalyticsRollupMonthly, "monthly"),
    ):
        moment = cutoff(tiers[tier], local)
        if moment is None:
            continue
        if tier == "hourly":
            bucket = int(moment.timestamp()) // 3600
        elif tier == "daily":
            bucket = rollups.day_number(moment.date())
        else:
            bucket = rollups.month_number(moment.date())
        result = await session.execute(delete(table).where(table.site_key == site.key, table.bucket < bucket))
        setattr(pruned, attribute, getattr(pruned, attribute) + int(getattr(result, "rowcount", 0) or 0))
    return False
