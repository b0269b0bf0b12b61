"""CSV export: a panel as CSV with the request's range and filters (spreadsheet formulas neutralised),
every panel as a ZIP (raw-only panels left out, with the reason, when the raw tier no longer keeps the
range); an unknown panel is a 404, a stranger gets 404."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta

import httpx

from pentad.apps.analytics import export
from pentad.core.platform import Platform
from tests.apps.analytics.product import DAY, RANGE, add_goal, visit
from tests.apps.analytics.test_rollups import site_key_of, store
from tests.factories import Account, account


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


async def test_panels_export_as_csv_and_all_as_a_zip(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    key = await site_key_of(platform, site)
    await add_goal(client, owner, site, kind="event", event_name="Signup")
    await store(
        platform,
        [
            *visit(key, 1, [("pageview", "/"), ("Signup", "/")], country="DE", props=[None, {"plan": "pro"}]),
            *visit(key, 2, [("pageview", "/=cmd()"), ("pageview", "/")], country="FR"),
        ],
    )
    url = f"/api/analytics/sites/{site['id']}/export"
    pages = await client.get(f"{url}/pages.csv?{RANGE}", headers=owner.headers)
    assert pages.status_code == 200, pages.text
    assert pages.headers["content-type"].startswith("text/csv")
    assert f"shop.example-{DAY}-{DAY}-pages.csv" in pages.headers["content-disposition"]
    assert _rows(pages.content) == [
        ["pages", "visitors", "pageviews", "events"],
        ["/", "2", "2", "0"],
        ["/=cmd()", "1", "1", "0"],
    ]
    german = await client.get(f"{url}/pages.csv?{RANGE}&filter=country:is:DE", headers=owner.headers)
    assert _rows(german.content)[1:] == [["/", "1", "1", "0"]]
    assert export._safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert export._safe("-2") == "'-2"

    archive = await client.get(f"{url}/all.zip?{RANGE}", headers=owner.headers)
    assert archive.status_code == 200, archive.text
    files = zipfile.ZipFile(io.BytesIO(archive.content))
    assert sorted(files.namelist()) == sorted(f"{panel}.csv" for panel in export.PANELS)
    assert _rows(files.read("aggregate.csv"))[1:3] == [["visitors", "2"], ["visits", "2"]]
    assert _rows(files.read("goals.csv"))[1] == ["Signup", "1", "1", "50.0", "", ""]
    assert _rows(files.read("props.csv"))[1] == ["plan", "1", "1"]
    assert len(_rows(files.read("timeseries.csv"))) == 25

    assert (await client.get(f"{url}/nothing.csv?{RANGE}", headers=owner.headers)).status_code == 404
    assert (await client.get(f"{url}/pages.txt?{RANGE}", headers=owner.headers)).status_code == 404
    bad = await client.get(f"{url}/pages.csv?{RANGE}&filter=nothing:is:x", headers=owner.headers)
    assert bad.status_code == 400
    stranger = await account(platform)
    assert (await client.get(f"{url}/pages.csv?{RANGE}", headers=stranger.headers)).status_code == 404

    await client.patch(f"/api/analytics/sites/{site['id']}", json={"retention": {"raw": "7d"}},
                       headers=owner.headers)  # fmt: skip
    today = datetime.now(UTC).date()
    old = f"period=custom&from={today - timedelta(days=30)}&to={today}"
    archive = await client.get(f"{url}/all.zip?{old}", headers=owner.headers)
    assert archive.status_code == 200
    files = zipfile.ZipFile(io.BytesIO(archive.content))
    # every panel is rolled up: a range beyond the raw tier exports whole
    assert {"pages.csv", "goals.csv", "props.csv"} <= set(files.namelist())
    assert "skipped.csv" not in files.namelist()

    # where hours do not add up to days (midnight at :30 UTC), goals and properties need raw events
    await client.patch(f"/api/analytics/sites/{site['id']}", json={"timezone": "Asia/Kolkata"},
                       headers=owner.headers)  # fmt: skip
    archive = await client.get(f"{url}/all.zip?{old}", headers=owner.headers)
    assert archive.status_code == 200
    files = zipfile.ZipFile(io.BytesIO(archive.content))
    assert "pages.csv" in files.namelist()
    assert "goals.csv" not in files.namelist()
    assert sorted(row[0] for row in _rows(files.read("skipped.csv"))[1:]) == sorted(export.RAW_ONLY)
