"""Locations the static data lacks, resolved through the fake ESI, on every engine: a public NPC station and
a structure the character can see become MarketStation rows (the structure kept across SDE imports); a
structure the character cannot see is recorded as unresolvable with when to retry, and not asked again
before then; ESI failing defers the batch and stores nothing; nothing is asked again before Expires; jobs
are queued once per batch, structures only with a character's token."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select

from pentad.apps.market import repository
from pentad.apps.market.esi.governor import Lane
from pentad.apps.market.ingest import locations
from pentad.apps.market.ingest import orders as ingest
from pentad.apps.market.models import MarketIngestRun, MarketStation, MarketSystem
from pentad.apps.market.sde import SdeData
from pentad.core.jobs.models import Job
from pentad.core.platform import Platform
from tests.apps.market.esi_support import FROZEN_AT, FakeEsiServer
from tests.factories import run_due_jobs
from tests.fakes.market.esi import make_orders

JITA = {"id": 30000142, "name": "Jita", "constellation_id": 20000020, "region_id": 10000002, "security": 0.95}
STATION = 60015001
STRUCTURE = 1_035_466_617_946
HIDDEN = 1_040_000_000_001
TOKEN = "access-token-of-the-character"
REGION = 10000002


async def _with_jita(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        if await session.get(MarketSystem, JITA["id"]) is None:
            session.add(MarketSystem(**JITA))


def _serve_places(esi: FakeEsiServer) -> None:
    esi.fake.stations[STATION] = {
        "station_id": STATION, "name": "Jita V - Moon 1 - Caldari Business Tribunal", "system_id": JITA["id"],
        "owner": 1000035, "race_id": 1, "type_id": 1529, "reprocessing_efficiency": 0.5,
        "reprocessing_stations_take": 0.05, "max_dockable_ship_volume": 50000000, "office_rental_cost": 1,
        "position": {"x": 0.0, "y": 0.0, "z": 0.0}, "services": ["market"],
    }  # fmt: skip
    for structure_id, name in ((STRUCTURE, "Jita - Trade Tower"), (HIDDEN, "Jita - Private Keep")):
        esi.fake.structures[structure_id] = {
            "name": name, "owner_id": 98000001, "solar_system_id": JITA["id"], "type_id": 35834,
            "position": {"x": 1.0, "y": 2.0, "z": 3.0},
        }  # fmt: skip
    esi.fake.grant_structure(TOKEN, STRUCTURE)


async def _resolve(platform: Platform, esi: FakeEsiServer, ids: list[int]) -> locations.ResolveOutcome:
    async with esi.client(max_retries=1) as client:
        return await locations.resolve_locations(
            platform, client, ids, token=TOKEN, lane=Lane.for_user(uuid.uuid4()), now=esi.fake.now
        )


async def _stations(platform: Platform) -> dict[int, tuple[str, int, int, str]]:
    async with platform.database.transaction(writes=False) as session:
        rows = await session.scalars(
            select(MarketStation).where(MarketStation.id.in_([STATION, STRUCTURE, HIDDEN]))
        )
        return {row.id: (row.name, row.system_id, row.region_id, row.kind) for row in rows}


async def test_stations_and_visible_structures_are_stored_a_forbidden_one_waits_for_its_retry_time(
    platform: Platform, esi: FakeEsiServer
) -> None:
    await _with_jita(platform)
    _serve_places(esi)
    outcome = await _resolve(platform, esi, [STATION, STRUCTURE, HIDDEN])
    assert sorted(outcome.resolved) == [STATION, STRUCTURE]
    assert "cannot see" in outcome.unresolvable[HIDDEN]
    assert await _stations(platform) == {
        STATION: ("Jita V - Moon 1 - Caldari Business Tribunal", JITA["id"], JITA["region_id"], "npc"),
        STRUCTURE: ("Jita - Trade Tower", JITA["id"], JITA["region_id"], "structure"),
    }
    seen = {request.path: request for request in esi.fake.location_requests()}
    assert seen[f"/universe/stations/{STATION}/"].authorization is None  # public: no token sent
    assert seen[f"/universe/structures/{STRUCTURE}/"].authorization == f"Bearer {TOKEN}"
    assert seen[f"/universe/structures/{HIDDEN}/"].status == 403
    assert all(r.user_agent and "ops@pentad.test" in r.user_agent for r in seen.values())
    async with platform.database.transaction(writes=False) as session:
        run = await session.scalar(
            select(MarketIngestRun).where(
                MarketIngestRun.kind == "location", MarketIngestRun.scope == str(HIDDEN)
            )
        )
    assert run is not None
    assert run.status == "failed"
    assert run.retry_at == FROZEN_AT.replace(microsecond=0) + locations.REFUSED_RETRY

    # Again at once: the known ones are not asked, the forbidden one not before its retry time (no loop).
    asked = len(esi.fake.location_requests())
    again = await _resolve(platform, esi, [STATION, STRUCTURE, HIDDEN])
    assert (again.resolved, again.not_due, again.unresolvable) == ([], [HIDDEN], {})
    assert len(esi.fake.location_requests()) == asked

    # A day later, the character was given docking access: the structure resolves.
    esi.fake.advance(locations.REFUSED_RETRY.total_seconds() + 1)
    esi.fake.grant_structure(TOKEN, HIDDEN)
    assert (await _resolve(platform, esi, [HIDDEN])).resolved == [HIDDEN]

    # An SDE import replaces the NPC stations (this one is not in it) and keeps the structures.
    async with platform.database.transaction() as session:
        await repository.replace_static(session, SdeData(systems=[JITA]), source="test")
    assert set(await _stations(platform)) == {STRUCTURE, HIDDEN}


async def test_esi_failing_defers_the_batch_and_nothing_is_asked_again_before_expires(
    platform: Platform, esi: FakeEsiServer
) -> None:
    await _with_jita(platform)
    _serve_places(esi)
    esi.fake.inject("status", status=503, times=100, region=STATION)
    failed = await _resolve(platform, esi, [STATION])
    assert failed.retry_after is not None
    assert (failed.resolved, failed.unresolvable) == ([], {})
    assert await _stations(platform) == {}
    esi.fake.faults.clear()

    assert (await _resolve(platform, esi, [STATION])).resolved == [STATION]
    # The row goes (an SDE import without it): the route's Expires still holds, so nothing is asked
    # before it; after it the station is fetched again.
    async with platform.database.transaction() as session:
        await session.execute(delete(MarketStation).where(MarketStation.id == STATION))
    asked = len(esi.fake.location_requests())
    assert (await _resolve(platform, esi, [STATION])).not_due == [STATION]
    assert len(esi.fake.location_requests()) == asked
    esi.fake.advance(esi.fake.location_expires_in + 1)
    assert (await _resolve(platform, esi, [STATION])).resolved == [STATION]
    assert esi.fake.location_requests()[-1].if_none_match is None  # no row: the body is needed

    # Without a token a structure waits (nothing is asked); a system outside the static data is recorded.
    esi.fake.stations[STATION + 1] = {**esi.fake.stations[STATION], "system_id": 30999999}
    async with esi.client(max_retries=1) as client:
        outcome = await locations.resolve_locations(
            platform, client, [STRUCTURE, STATION + 1], now=esi.fake.now
        )
    assert outcome.waiting == [STRUCTURE]
    assert "not in the static data" in outcome.unresolvable[STATION + 1]


@pytest.mark.one_engine
async def test_jobs_are_queued_once_per_batch_and_structures_only_with_a_character(
    platform: Platform,
) -> None:
    await _with_jita(platform)
    character = uuid.uuid4()
    stations = list(range(61_000_000, 61_000_000 + locations.BATCH + 1))
    async with platform.database.transaction() as session:
        session.add(
            MarketStation(id=60003760, name="Jita IV - Moon 4", system_id=JITA["id"], region_id=10000002)
        )
        assert await locations.queue_resolution(session, [60003760, *stations, STRUCTURE]) == 2
        assert (
            await locations.queue_resolution(session, [60003760, *stations, STRUCTURE]) == 0
        )  # pending already
        assert await locations.queue_resolution(session, [STRUCTURE], character=character) == 1
    async with platform.database.transaction(writes=False) as session:
        jobs = list(await session.scalars(select(Job).where(Job.name == locations.RESOLVE)))
    payloads = sorted((len(job.payload["location_ids"]), job.payload.get("character", "")) for job in jobs)
    assert payloads == [(1, ""), (1, str(character)), (locations.BATCH, "")]
    assert [job.payload["location_ids"] for job in jobs if job.payload.get("character")] == [[STRUCTURE]]
    assert 60003760 not in {i for job in jobs for i in job.payload["location_ids"]}


async def test_a_stored_book_queues_its_unknown_stations_and_the_job_names_them(
    platform: Platform, esi: FakeEsiServer
) -> None:
    await _with_jita(platform)
    _serve_places(esi)
    esi.fake.set_book(
        REGION, make_orders(REGION, count=40, locations=((STATION, JITA["id"]), (STRUCTURE, JITA["id"])))
    )
    async with esi.client(max_retries=1) as client:
        assert (await ingest.refresh_region(platform, client, REGION, now=esi.fake.now)).status == "ok"
    await platform.open_resources()
    try:
        await run_due_jobs(platform)  # the snapshot's subscriber, then the job it queued
    finally:
        await platform.resources.close()
    # The station is named; the structure waits for a character's sync (no token here), nothing asked.
    assert set(await _stations(platform)) == {STATION}
    assert [r.path for r in esi.fake.location_requests()] == [f"/universe/stations/{STATION}/"]
