"""Hourly traffic profiles: the decision route counts each zone's requests per hour, `ads.pacing_snapshot`
folds the counters into ads_zone_traffic and makes each zone's share of a day's requests per local hour
from the last 7 days, and the delivery snapshot hands that profile to even pacing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.ads.delivery import delivery_snapshot
from pentad.apps.ads.models import AdsTrafficProfile, AdsZoneTraffic
from pentad.apps.ads.pacing import FLAT_PROFILE
from pentad.apps.ads.profiles import pacing_snapshot, profile_of
from pentad.apps.ads.serving import zone_requests_key
from pentad.core.platform import Platform
from tests.apps.ads.serving import decide, setup
from tests.factories import Account

DAY_ONE = datetime(2026, 12, 1, tzinfo=UTC)


def _hour(at: datetime) -> int:
    return int(at.timestamp()) // 3600


async def _traffic(platform: Platform, zone_id: str, at: datetime, requests: int) -> None:
    """`requests` decisions in the hour of `at`, folded by the snapshot run of that hour."""
    await platform.cache.incr(zone_requests_key(uuid.UUID(zone_id), _hour(at)), requests, 3600)
    await pacing_snapshot(platform, at + timedelta(minutes=30))


async def _table(platform: Platform, zone_id: str) -> dict[int, int]:
    async with platform.database.transaction(writes=False) as session:
        rows = await session.execute(
            select(AdsZoneTraffic.hour, AdsZoneTraffic.requests).where(
                AdsZoneTraffic.zone_id == uuid.UUID(zone_id)
            )
        )
        return {hour: requests for hour, requests in rows}  # noqa: C416


def test_a_profile_is_the_share_of_requests_per_local_hour_and_needs_enough_requests() -> None:
    counts = {_hour(DAY_ONE + timedelta(hours=6)): 100, _hour(DAY_ONE + timedelta(days=1, hours=17)): 300}

    berlin = profile_of(counts, "Europe/Berlin")  # UTC+1 in December
    tokyo = profile_of(counts, "Asia/Tokyo")  # UTC+9

    assert berlin is not None
    assert tokyo is not None
    assert (berlin[7], berlin[18], sum(berlin)) == (0.25, 0.75, 1.0)
    assert (tokyo[15], tokyo[2]) == (0.25, 0.75)
    assert profile_of({_hour(DAY_ONE): 99}, "UTC") is None


async def test_requests_are_folded_into_a_profile_the_delivery_snapshot_serves_to_pacing(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)
    zone_id = uuid.UUID(ads.zone_id)
    for _ in range(2):
        assert (await decide(client, ads.zone_id)).status_code == 200
    assert int(await platform.cache.get(zone_requests_key(zone_id, _hour(datetime.now(UTC))))) == 2
    assert (await delivery_snapshot(platform).zone(zone_id)).profile == FLAT_PROFILE  # type: ignore[union-attr]

    await _traffic(platform, ads.zone_id, DAY_ONE + timedelta(hours=6), 100)
    await _traffic(platform, ads.zone_id, DAY_ONE + timedelta(days=1, hours=17), 300)
    written = await pacing_snapshot(platform, DAY_ONE + timedelta(days=2))

    assert written == 1
    zone = await delivery_snapshot(platform).zone(zone_id)
    assert zone is not None
    assert zone.profile[7] == pytest.approx(0.25)  # the site is in Europe/Berlin
    assert zone.profile[18] == pytest.approx(0.75)
    assert await pacing_snapshot(platform, DAY_ONE + timedelta(days=2, minutes=5)) == 0  # unchanged: no write

    # a restarted cache (the counter of a folded hour gone) takes nothing away
    await platform.cache.delete(zone_requests_key(zone_id, _hour(DAY_ONE + timedelta(days=1, hours=17))))
    await pacing_snapshot(platform, DAY_ONE + timedelta(days=1, hours=17, minutes=45))
    assert await _table(platform, ads.zone_id) == {
        _hour(DAY_ONE + timedelta(hours=6)): 100,
        _hour(DAY_ONE + timedelta(days=1, hours=17)): 300,
    }

    # 8 days later the week holds nothing: the old hours are forgotten and the profile is flat again
    assert await pacing_snapshot(platform, DAY_ONE + timedelta(days=10)) == 1
    assert await _table(platform, ads.zone_id) == {}
    async with platform.database.transaction(writes=False) as session:
        assert list(await session.scalars(select(AdsTrafficProfile))) == []
    assert (await delivery_snapshot(platform).zone(zone_id)).profile == FLAT_PROFILE  # type: ignore[union-attr]


async def test_a_zone_with_little_traffic_keeps_the_flat_profile(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)
    await _traffic(platform, ads.zone_id, DAY_ONE + timedelta(hours=9), 60)

    assert await pacing_snapshot(platform, DAY_ONE + timedelta(days=1)) == 0
    zone = await delivery_snapshot(platform).zone(uuid.UUID(ads.zone_id))
    assert zone is not None
    assert zone.profile == FLAT_PROFILE
