"""The decision's cache counters, without a database: the keys the DeliverySnapshot precomputes are the
ones the rest of ads reads, only the counters a campaign's settings use are read, and even pacing's
eligible-requests-per-minute counter holds what it did when it was written per request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pentad.apps.ads.budgets import total_key
from pentad.apps.ads.delivery import CampaignEntry, CreativeEntry, ZoneEntry
from pentad.apps.ads.serving import daily_key, decide, frequency_key, minute_key, zone_requests_key
from pentad.apps.ads.targeting import RequestFacts
from pentad.core.cache import MemoryCache

START = datetime(2026, 12, 4, 12, 0, 5, tzinfo=UTC)
MINUTE = int(START.timestamp()) // 60


def campaign(**settings: Any) -> CampaignEntry:
    campaign_id = uuid.uuid4()
    values: dict[str, Any] = {
        "starts_at": START - timedelta(days=1), "ends_at": None, "pricing": "cpm", "rate_micros": 2_000_000,
        "budget_micros": None, "daily_budget_micros": None, "daily_impressions": None, "daily_clicks": None,
        "frequency_cap": None, "pacing": "even", "priority": 5, "weight": 1,
        "targeting": lambda facts: True, "targets_all": True,
    }  # fmt: skip
    values.update(settings)
    creative = CreativeEntry(uuid.uuid4(), campaign_id, "text", None, None, "", "Sale", "", None)
    return CampaignEntry(id=campaign_id, creatives=(creative,), **values)


def zone(*campaigns: CampaignEntry) -> ZoneEntry:
    return ZoneEntry(
        id=uuid.uuid4(), site_id=uuid.uuid4(), domain="news.example", timezone="Europe/Berlin", width=300,
        height=250, mode="direct", gpt_ad_unit=None, pages=None, house=None, campaigns=campaigns,
    )  # fmt: skip


class CountingCache(MemoryCache):
    def __init__(self) -> None:
        super().__init__(default_ttl=60, max_entries=10_000)
        self.read: list[str] = []

    async def _read_many(self, keys: Any) -> list[bytes | None]:
        self.read += keys
        return await super()._read_many(keys)


def test_the_precomputed_keys_are_the_counters_ads_reads_elsewhere() -> None:
    entry = campaign(budget_micros=10, frequency_cap=2)
    assert entry.daily_prefix + "20261204:imp" == daily_key(entry.id, "20261204", "imp")
    assert entry.frequency_prefix + "20261204:42" == frequency_key(entry.id, "20261204", 42)
    assert entry.minute_prefix + "7" == minute_key(entry.id, 7)
    assert entry.total_key == total_key(entry.id)
    placed = zone(entry)
    assert placed.requests_prefix + "9" == zone_requests_key(placed.id, 9)
    assert placed.campaign_of == {entry.creatives[0].id: entry}


async def test_a_decision_reads_only_the_counters_the_live_campaigns_use() -> None:
    cache = CountingCache()
    plain = campaign(pacing="asap")
    capped = campaign(pacing="asap", frequency_cap=3, budget_micros=1_000_000)
    untargeted = campaign(daily_impressions=100, targeting=lambda facts: False, targets_all=False)
    placed = zone(plain, capped, untargeted)
    decision = await decide(SimpleNamespace(cache=cache), placed, RequestFacts(at=START), 42, count=True)  # type: ignore[arg-type]
    assert decision.campaign in (plain, capped)
    assert sorted(cache.read) == sorted([frequency_key(capped.id, "20261204", 42), total_key(capped.id)])


async def test_even_pacing_counts_each_minute_the_requests_a_campaign_was_eligible_for() -> None:
    cache = CountingCache()
    context: Any = SimpleNamespace(cache=cache)
    paced = campaign(daily_impressions=1_000_000)
    full = campaign(daily_impressions=1)
    asap = campaign(pacing="asap", daily_impressions=1_000_000)
    placed = zone(paced, full, asap)
    local_day = START.astimezone(placed.tzinfo).strftime("%Y%m%d")
    await cache.incr(daily_key(full.id, local_day, "imp"), 1)  # `full` served its day: not eligible
    for second in range(3):
        await decide(context, placed, RequestFacts(at=START + timedelta(seconds=second)), 1, count=False)
    await decide(context, placed, RequestFacts(at=START + timedelta(seconds=60)), 1, count=False)
    assert int(await cache.get(minute_key(paced.id, MINUTE))) == 3
    assert await cache.get(minute_key(full.id, MINUTE)) is None
    assert await cache.get(minute_key(asap.id, MINUTE)) is None  # asap pacing needs no such figure
    assert minute_key(paced.id, MINUTE) in cache.read  # read back as the minute before the fourth request
    await decide(context, placed, RequestFacts(at=START + timedelta(seconds=125)), 1, count=False)
    assert int(await cache.get(minute_key(paced.id, MINUTE + 1))) == 1
    assert int(await cache.get(minute_key(paced.id, MINUTE))) == 3
