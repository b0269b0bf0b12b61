"""Retention tiers: parsing and order (pure), changing them through the API (owners only, 422 on bad
tiers and nothing changed) and the command line, and enforcement on every engine: raw events and
sessions older than the raw tier are deleted in chunks, rollups past their tiers too, and the planner's
answers from the rollups that remain are what they were before the raw events went."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.analytics import query, retention
from pentad.apps.analytics.models import (
    AnalyticsDirtyBucket,
    AnalyticsEvent,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsSession,
)
from pentad.apps.analytics.tasks import run_retention, run_rollups
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import NOW, TIMEOUT, seeded_rows, site_key_of, store
from tests.factories import Account, account
from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]


def test_tiers_are_parsed_and_ordered() -> None:
    assert retention.parse_duration("60d") == (60, "d")
    assert retention.parse_duration(" Forever ") is None
    for bad in ("", "0d", "10", "d", "3 days", "1.5y", "-2d", "10m"):
        with pytest.raises(ValueError, match="duration"):
            retention.parse_duration(bad)
    assert retention.validate_tiers(retention.DEFAULT, complete=True) == retention.DEFAULT
    for tiers, message in [
        ({"raw": "3y", "hourly": "2y"}, "raw .* must not outlast hourly"),
        ({"hourly": "forever", "monthly": "10y"}, "hourly .* must not outlast monthly"),
        ({"rawest": "1d"}, "unknown retention tier"),
    ]:
        with pytest.raises(ValueError, match=message):
            retention.validate_tiers(tiers, complete=False)
    with pytest.raises(ValueError, match="every tier"):
        retention.validate_tiers({"raw": "1d"}, complete=True)
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert retention.cutoff("48h", now) == datetime(2026, 3, 29, 12, tzinfo=UTC)
    assert retention.cutoff("1mo", now) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert retention.cutoff("2y", now) == datetime(2024, 3, 28, 12, tzinfo=UTC)
    assert retention.cutoff("forever", now) is None


def test_a_question_for_expired_raw_data_is_a_422_naming_the_tier() -> None:
    tiers = {**retention.DEFAULT, "raw": "30d"}
    recent = int(datetime(2026, 2, 19, tzinfo=UTC).timestamp() * 1000)  # NOW - 30d: 18 Feb 14:25
    retention.ensure_raw_available(recent, tiers, NOW)
    with pytest.raises(retention.RawDataExpired) as raised:
        retention.ensure_raw_available(recent - 2 * 86_400_000, tiers, NOW)
    assert (raised.value.status, raised.value.code, raised.value.extra["tier"]) == (
        422,
        "filter_needs_raw_data",
        "raw",
    )
    retention.ensure_raw_available(0, {**tiers, "raw": "forever"}, NOW)


async def test_owners_change_tiers_viewers_and_strangers_may_not(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    base = f"/api/analytics/sites/{site['id']}"
    assert (await client.get(base, headers=owner.headers)).json()["retention"] is None
    changed = await client.patch(
        base, json={"retention": {"raw": "30D", "hourly": "1y"}}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["retention"] == {
        "raw": "30d",
        "hourly": "1y",
        "daily": "forever",
        "monthly": "forever",
    }

    for tiers, code in [
        ({"raw": "2y"}, "bad_retention"),  # against the hourly tier it already has
        ({"raw": "soon"}, "validation_failed"),
        ({"weekly": "1y"}, "validation_failed"),
        ({"daily": "30d", "hourly": "1y"}, "validation_failed"),
    ]:
        refused = await client.patch(base, json={"retention": tiers}, headers=owner.headers)
        assert refused.status_code == 422, tiers
        assert refused.json()["code"] == code, refused.text
    assert (await client.get(base, headers=owner.headers)).json()["retention"]["raw"] == "30d"

    viewer, stranger = await account(platform), await account(platform)
    shared = await client.post(
        base + "/grants", json={"email": viewer.user.email, "role": "viewer"}, headers=owner.headers
    )
    assert shared.status_code == 201
    body = {"retention": {"raw": "1d"}}
    assert (await client.patch(base, json=body, headers=viewer.headers)).status_code == 403
    assert (await client.patch(base, json=body, headers=stranger.headers)).status_code == 404
    assert (await client.get(base, headers=owner.headers)).json()["retention"]["raw"] == "30d"


async def _count(platform: Platform, table: type, key: int) -> int:
    async with platform.database.transaction() as session:
        return int(
            await session.scalar(select(func.count()).select_from(table).where(table.site_key == key)) or 0
        )


async def test_enforcement_prunes_raw_and_old_rollups_and_keeps_the_answers(
    platform: Platform, client: httpx.AsyncClient, owner: Account, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await store(platform, seeded_rows(key, days=30, per_day=10, seed=9))
    await run_rollups(platform, now=NOW)
    planning = query.Planning(now=NOW)
    spans = [query.resolve_range(p, "UTC", now=NOW) for p in ("7d", "30d", "12mo")]
    async with platform.database.transaction() as session:
        before = [await query.totals(session, key, span, TIMEOUT, planning) for span in spans]
        pages = await query.breakdown(
            session, key, spans[1], "pages", session_timeout=TIMEOUT, planning=planning
        )
    events, hourly = (
        await _count(platform, AnalyticsEvent, key),
        await _count(platform, AnalyticsRollupHourly, key),
    )

    tiers = {"raw": "10d", "hourly": "20d", "daily": "forever", "monthly": "forever"}
    changed = await client.patch(
        f"/api/analytics/sites/{site['id']}", json={"retention": tiers}, headers=owner.headers
    )
    assert changed.status_code == 200
    retention_chunk, retention.DELETE_CHUNK = retention.DELETE_CHUNK, 100  # several chunks
    try:
        pruned = await run_retention(platform, now=NOW)
    finally:
        retention.DELETE_CHUNK = retention_chunk
    floor = int(NOW.timestamp() * 1000) - 10 * 86_400_000
    async with platform.database.transaction() as session:
        oldest = await session.scalar(
            select(func.min(AnalyticsEvent.ts)).where(AnalyticsEvent.site_key == key)
        )
        assert oldest is not None
        assert oldest >= floor
        assert (
            await session.scalar(
                select(func.min(AnalyticsSession.start_ts)).where(AnalyticsSession.site_key == key)
            )
            >= floor
        )
        oldest_hour = await session.scalar(
            select(func.min(AnalyticsRollupHourly.bucket)).where(AnalyticsRollupHourly.site_key == key)
        )
        assert oldest_hour is not None
        assert oldest_hour >= int(NOW.timestamp()) // 3600 - 20 * 24
        assert pruned.events == events - await _count(platform, AnalyticsEvent, key) > 100
        assert pruned.hourly == hourly - await _count(platform, AnalyticsRollupHourly, key) > 0
        assert await _count(platform, AnalyticsRollupDaily, key) > 25  # daily: forever

        # the rollups still answer as before; raw events alone no longer can
        assert [await query.totals(session, key, span, TIMEOUT, planning) for span in spans] == before
        assert await query.raw_totals(session, key, spans[1], TIMEOUT) != before[1]
        assert (
            await query.breakdown(session, key, spans[1], "pages", session_timeout=TIMEOUT, planning=planning)
            == pages
        )
        # a dirty mark older than the raw tier (nothing left to recompute from) leaves the rollups alone
        session.add(AnalyticsDirtyBucket(site_key=key, hour=floor // 3_600_000 - 100))
    await run_rollups(platform, now=NOW)
    async with platform.database.transaction() as session:
        assert await query.totals(session, key, spans[1], TIMEOUT, planning) == before[1]


def test_retention_from_the_command_line(env: dict[str, str]) -> None:
    pentad(env, "migrate")
    pentad(env, "analytics", "site", "create", "shop.example")
    shown = pentad(env, "analytics", "site", "retention", "shop.example").stdout
    assert "shop.example: raw=60d,hourly=2y,daily=forever,monthly=forever" in shown
    changed = pentad(env, "analytics", "site", "retention", "shop.example", "raw=30d,hourly=1y").stdout
    assert "raw=30d,hourly=1y,daily=forever,monthly=forever" in changed
    for tiers, message in [("raw=3y", "must not outlast"), ("raw", "name=duration"), ("x=1d", "unknown")]:
        refused = pentad(env, "analytics", "site", "retention", "shop.example", tiers, check=False)
        assert refused.returncode != 0, tiers
        assert message in refused.stderr, (tiers, refused.stderr)
    assert "raw=30d,hourly=1y" in pentad(env, "analytics", "site", "retention", "shop.example").stdout
