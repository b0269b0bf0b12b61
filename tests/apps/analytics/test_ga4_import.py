"""GA4 CSV imports, on every engine: the exports' real layouts (comment header, Date or Nth day, GA4's
column and country names) land in the daily and monthly rollups flagged imported and show on the
dashboard; the same file twice changes nothing; days the site collected itself are skipped; a bad file is
422 with its line and stores nothing; only owners import."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.analytics import ga4_import
from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import (
    AnalyticsImport,
    AnalyticsRollupDaily,
    AnalyticsRollupMonthly,
    AnalyticsSite,
)
from pentad.core.config import Settings
from pentad.core.ingest import FlushContext
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import Account, account, run_due_jobs

HEAD = """# ----------------------------------------
# {title}
# Account: Shop
# Property: shop.example - GA4
# ----------------------------------------
#
# All Users
# Start date: {start}
# End date: {end}
"""
USERS_OVER_TIME = HEAD.format(title="Reports snapshot", start="20250901", end="20250903") + (
    "Date,Active users,Sessions,Views,Bounce rate,Average session duration\n"
    "20250901,40,50,120,0.4,65.5\n"
    "20250902,25,30,61,0.5,30\n"
    "20250903,60,70,140,0.2,100\n"
)
NTH_DAY = (
    HEAD.format(title="Users", start="20250801", end="20250802") + "Nth day,Active users\n0000,7\n0001,9\n"
)
PAGES = HEAD.format(
    title="Pages and screens: Page path and screen class", start="20250901", end="20250903"
) + (
    "Page path and screen class,Date,Views,Active users,Views per active user,Average engagement time\n"
    "/,20250901,80,30,2.67,41.2\n"
    "/pricing,20250901,40,20,2,12\n"
    "/pricing?ref=x,20250902,5,4,1.25,3\n"
)
COUNTRIES = HEAD.format(title="Demographic details: Country", start="20250901", end="20250901") + (
    "Country,Active users,New users,Engaged sessions,Engagement rate,Event count\n"
    "Germany,20,18,25,0.6,300\n"
    "United States,15,15,10,0.5,100\n"
    "Côte d\u2019Ivoire,3,3,1,0.5,10\n"  # GA4 writes a typographic apostrophe
    "(not set),2,2,0,0,5\n"
    "Atlantis,1,1,0,0,1\n"
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["analytics"],
        ratelimit={"enabled": False},
        analytics={"ga4_import_max_bytes": 4096},
    )


async def _upload(
    client: httpx.AsyncClient, site: dict[str, Any], who: Account, body: str | bytes, name: str = "export.csv"
) -> httpx.Response:
    return await client.post(
        f"/api/analytics/sites/{site['id']}/imports",
        params={"filename": name},
        content=body.encode() if isinstance(body, str) else body,
        headers={**who.headers, "Content-Type": "text/csv"},
    )


async def _imported(
    client: httpx.AsyncClient, platform: Platform, site: dict[str, Any], who: Account, body: str
) -> dict[str, Any]:
    queued = await _upload(client, site, who, body)
    assert queued.status_code == 202, queued.text
    await run_due_jobs(platform)
    done = await client.get(
        f"/api/analytics/sites/{site['id']}/imports/{queued.json()['id']}", headers=who.headers
    )
    result: dict[str, Any] = done.json()
    assert result["status"] == "done", result
    return result


async def _aggregate(
    client: httpx.AsyncClient, site: dict[str, Any], who: Account, first: str, last: str
) -> dict[str, Any]:
    response = await client.get(
        f"/api/analytics/sites/{site['id']}/stats/aggregate",
        params={"period": "custom", "from": first, "to": last},
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _daily_rows(platform: Platform) -> list[tuple[int, int, str | None, bool]]:
    async with platform.database.transaction() as session:
        rows = await session.execute(
            select(
                AnalyticsRollupDaily.dim, AnalyticsRollupDaily.bucket, AnalyticsRollupDaily.value,
                AnalyticsRollupDaily.imported,
            ).order_by(AnalyticsRollupDaily.dim, AnalyticsRollupDaily.bucket, AnalyticsRollupDaily.value_hash)
        )  # fmt: skip
        return [(int(d), int(b), v, bool(i)) for d, b, v, i in rows.all()]


async def test_imported_history_shows_on_the_dashboard_once(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    result = await _imported(client, platform, site, owner, USERS_OVER_TIME)
    assert (result["report"], result["rows"], result["days"], result["skipped_days"]) == ("totals", 3, 3, 0)

    top = await _aggregate(client, site, owner, "2025-09-01", "2025-09-03")
    assert (top["visitors"], top["visits"], top["pageviews"]) == (125, 150, 321)
    assert top["bounce_rate"] == round(100 * (20 + 15 + 14) / 150, 1)
    assert top["visit_duration"] == round((65.5 * 50 + 30 * 30 + 100 * 70) / 150, 1)
    month = await _aggregate(client, site, owner, "2025-09-01", "2025-09-30")  # the monthly rollup
    assert (month["visitors"], month["pageviews"]) == (125, 321)
    series = await client.get(
        f"/api/analytics/sites/{site['id']}/stats/timeseries",
        params={"period": "custom", "from": "2025-09-01", "to": "2025-09-04"},
        headers=owner.headers,
    )
    assert [point["visitors"] for point in series.json()["points"]] == [40, 25, 60, 0]

    rows = await _daily_rows(platform)
    assert len(rows) == 3
    assert all(imported for *_, imported in rows)
    async with platform.database.transaction() as session:
        monthly = (await session.execute(select(AnalyticsRollupMonthly.imported))).scalars().all()
        assert monthly == [True]

    again = await _upload(client, site, owner, USERS_OVER_TIME, name="again.csv")
    assert again.status_code == 200
    assert again.json()["id"] == result["id"]
    await run_due_jobs(platform)
    assert await _daily_rows(platform) == rows
    assert (await _aggregate(client, site, owner, "2025-09-01", "2025-09-03"))["visitors"] == 125

    counted = await _imported(client, platform, site, owner, NTH_DAY)
    assert counted["days"] == 2
    assert (await _aggregate(client, site, owner, "2025-08-01", "2025-08-02"))["visitors"] == 16


async def test_panels_import_pages_and_countries(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    await _imported(client, platform, site, owner, PAGES)
    countries = await _imported(client, platform, site, owner, COUNTRIES)
    assert countries["error"] == "1 rows of unknown countries counted as (unknown)"

    async def panel(dimension: str) -> list[tuple[str, int, int]]:
        response = await client.get(
            f"/api/analytics/sites/{site['id']}/stats/breakdown/{dimension}",
            params={"period": "custom", "from": "2025-09-01", "to": "2025-09-03"},
            headers=owner.headers,
        )
        return [(row["value"], row["visitors"], row["pageviews"]) for row in response.json()["rows"]]

    assert await panel("pages") == [("/", 30, 80), ("/pricing", 24, 45)]
    assert await panel("countries") == [("DE", 20, 0), ("US", 15, 0), ("CI", 3, 0), ("(unknown)", 3, 0)]


async def test_days_the_site_collected_are_not_imported(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    async with platform.database.transaction() as session:
        key = await session.scalar(select(AnalyticsSite.key).where(AnalyticsSite.id == uuid.UUID(site["id"])))
        assert key is not None
        ts = int(datetime(2025, 9, 2, 10, tzinfo=UTC).timestamp() * 1000)
        row = EventRow(site_key=key, ts=ts, visitor_id=5, name="pageview", hostname="shop.example", path="/")
        await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), [row])
    result = await _imported(client, platform, site, owner, USERS_OVER_TIME)
    assert (result["days"], result["skipped_days"]) == (1, 2)
    top = await _aggregate(client, site, owner, "2025-09-01", "2025-09-03")
    assert (top["visitors"], top["pageviews"]) == (41, 121)


async def test_bad_files_are_422_with_the_line_and_store_nothing(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    broken = USERS_OVER_TIME.replace("20250902,25,30,61", "20250902,25,30,sixty")
    cases: list[tuple[str | bytes, int, str]] = [
        (broken, 12, "'sixty' in column 'views' is not a number"),
        (USERS_OVER_TIME.replace("20250903,60", "2025-09-03,60"), 13, "not a GA4 date"),
        (USERS_OVER_TIME.replace("20250903,60", "20251003,60"), 13, "outside the export's range"),
        (
            PAGES.replace(",Date", "").replace(",20250901", "").replace(",20250902", ""),
            10,
            "needs a Date column",
        ),
        (
            HEAD.format(title="x", start="20250901", end="20250901")
            + "Event name,Event count\npage_view,3\n",
            10,
            "no users column",
        ),
        (
            HEAD.format(title="x", start="20250901", end="20250901") + "Region,Active users\nBavaria,3\n",
            10,
            "unknown export",
        ),
        (USERS_OVER_TIME.split("Date,")[0] + "Date,Active users\n", 10, "no rows"),
        (b"Date,Active users\n20250901,\xff\xfe\n", 2, "not UTF-8"),
        ("", 1, "no header row"),
        (PAGES.replace("/pricing,20250901", "pricing,20250901"), 12, "not a page path"),
        (USERS_OVER_TIME.replace("20250901,40,50,120,0.4,65.5", "20250901,40,50"), 11, "3 columns"),
    ]
    for body, line, message in cases:
        response = await _upload(client, site, owner, body)
        assert response.status_code == 422, (message, response.text)
        problem = response.json()
        assert problem["code"] == "bad_import"
        assert problem["line"] == line, (message, problem)
        assert message in problem["detail"], (message, problem["detail"])
    too_big = await _upload(client, site, owner, USERS_OVER_TIME + "20250903,1,1,1,0,0\n" * 300)
    assert too_big.status_code == 413
    await run_due_jobs(platform)
    assert await _daily_rows(platform) == []
    async with platform.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AnalyticsImport)) == 0


async def test_only_owners_import(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, Any]
) -> None:
    viewer, stranger = await account(platform), await account(platform)
    await client.post(
        f"/api/analytics/sites/{site['id']}/grants",
        json={"email": viewer.user.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert (await _upload(client, site, viewer, USERS_OVER_TIME)).status_code == 403
    assert (await _upload(client, site, stranger, USERS_OVER_TIME)).status_code == 404
    done = await _imported(client, platform, site, owner, USERS_OVER_TIME)
    path = f"/api/analytics/sites/{site['id']}/imports"
    assert (await client.get(path, headers=viewer.headers)).status_code == 403
    assert (await client.get(f"{path}/{done['id']}", headers=stranger.headers)).status_code == 404
    theirs = await client.post(
        "/api/analytics/sites", json={"domain": "theirs.example"}, headers=stranger.headers
    )
    other = f"/api/analytics/sites/{theirs.json()['id']}/imports/{done['id']}"
    assert (await client.get(other, headers=stranger.headers)).status_code == 404
    assert [entry["id"] for entry in (await client.get(path, headers=owner.headers)).json()] == [done["id"]]


def test_a_snapshot_with_several_tables_and_a_totals_row() -> None:
    snapshot = (
        HEAD.format(title="Reports snapshot", start="20250801", end="20250802")
        + "Nth day,New users\n0000,3\n0001,4\n\n"
        + HEAD.format(title="Reports snapshot", start="20250801", end="20250802")
        + 'Nth day,Active users\n0000,"1,234"\n0001,1.005\n'
    )
    parsed = ga4_import.parse_export(snapshot.encode())
    assert parsed.report == "totals"
    assert {day.isoformat(): cell[None].visitors for day, cell in parsed.days.items()} == {
        "2025-08-01": 1234,
        "2025-08-02": 1005,
    }
    with_total = PAGES + "Total,,125,54,2.31,20\n"  # some exports end with a totals row
    pages = ga4_import.parse_export(with_total.encode())
    assert pages.rows == 3
    only_new_users = HEAD.format(title="x", start="20250801", end="20250802") + "Nth day,New users\n0000,3\n"
    with pytest.raises(ga4_import.ImportRejected) as refused:
        ga4_import.parse_export(only_new_users.encode())
    assert refused.value.extra["line"] == 10


def test_country_names_are_ga4s() -> None:
    assert ga4_import.COUNTRIES["united kingdom"] == "GB"
    assert ga4_import._country("Türkiye") == "TR"
    assert ga4_import._country("St. Kitts & Nevis") == "KN"
    assert ga4_import._country("(not set)") is None
    assert ga4_import._country("Narnia") is False
