"""ESI faults as the user sees them: whatever ESI does wrong during a refresh (down, slow, 5xx, 420, 429,
malformed JSON, pages of two generations), the hub keeps its last complete book, and the hubs API, the
scans and the pages say how old that book is, since when ESI is unavailable, why, and when the next try
is due; the next good refresh clears it. Driven end to end by the fake ESI's fault injection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.market import sde
from pentad.apps.market.ingest import orders as ingest
from pentad.apps.market.models import MarketRegionState, MarketSnapshot
from pentad.core.platform import Platform
from tests.apps.market.esi_support import FakeEsiServer
from tests.factories import DEFAULT_PASSWORD, bearer, create_user, issue_api_key

pytestmark = pytest.mark.one_engine

REGION = 10000002
LOCATIONS = ((60003760, 30000142), (60003761, 30000142))
FAULTS: dict[str, dict[str, Any]] = {
    "down (503)": {"kind": "status", "status": 503, "times": 1000},
    "bad gateway (502)": {"kind": "status", "status": 502, "times": 1000},
    "error limited (420)": {"kind": "status", "status": 420, "times": 1000},
    "rate limited (429)": {"kind": "status", "status": 429, "times": 1000},
    "malformed JSON": {"kind": "malformed", "page": 2, "times": 1000},
    "inconsistent pages": {"kind": "regenerate", "page": 2, "times": 1000},
    "slow (hangs past the timeout)": {"kind": "hang", "seconds": 3.0, "times": 1000},
}


async def _refresh(platform: Platform, esi: FakeEsiServer) -> ingest.RefreshOutcome:
    async with esi.client(max_retries=1, timeout=0.5) as client:
        return await ingest.refresh_region(platform, client, REGION, now=esi.fake.now, force=True)


async def _jita(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    hubs = await client.get("/api/market/hubs", headers=headers)
    assert hubs.status_code == 200, hubs.text
    jita: dict[str, Any] = next(hub for hub in hubs.json() if hub["key"] == "jita")
    return jita


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_an_esi_fault_shows_the_data_age_and_the_retry_and_keeps_the_last_book(
    platform: Platform, client: httpx.AsyncClient, esi: FakeEsiServer, fault: dict[str, Any]
) -> None:
    """Every fault: the API's status and the book kept. The first one also goes through the scan, the
    page banner (both need the static data, imported for it only) and the recovery."""
    full = fault is FAULTS["down (503)"]
    if full:
        async with platform.database.transaction() as session:
            await sde.import_subset(session)
    user = await create_user(platform)
    headers = bearer(await issue_api_key(platform, user, ("*",)))
    esi.fake.generate_book(REGION, pages=3, page_size=20, locations=LOCATIONS)
    first = await _refresh(platform, esi)
    assert first.status == "ok"
    assert (await _jita(client, headers))["book"]["state"] == "ok"

    esi.fake.advance(301)  # the book expired: the next refresh meets the fault
    esi.fake.inject(**fault)
    failed = await _refresh(platform, esi)
    assert failed.status in ("deferred", "failed")
    assert failed.snapshot_id is None

    book = (await _jita(client, headers))["book"]
    assert book["state"] == "unavailable"
    assert book["failed_attempts"] == 1
    assert book["reason"] == failed.detail
    since, retry = datetime.fromisoformat(book["unavailable_since"]), datetime.fromisoformat(book["retry_at"])
    assert retry > since
    assert book["message"].startswith(
        f"Market data is {book['age_minutes']} minutes old: ESI unavailable since"
    )
    assert f"retrying at {retry:%Y-%m-%d %H:%M} UTC" in book["message"]
    # The last complete book is still the one in use, whole; scans answer from it and say so.
    async with platform.database.transaction(writes=False) as session:
        state = await session.get(MarketRegionState, REGION)
        assert state is not None
        assert state.current_snapshot_id == first.snapshot_id
        assert await session.scalar(select(func.count()).select_from(MarketSnapshot)) == 1
    if not full:
        return
    scan = await client.get("/api/market/hubs/jita/station-trading", headers=headers)
    assert scan.status_code == 200, scan.text
    assert scan.json()["snapshot_id"] == first.snapshot_id
    assert scan.json()["book_status"]["state"] == "unavailable"
    # The page banner.
    signed_in = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert signed_in.status_code == 303
    page = await client.get("/market")
    assert 'class="notice market-status unavailable"' in page.text
    assert "ESI unavailable since" in page.text
    assert "retrying at" in page.text

    # ESI is back: the next refresh stores a new book and the banner goes.
    esi.fake.faults.clear()
    esi.fake.advance(301)
    again = await _refresh(platform, esi)
    assert again.status == "ok"
    assert (await _jita(client, headers))["book"]["state"] == "ok"
    assert "market-status unavailable" not in (await client.get("/market")).text
