"""The static lookups the analysis builds on, over the imported subset, on every database."""

from __future__ import annotations

from collections import deque

from pentad.apps.market import repository, sde
from pentad.apps.market.settings import Hub, MarketSettings
from pentad.core.db.engine import Database

HUB_SYSTEMS = {"jita": 30000142, "amarr": 30002187, "dodixie": 30002659, "rens": 30002510, "hek": 30002053}


def _jumps(graph: dict[int, list[int]], start: int, end: int, allowed: set[int] | None = None) -> int | None:
    seen, queue = {start: 0}, deque([start])
    while queue:
        here = queue.popleft()
        if here == end:
            return seen[here]
        for there in graph.get(here, []):
            if there not in seen and (allowed is None or there in allowed):
                seen[there] = seen[here] + 1
                queue.append(there)
    return None


async def test_types_are_found_by_name_prefix_in_any_case(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        assert [t.name for t in await repository.find_types(session, "TRIT")] == ["Tritanium"]
        assert [t.id for t in await repository.find_types(session, "broker rel")] == [3446]
        assert await repository.find_types(session, "%") == []  # a wildcard is a character, not a pattern
        assert await repository.find_types(session, "_ritanium") == []
        goods = await repository.find_types(session, "Syn Trade Good", limit=500)
        assert len(goods) == 82  # 83 made; Syn Trade Good 150 is unpublished, without a market group
        everything = await repository.find_types(session, "Syn Trade Good", limit=500, on_market=False)
        assert len(everything) == 83
        rifter = await repository.get_type(session, 587)
        assert rifter is not None
        assert (rifter.name, rifter.packaged_volume_m3) == ("Rifter", 2500.0)
        assert await repository.get_type(session, 123_456_789) is None
        assert set(await repository.types_by_ids(session, [34, 35, 999])) == {34, 35}


async def test_the_fee_skills_resolve_by_name(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        assert await repository.fee_skill_ids(session, sde.FEE_SKILLS) == {
            "Accounting": 16622,
            "Broker Relations": 3446,
            "Advanced Broker Relations": 16597,
        }
        assert await repository.fee_skill_ids(session, ["Not A Skill"]) == {}


async def test_the_stargate_graph_joins_every_hub_and_security_decides_high_sec(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        graph = await repository.stargate_graph(session)
        security = await repository.system_securities(session)
        hek = await repository.find_system(session, "hek")
    assert hek is not None
    assert hek.id == HUB_SYSTEMS["hek"]
    assert round(hek.security, 1) == 0.5  # 0.46 true security is shown, and flown, as high-sec
    assert all(graph[a] == sorted(set(graph[a])) for a in graph)
    assert all(a in graph[b] for a in graph for b in graph[a])  # every gate has its way back
    high_sec = {system for system, value in security.items() if round(value, 1) >= 0.5}
    assert 0.45 in security.values()
    for a in HUB_SYSTEMS.values():
        for b in HUB_SYSTEMS.values():
            assert _jumps(graph, a, b) is not None
            assert _jumps(graph, a, b, high_sec) is not None
    # Shortest Jita -> Amarr crosses low-sec (5 jumps); the high-sec road is longer (via Dodixie: 15).
    assert _jumps(graph, HUB_SYSTEMS["jita"], HUB_SYSTEMS["amarr"]) == 5
    assert _jumps(graph, HUB_SYSTEMS["jita"], HUB_SYSTEMS["amarr"], high_sec) == 15


async def test_the_configured_hubs_resolve_to_their_stations(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        infos = await repository.resolve_hubs(session, MarketSettings().hub_list)
        wrong = await repository.resolve_hubs(
            session, [Hub("jita", 60003760, 10000043), Hub("x", 60000001, 1)]
        )
    assert [info.ok for info in infos] == [True] * 5
    jita = infos[0]
    assert jita.station is not None
    assert jita.system is not None
    assert jita.region is not None
    assert (jita.station.name, jita.system.name, jita.region.name) == (
        "Jita IV - Moon 4 - Caldari Navy Assembly Plant", "Jita", "The Forge",
    )  # fmt: skip
    assert {info.hub.key: info.system.id for info in infos if info.system} == HUB_SYSTEMS
    assert [info.ok for info in wrong] == [False, False]  # configured in the wrong region; unknown station
    assert wrong[1].station is None


async def test_status_reports_the_last_import(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        record = await repository.latest_import(session)
        counts = await repository.static_counts(session)
    assert record is not None
    assert (record.build, record.source) == ("subset-1", "shipped subset")
    assert record.counts == counts
    assert counts["stations"] == 5
