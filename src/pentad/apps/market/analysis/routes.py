"""Jumps between solar systems over the static data's stargate graph (docs/plans/market.md §3).

Preferences:

- `shortest`: fewest jumps, whatever the security (breadth-first search).
- `safer`: EVE's "prefer safer": every jump into a low- or null-sec system costs LOW_SEC_COST jumps, so
  the route stays in high-sec unless that is more than 50 times longer or impossible (Dijkstra).
- `secure`: fewest jumps through high-sec systems only — origin and destination included; None when no
  such route exists. High-sec is the security *as EVE displays it* being 0.5 or more, i.e. a true
  security of 0.45 or more (EVE developer documentation, "System Security",
  https://developers.eveonline.com/docs/guides/system-security/): a 0.45 system is shown and flown as
  0.5, which tools comparing the raw value with 0.5 get wrong.

Ties between equally good routes are broken the same way on every run (neighbours are searched in id
order). The
graph is loaded once per process and static-data import (`load_graph`), and each origin's search tree is
kept, so a five-hub hauling search runs five searches per preference at most.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository

Preference = Literal["shortest", "secure", "safer"]
PREFERENCES: tuple[Preference, ...] = ("shortest", "secure", "safer")
LOW_SEC_COST = 50
"""What entering a system below high-sec weighs under `safer`, in jumps (docs/plans/market.md §3)."""
HIGH_SEC = 0.5
"""Lowest displayed security of a high-sec system."""
TREE_CACHE = 512
"""Search trees a graph keeps (one per origin and preference) before it starts afresh."""


class UnknownSystem(ValueError):
    """A system id that is not in the graph."""


def display_security(security: float) -> float:
    """A true security as EVE shows it: rounded half-up to one decimal, except that any positive value
    below 0.05 shows as 0.1 (positive means low-sec, never 0.0). Computed on the decimal the value was
    written as, so 0.45 rounds to 0.5 whatever its binary float."""
    if 0.0 < security < 0.05:
        return 0.1
    tenths = math.floor(Decimal(repr(security)) * 10 + Decimal("0.5"))
    return tenths / 10


def is_high_sec(security: float) -> bool:
    return display_security(security) >= HIGH_SEC


@dataclass(frozen=True)
class Route:
    """A route: the systems flown through, origin and destination included."""

    systems: tuple[int, ...]
    preference: Preference
    lowest_security: float
    """The lowest displayed security on the route."""

    @property
    def jumps(self) -> int:
        """Gates taken: systems on the route minus one (0 when origin is destination)."""
        return len(self.systems) - 1

    @property
    def origin(self) -> int:
        return self.systems[0]

    @property
    def destination(self) -> int:
        return self.systems[-1]


class RouteGraph:
    """The stargate graph with each system's security; answers routes and keeps search trees."""

    def __init__(self, neighbours: Mapping[int, Iterable[int]], security: Mapping[int, float]) -> None:
        graph: dict[int, set[int]] = {system: set() for system in security}
        for system, others in neighbours.items():
            for other in others:
                if other == system:
                    continue
                graph.setdefault(system, set()).add(other)
                graph.setdefault(other, set()).add(system)  # every gate has its way back
        self.neighbours: dict[int, tuple[int, ...]] = {s: tuple(sorted(n)) for s, n in graph.items()}
        self.security: dict[int, float] = {s: float(security.get(s, -1.0)) for s in self.neighbours}
        self.high_sec: frozenset[int] = frozenset(s for s, v in self.security.items() if is_high_sec(v))
        self._trees: dict[tuple[int, Preference], dict[int, int]] = {}

    def __contains__(self, system: object) -> bool:
        return system in self.neighbours

    def __len__(self) -> int:
        return len(self.neighbours)

    def _check(self, system: int) -> None:
        if system not in self.neighbours:
            raise UnknownSystem(f"solar system {system} is not in the static data")

    def _tree(self, origin: int, preference: Preference) -> dict[int, int]:
        """Breadth-first search from `origin`: each reachable system's predecessor (origin -> itself)."""
        key = (origin, preference)
        tree = self._trees.get(key)
        if tree is not None:
            return tree
        tree = self._safer_tree(origin) if preference == "safer" else self._bfs_tree(origin, preference)
        if len(self._trees) >= TREE_CACHE:
            self._trees.clear()
        self._trees[key] = tree
        return tree

    def _bfs_tree(self, origin: int, preference: Preference) -> dict[int, int]:
        allowed = self.high_sec if preference == "secure" else None
        tree = {}
        if allowed is None or origin in allowed:
            tree[origin] = origin
            queue = deque([origin])
            while queue:
                here = queue.popleft()
                for there in self.neighbours[here]:
                    if there not in tree and (allowed is None or there in allowed):
                        tree[there] = here
                        queue.append(there)
        return tree

    def _safer_tree(self, origin: int) -> dict[int, int]:
        """Dijkstra where a jump into a high-sec system costs 1 and into any other LOW_SEC_COST; ties
        go to the lower predecessor id (heap order on (cost, system, predecessor))."""
        tree: dict[int, int] = {}
        heap = [(0, origin, origin)]
        while heap:
            cost, here, before = heapq.heappop(heap)
            if here in tree:
                continue
            tree[here] = before
            for there in self.neighbours[here]:
                if there not in tree:
                    step = 1 if there in self.high_sec else LOW_SEC_COST
                    heapq.heappush(heap, (cost + step, there, here))
        return tree

    def route(self, origin: int, destination: int, preference: Preference = "shortest") -> Route | None:
        """The route from `origin` to `destination`, or None when there is none for the preference (no
        gate connection; for `secure`, no all-high-sec one). Unknown systems raise UnknownSystem."""
        if preference not in PREFERENCES:
            raise ValueError(f"preference is one of {', '.join(PREFERENCES)}, not {preference!r}")
        self._check(origin)
        self._check(destination)
        tree = self._tree(origin, preference)
        if destination not in tree:
            return None
        path = [destination]
        while path[-1] != origin:
            path.append(tree[path[-1]])
        path.reverse()
        lowest = min(display_security(self.security[system]) for system in path)
        return Route(tuple(path), preference, lowest)

    def jumps(self, origin: int, destination: int, preference: Preference = "shortest") -> int | None:
        found = self.route(origin, destination, preference)
        return None if found is None else found.jumps

    def routes_from(
        self, origin: int, destinations: Sequence[int], preference: Preference = "shortest"
    ) -> dict[int, Route | None]:
        """Routes from one origin to many destinations over one search."""
        return {destination: self.route(origin, destination, preference) for destination in destinations}


_GRAPHS: dict[tuple[str, str, str], RouteGraph] = {}


async def load_graph(session: AsyncSession) -> RouteGraph:
    """The stargate graph of the database's current static data, loaded once per process and import
    (keyed by the database URL and the latest SDE import, so a re-import is picked up)."""
    latest = await repository.latest_import(session)
    key: tuple[str, str, str] | None = None
    if latest is not None:
        url = session.get_bind().engine.url.render_as_string(hide_password=True)
        key = (url, str(latest.id), f"{latest.imported_at.isoformat()} {latest.build}")
        cached = _GRAPHS.get(key)
        if cached is not None:
            return cached
    graph = RouteGraph(await repository.stargate_graph(session), await repository.system_securities(session))
    if key is not None:
        _GRAPHS.clear()  # one graph per process: the previous import's is stale
        _GRAPHS[key] = graph
    return graph
