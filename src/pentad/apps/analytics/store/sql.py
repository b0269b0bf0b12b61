"""The SQL events store: raw events in the database (`analytics_events`), answered by query.py's planner
over the rollups (rollups.py) and pruned by retention.py — this only hands the questions to that code."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query

if TYPE_CHECKING:
    from pentad.core.ingest import FlushContext


class SqlEventStore:
    """The default store (`PENTAD_ANALYTICS__STORE=sql`)."""

    name: Final = "sql"

    async def insert(self, context: FlushContext, rows: Sequence[BaseModel]) -> None:
        from pentad.apps.analytics.ingest import flush_events

        await flush_events(context, rows)

    async def totals(
        self,
        session: AsyncSession,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        planning: query.Planning,
    ) -> query.Totals:
        return await query.totals(session, site_key, span, session_timeout, _here(planning))

    async def timeseries(
        self,
        session: AsyncSession,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        planning: query.Planning,
    ) -> list[query.Point]:
        return await query.timeseries(session, site_key, span, session_timeout, _here(planning))

    async def breakdown(
        self,
        session: AsyncSession,
        site_key: int,
        span: query.Range,
        dimension: str,
        *,
        limit: int,
        session_timeout: int,
        planning: query.Planning,
    ) -> list[query.Row]:
        return await query.breakdown(
            session,
            site_key,
            span,
            dimension,
            limit=limit,
            session_timeout=session_timeout,
            planning=_here(planning),
        )

    async def prune(self, floors: Mapping[int, int]) -> int:
        return 0

    async def delete_site(self, site_key: int) -> None:
        return None


def _here(planning: query.Planning) -> query.Planning:
    """The planning without a store: query.py answers from the database itself."""
    return dataclasses.replace(planning, store=None)


SQL_STORE: Final = SqlEventStore()
