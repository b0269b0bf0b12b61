"""Routes over a hand-built graph (every path worked out by hand) and over the shipped static data."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pentad.apps.market import repository, sde
from pentad.apps.market.analysis.fees import FeeSkills, fee_rates_at
from pentad.apps.market.analysis.routes import (
    PREFERENCES,
    RouteGraph,
    UnknownSystem,
    display_security,
    is_high_sec,
    load_graph,
)
from pentad.core.db.engine import Database

# The graph (system, true security):
#   1 (1.0) === 2 (0.9) === 3 (0.2) === 4 (0.8) === 7 (0.44) === 8 (0.7)
#                 \                      /
#                  5 (0.45) === 6 (0.6)          9 (1.0, no gates)     10 (0.03) === 4
SECURITY = {1: 1.0, 2: 0.9, 3: 0.2, 4: 0.8, 5: 0.45, 6: 0.6, 7: 0.44, 8: 0.7, 9: 1.0, 10: 0.03}
GATES = {1: [2], 2: [3, 5], 3: [4], 4: [7, 10], 5: [6], 6: [4], 7: [8]}  # one way each; the graph mirrors


@pytest.fixture(scope="module")
def graph() -> RouteGraph:
    return RouteGraph(GATES, SECURITY)


@pytest.mark.parametrize(
    ("true", "shown"),
    [
        (1.0, 1.0),
        (0.95, 1.0),
        (0.45, 0.5),  # shown and flown as high-sec
        (0.4499999, 0.4),
        (0.05, 0.1),
        (0.04, 0.1),  # positive below 0.05: 0.1, never 0.0
        (0.0, 0.0),
        (-0.04, 0.0),
        (-0.46, -0.5),
        (-1.0, -1.0),
    ],
)
def test_security_is_rounded_as_eve_displays_it(true: float, shown: float) -> None:
    assert display_security(true) == shown
    assert is_high_sec(true) is (shown >= 0.5)


def test_shortest_goes_through_low_sec_and_secure_goes_around(graph: RouteGraph) -> None:
    shortest = graph.route(1, 4)
    assert shortest is not None
    assert shortest.systems == (1, 2, 3, 4)  # 4 systems -> 3 jumps
    assert (shortest.jumps, shortest.lowest_security) == (3, 0.2)
    secure = graph.route(1, 4, "secure")
    assert secure is not None
    assert secure.systems == (1, 2, 5, 6, 4)  # around 3 (0.2) through 5 (0.45 shown 0.5): 4 jumps
    assert (secure.jumps, secure.lowest_security) == (4, 0.5)
    assert (secure.origin, secure.destination, secure.preference) == (1, 4, "secure")


def test_no_high_sec_route_means_none(graph: RouteGraph) -> None:
    assert graph.jumps(1, 8) == 5  # 1-2-3-4-7-8
    assert graph.route(1, 8, "secure") is None  # 8 only behind 7 (0.44 shown 0.4)
    assert graph.route(3, 4, "secure") is None  # starting in low-sec
    assert graph.route(1, 10, "secure") is None  # ending in a 0.03 (shown 0.1) system
    assert graph.jumps(3, 4) == 1


def test_safer_stays_in_high_sec_where_it_can_and_leaves_it_where_it_must(graph: RouteGraph) -> None:
    # 1 -> 4: via 3 costs 1 + 50 (into 3) + 1 = 52; around via 5 and 6 costs 4: the secure road
    safer = graph.route(1, 4, "safer")
    assert safer is not None
    assert safer.systems == (1, 2, 5, 6, 4)
    # 1 -> 8: no high-sec road; around then through 7: 1+1+1+1+50+1 = 55 beats 1+50+1+50+1 = 103 via 3
    beyond = graph.route(1, 8, "safer")
    assert beyond is not None
    assert (beyond.systems, beyond.jumps, beyond.lowest_security) == ((1, 2, 5, 6, 4, 7, 8), 6, 0.4)
    assert graph.jumps(3, 4, "safer") == 1  # starting in low-sec is no obstacle
    assert graph.route(1, 9, "safer") is None


def test_a_system_without_gates_is_unreachable(graph: RouteGraph) -> None:
    assert graph.route(1, 9) is None
    assert graph.route(9, 1, "secure") is None
    assert graph.routes_from(1, [4, 9, 1]) == {4: graph.route(1, 4), 9: None, 1: graph.route(1, 1)}


def test_staying_put_is_zero_jumps(graph: RouteGraph) -> None:
    here = graph.route(5, 5, "secure")
    assert here is not None
    assert (here.systems, here.jumps) == ((5,), 0)


def test_gates_work_both_ways_and_ties_go_to_lower_ids() -> None:
    square = RouteGraph({1: [3, 2], 4: [2, 3]}, {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0})
    back = square.route(4, 1)
    assert back is not None
    assert back.systems == (4, 2, 1)  # 4-2-1 and 4-3-1 are both 2 jumps: the lower id wins
    assert square.neighbours[2] == (1, 4)


def test_unknown_systems_and_preferences_are_refused(graph: RouteGraph) -> None:
    with pytest.raises(UnknownSystem, match="404 is not in the static data"):
        graph.route(1, 404)
    with pytest.raises(UnknownSystem, match="404"):
        graph.route(404, 1, "secure")
    with pytest.raises(ValueError, match="preference is one of shortest, secure, safer"):
        graph.route(1, 4, "fastest")  # type: ignore[arg-type]


# --- the shipped static data subset ------------------------------------------------------------------------

JITA, AMARR, DODIXIE, RENS, HEK = 30000142, 30002187, 30002659, 30002510, 30002053


@pytest.mark.one_engine
async def test_routes_over_the_shipped_subset(static_db: Database) -> None:
    async with static_db.transaction(writes=False) as session:
        graph = await load_graph(session)
        assert await load_graph(session) is graph  # loaded once per process and import
    # Jita -> Amarr: 5 jumps through low-sec (Syn-025..028); high-sec only: 15 via Dodixie and the
    # 0.45 system Syn-019 (shown 0.5).
    shortest = graph.route(JITA, AMARR)
    secure = graph.route(JITA, AMARR, "secure")
    assert shortest is not None
    assert secure is not None
    assert (shortest.jumps, len(shortest.systems)) == (5, 6)
    assert shortest.lowest_security < 0.5
    assert secure.jumps == 15
    assert DODIXIE in secure.systems
    assert 30900019 in secure.systems  # Syn-019, true security 0.45
    assert all(is_high_sec(graph.security[system]) for system in secure.systems)
    assert secure.lowest_security == 0.5
    # a low-sec destination has no high-sec route
    assert graph.route(JITA, shortest.systems[2], "secure") is None
    # five hubs, every ordered pair, both preferences: all connected in the subset
    hubs = [JITA, AMARR, DODIXIE, RENS, HEK]
    for origin in hubs:
        for preference in PREFERENCES:
            found = graph.routes_from(origin, hubs, preference)
            assert all(route is not None for route in found.values())
            here = found[origin]
            assert here is not None
            assert here.jumps == 0
    assert graph.jumps(JITA, AMARR) == graph.jumps(AMARR, JITA)


@pytest.mark.one_engine
async def test_a_new_import_replaces_the_cached_graph_and_stations_price_their_fees(
    static_db: Database,
) -> None:
    async with static_db.transaction(writes=False) as session:
        before = await load_graph(session)
        jita = await repository.get_station(session, 60003760)
    assert jita is not None
    # Jita 4-4 belongs to Caldari Navy (1000035) of the Caldari State (500001):
    # 3 % - 0.3 % x 4 - 0.03 % x 10 - 0.02 % x 10 = 3 % - 1.2 % - 0.3 % - 0.2 % = 1.3 %
    rates = fee_rates_at(jita, FeeSkills(broker_relations=4), {500001: 10.0, 1000035: 10.0})
    assert rates.broker == Decimal("0.013")
    async with static_db.transaction() as session:
        await sde.import_subset(session)
    async with static_db.transaction(writes=False) as session:
        after = await load_graph(session)
        assert await load_graph(session) is after
    assert after is not before
    assert after.neighbours == before.neighbours
