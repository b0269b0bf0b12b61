"""Structures end to end: a character holding the structures scope syncs orders at a player structure and
at an NPC station the static data lacks; the sync queues `market.resolve_locations` with the character,
and the job (run by a real worker) refreshes the character's token at the fake SSO and names both places
through the fake ESI: the structure with the character's token, the station without one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.market.ingest import locations
from pentad.apps.market.models import MarketStation, MarketSystem
from pentad.apps.market.settings import DEFAULT_SCOPES, DEFAULT_STRUCTURE_SCOPES
from pentad.core.config import Settings
from pentad.core.jobs.models import Job
from pentad.core.platform import Platform
from tests.apps.market.esi_support import FakeEsiServer
from tests.apps.market.trader.conftest import trader_settings
from tests.apps.market.trader_support import TRADER, TRITANIUM, Account, link, sync
from tests.factories import run_due_jobs
from tests.fakes.market.esi_characters import CharacterEsi, order
from tests.fakes.market.sso import FakeSso

JITA = {"id": 30000142, "name": "Jita", "constellation_id": 20000020, "region_id": 10000002, "security": 0.95}
STATION = 60003760
STRUCTURE = 1_035_466_617_946


@pytest.fixture
def settings(tmp_path: Path, database_url: str, sso: FakeSso, fake_esi_server: FakeEsiServer) -> Settings:
    return trader_settings(
        tmp_path,
        database_url,
        sso,
        fake_esi_server,
        scopes=",".join([*DEFAULT_SCOPES, *DEFAULT_STRUCTURE_SCOPES]),
    )


async def test_a_sync_names_its_structures_with_the_characters_token(
    client: httpx.AsyncClient, platform: Platform, alice: Account, sso: FakeSso, chars: CharacterEsi
) -> None:
    fake = chars.fake
    chars.data(TRADER).orders = [
        order(5001, TRITANIUM, 5.5, location_id=STRUCTURE),
        order(5002, TRITANIUM, 5.0, location_id=STATION),
    ]
    fake.structures[STRUCTURE] = {"name": "Jita - Trade Tower", "owner_id": 98000001,
                                  "solar_system_id": JITA["id"], "type_id": 35834}  # fmt: skip
    fake.stations[STATION] = {"name": "Jita IV - Moon 4 - Caldari Navy Assembly Plant",
                              "system_id": JITA["id"], "owner": 1000035}  # fmt: skip
    fake.grant_structure(TRADER, STRUCTURE)
    async with platform.database.transaction() as session:
        if await session.get(MarketSystem, JITA["id"]) is None:
            session.add(MarketSystem(**JITA))

    link_id = await link(client, alice, TRADER, sso)
    assert (await sync(platform, link_id)).status == "ok"
    async with platform.database.transaction(writes=False) as session:
        (job,) = await session.scalars(select(Job).where(Job.name == locations.RESOLVE))
    assert job.payload == {"location_ids": [STATION, STRUCTURE], "character": str(link_id)}

    await run_due_jobs(platform)
    async with platform.database.transaction(writes=False) as session:
        rows = {row.id: row for row in await session.scalars(select(MarketStation))}
    assert (rows[STRUCTURE].name, rows[STRUCTURE].kind, rows[STRUCTURE].region_id) == (
        "Jita - Trade Tower", "structure", JITA["region_id"],
    )  # fmt: skip
    assert (rows[STATION].kind, rows[STATION].system_id) == ("npc", JITA["id"])
    seen = {request.path: request for request in fake.location_requests()}
    assert (seen[f"/universe/structures/{STRUCTURE}/"].authorization or "").startswith("Bearer ey")
    assert seen[f"/universe/stations/{STATION}/"].authorization is None

    # The API names the places with their systems (the orders page shows the same).
    listed = (await client.get("/api/market/orders", headers=alice)).json()
    where = {item["order_id"]: (item["location_name"], item["system_name"]) for item in listed}
    assert where == {
        5001: ("Jita - Trade Tower", "Jita"),
        5002: ("Jita IV - Moon 4 - Caldari Navy Assembly Plant", "Jita"),
    }
