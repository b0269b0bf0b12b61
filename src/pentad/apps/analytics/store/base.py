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

    async def prune(self, floors: Mapping[int, int]) -> int:
        """Delete each site's raw events older than its floor (site key → unix ms; 0 keeps all); how
        many were removed. The SQL store prunes in retention.py's transactions instead (returns 0)."""
        ...

    async def delete_site(self, site_key: int) -> None:
        """Delete every raw event of a site (a deleted site; its key may be given to a new one)."""
        ...
