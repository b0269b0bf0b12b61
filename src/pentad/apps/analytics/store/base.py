"""The events store: where raw events go and what answers the dashboard's questions about them.

`PENTAD_ANALYTICS__STORE` picks one per deployment: `sql` (the database, with rollups and the query
planner of query.py, which answers itself: `Planning.store` stays None) or `clickhouse`
(store/clickhouse.py: a ClickHouse server, every question answered from raw events). Both give the same
answers to the same events (tests/apps/analytics/test_store_parity.py); query.py hands a question to
`Planning.store` when one is set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from pentad.apps.analytics.filters import Filter
    from pentad.apps.analytics.funnels import Step
    from pentad.apps.analytics.goals import GoalRule
    from pentad.apps.analytics.pushdown import GoalCount, Group
    from pentad.apps.analytics.query import Planning, Point, Range, Row, Totals
    from pentad.core.ingest import FlushContext


class EventStore(Protocol):
    """What the ingest flush, the query planner and the retention job need of a store of raw events."""

    @property
    def name(self) -> str:
        """`sql` or `clickhouse`."""
        ...

    async def insert(self, context: FlushContext, rows: Sequence[BaseModel]) -> None:
        """Store one ingest batch of `EventRow`s; a replayed batch (`context.replay`) is stored once."""
        ...

    async def totals(
        self, session: AsyncSession, site_key: int, span: Range, session_timeout: int, planning: Planning
    ) -> Totals:
        """Top stats: visitors, visits, pageviews, custom events, bounces, visit duration."""
        ...

    async def timeseries(
        self, session: AsyncSession, site_key: int, span: Range, session_timeout: int, planning: Planning
    ) -> list[Point]:
        """Visitors and pageviews per interval of the range."""
        ...

    async def breakdown(
        self,
        session: AsyncSession,
        site_key: int,
        span: Range,
        dimension: str,
        *,
        limit: int,
        session_timeout: int,
        planning: Planning,
    ) -> list[Row]:
        """The top values of a dimension (query.Dimension: the rollups' ones, and the raw-only ones when
        the store is not the database) by visitors."""
        ...

    async def medium_traffic(
        self, site_key: int, span: Range, limit: int
    ) -> list[tuple[str | None, int, int]]:
        """Per source category (the events' `medium`; None: unknown): (medium, visitors, pageviews) of the
        range's pageviews, the `limit` categories with the most pageviews (analytics.page_traffic)."""
        ...

    async def live(self, site_key: int, since_ms: int, top: int) -> tuple[int, int, list[tuple[str, int]]]:
        """Who is on the site now: (visitors with an event since `since_ms`, pageviews since then, the
        `top` pages by visitors as (path, visitors)) — live.py's frame."""
        ...

    async def props(
        self, site_key: int, span: Range, key: str | None, *, event: str | None = None, limit: int = 10
    ) -> list[tuple[str, int, int]]:
        """Custom property keys (`key` None) or one key's values, of events named `event` (or of all):
        (value, visitors, events carrying it), by visitors, then events, then value."""
        ...

    # Filtered questions (filters.py's rules: visits from the range's events, kept by every filter; the
    # counted events those matching every `is`/`contains` event filter), goals, funnels. `rules`: the
    # site's goals (for `goal` filters, conversions and goal steps).

    async def filtered_totals(
        self,
        site_key: int,
        span: Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
    ) -> Totals: ...

    async def filtered_timeseries(
        self,
        site_key: int,
        span: Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        edges: Sequence[int],
    ) -> list[tuple[int, int]]:
        """(visitors, pageviews) per interval starting at each of `edges` (unix ms)."""
        ...

    async def filtered_breakdown(
        self,
        site_key: int,
        span: Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        dimension: str,
        limit: int,
    ) -> list[Group]:
        """The top `limit` values of a breakdown (filters.BREAKDOWNS), ranked as filters.ranked."""
        ...

    async def filtered_goals(
        self,
        site_key: int,
        span: Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
    ) -> tuple[int, list[GoalCount]]:
        """(visitors of the kept visits, per rule its conversions)."""
        ...

    async def filtered_props(
        self,
        site_key: int,
        span: Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        key: str | None,
        limit: int,
    ) -> list[tuple[str, int, int]]:
        """As `props`, over the counted events of the kept visits."""
        ...

    async def filtered_funnel(
        self,
        site_key: int,
        span: Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        steps: Sequence[Step],
        scope: str,
    ) -> tuple[int, list[tuple[int, int]]]:
        """(units, per step the (units, visitors) that reached it), as funnels.report."""
        ...

    async def prune(self, floors: Mapping[int, int]) -> int:
        """Delete each site's raw events older than its floor (site key → unix ms; 0 keeps all); how
        many were removed. The SQL store prunes in retention.py's transactions instead (returns 0)."""
        ...

    async def delete_site(self, site_key: int) -> None:
        """Delete every raw event of a site (a deleted site; its key may be given to a new one)."""
        ...
