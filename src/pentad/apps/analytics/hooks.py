"""What the product adds to every flush of `analytics.events` (ingest.flush_events calls `on_flush` in
the transaction that stores the batch): goal completions become `analytics.goals_completed` events
(goals.py), and the sites that got events are noted for the live frames (live.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pentad.apps.analytics import goals, live
from pentad.core.ingest import FlushContext


async def on_flush(flush: FlushContext, rows: Sequence[Any]) -> None:
    await goals.emit_completions(flush.session, rows)
    live.note_flushed(flush.context if flush.bound else None, {row.site_key for row in rows})
