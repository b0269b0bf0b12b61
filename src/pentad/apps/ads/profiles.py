"""Hourly traffic profiles for even pacing: the cron job `ads.pacing_snapshot` (every minute).

The decision route counts each zone's requests per unix hour in the core cache (`ads:zr:<zone>:<hour>`).
Every run folds the counters of the current and the previous hour into ads_zone_traffic (keeping the larger
of the stored and the cached count, so a restarted cache loses nothing already folded), forgets hours
older than 8 days, and rebuilds each zone's profile from its last 7 days of complete hours: the share of
the requests each local hour of the site's timezone got. A zone with fewer than `MIN_REQUESTS` requests
in that week keeps the flat profile (no row). A profile is written only when it changed, so the delivery
snapshot (which reads the profiles) reloads about once an hour, not every minute.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.delivery import reload_after_commit
from pentad.apps.ads.models import AdsSite, AdsTrafficProfile, AdsZone, AdsZoneTraffic
from pentad.apps.ads.pacing import HOURS
from pentad.apps.ads.serving import zone_requests_key
from pentad.core.context import AppContext, JobContext
from pentad.core.db.base import utcnow

PACING_SNAPSHOT: Final = "ads.pacing_snapshot"
WINDOW_HOURS: Final = 7 * 24
KEEP_HOURS: Final = 8 * 24
MIN_REQUESTS: Final = 100


def profile_of(counts: dict[int, int], timezone: str) -> list[float] | None:
    """24 shares (local hours of `timezone`) from requests per unix hour, or None below MIN_REQUESTS."""
    total = sum(counts.values())
    if total < MIN_REQUESTS:
        return None
    zone = ZoneInfo(timezone)
    weights = [0.0] * HOURS
    for hour, requests in counts.items():
        weights[datetime.fromtimestamp(hour * 3600, zone).hour] += requests
    return [round(weight / total, 6) for weight in weights]


async def _fold(session: AsyncSession, context: AppContext, zone_ids: list[uuid.UUID], hour: int) -> None:
    hours = (hour - 1, hour)
    keys = [(zone_id, h) for zone_id in zone_ids for h in hours]
    cached = await context.cache.get_many([zone_requests_key(zone_id, h) for zone_id, h in keys])
    stored = {
        (zone_id, h): requests
        for zone_id, h, requests in await session.execute(
            select(AdsZoneTraffic.zone_id, AdsZoneTraffic.hour, AdsZoneTraffic.requests).where(
                AdsZoneTraffic.hour.in_(hours)
            )
        )
    }
    rows = []
    for key, value in zip(keys, cached, strict=True):
        requests = max(int(value or 0), stored.get(key, 0))
        if requests and requests != stored.get(key):
            rows.append({"zone_id": key[0], "hour": key[1], "requests": requests})
    for row in rows:
        await session.execute(
            delete(AdsZoneTraffic).where(
                AdsZoneTraffic.zone_id == row["zone_id"], AdsZoneTraffic.hour == row["hour"]
            )
        )
    if rows:
        await session.execute(insert(AdsZoneTraffic), rows)
    await session.execute(delete(AdsZoneTraffic).where(AdsZoneTraffic.hour < hour - KEEP_HOURS))


async def pacing_snapshot(context: AppContext, now: datetime | None = None) -> int:
    """Fold the request counters and rewrite the profiles that changed; returns how many were written."""
    hour = int((now or datetime.now(UTC)).timestamp()) // 3600
    written = 0
    async with context.database.transaction() as session:
        zones = list(
            await session.execute(
                select(AdsZone.id, AdsSite.timezone).join(AdsSite, AdsSite.id == AdsZone.site_id)
            )
        )
        await _fold(session, context, [zone_id for zone_id, _ in zones], hour)
        counts: dict[uuid.UUID, dict[int, int]] = {}
        for zone_id, h, requests in await session.execute(
            select(AdsZoneTraffic.zone_id, AdsZoneTraffic.hour, AdsZoneTraffic.requests).where(
                AdsZoneTraffic.hour >= hour - WINDOW_HOURS, AdsZoneTraffic.hour < hour
            )
        ):
            counts.setdefault(zone_id, {})[h] = requests
        stored = await session.execute(select(AdsTrafficProfile.zone_id, AdsTrafficProfile.weights))
        current: dict[uuid.UUID, list[float]] = {zone_id: weights for zone_id, weights in stored}  # noqa: C416
        for zone_id, timezone in zones:
            weights = profile_of(counts.get(zone_id, {}), timezone)
            old = current.get(zone_id)
            if weights == old or (weights is None and old is None):
                continue
            await session.execute(delete(AdsTrafficProfile).where(AdsTrafficProfile.zone_id == zone_id))
            if weights is not None:
                await session.execute(
                    insert(AdsTrafficProfile),
                    [
                        {
                            "zone_id": zone_id,
                            "weights": weights,
                            "requests": sum(counts[zone_id].values()),
                            "updated_at": utcnow(),
                        }
                    ],
                )
            written += 1
        if written:
            reload_after_commit(session, context)
    return written


async def pacing_snapshot_job(context: JobContext, _payload: dict[str, Any]) -> None:
    await pacing_snapshot(context.platform)
