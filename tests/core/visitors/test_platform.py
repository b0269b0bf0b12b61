"""The platform's visitors: `platform.visitors` (also on the apps' context), the salt-rotation job on the
real worker and its 00:00 UTC schedule, and the GeoIP readiness probe apps add to /readyz."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pentad.core.config import Settings
from pentad.core.health import HealthContext
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform
from pentad.core.visitors.health import GEOIP_CHECK, GeoIPUnavailable
from pentad.core.visitors.ids import ROTATE_SALTS_JOB, salt_for, stored_days, utc_today
from tests.conftest import make_settings
from tests.core.visitors.test_agents_and_bots import CHROME_WINDOWS
from tests.factories import run_due_jobs


async def test_the_platform_gives_facts_with_the_shipped_country_files(platform: Platform) -> None:
    facts = await platform.visitors.facts("8.8.8.8", CHROME_WINDOWS, None, "https://a.example/", "a.example")
    assert (facts.country, facts.browser, facts.bot_reason) == ("US", "Chrome", None)
    again = await platform.visitors.facts("8.8.8.8", CHROME_WINDOWS, "https://x.test/", None, "a.example")
    assert again.visitor_id == facts.visitor_id
    assert platform.visitors.geoip.ready


async def test_the_rotation_job_runs_on_the_worker_and_deletes_old_salts(platform: Platform) -> None:
    today = utc_today()
    async with platform.database.transaction() as session:
        for back in (3, 2, 1):
            await salt_for(session, platform.keyring, today - timedelta(days=back), create=True)
        await enqueue(session, ROTATE_SALTS_JOB)
    await run_due_jobs(platform)
    async with platform.database.transaction() as session:
        assert await stored_days(session) == [today - timedelta(days=1), today]


def test_the_rotation_is_scheduled_at_midnight_utc(platform: Platform) -> None:
    (entry,) = [entry for entry in platform.jobs.registry.cron if entry.job == ROTATE_SALTS_JOB]
    now = datetime(2026, 12, 4, 17, 30, tzinfo=UTC)
    assert entry.next_tick(now) == datetime(2026, 12, 5, tzinfo=UTC)
    assert entry.latest_tick(now) == datetime(2026, 12, 4, tzinfo=UTC)


async def test_the_geoip_probe_passes_with_the_files_and_fails_without(
    settings: Settings, platform: Platform, tmp_path: Path, database_url: str
) -> None:
    await GEOIP_CHECK.probe(HealthContext(settings, platform.database))
    missing = make_settings(tmp_path, database_url, visitors={"country_db": str(tmp_path / "none.mmdb")})
    with pytest.raises(GeoIPUnavailable, match="missing"):
        await GEOIP_CHECK.probe(HealthContext(missing, platform.database))
