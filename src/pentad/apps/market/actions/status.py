"""How fresh each region's market data is, as users see it: the age of the book in use and, when the
refreshes since the last good one failed (ESI down, slow, 420/429/5xx, malformed JSON, inconsistent pages,
or storing failed), since when, why and when the next attempt is due. The book in use is always the last
complete snapshot (an ingest run is all-or-nothing), so the figures stay right, only older."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.ingest.orders import KIND
from pentad.apps.market.models import MarketIngestRun, MarketRegionState
from pentad.apps.market.schemas import BookStatus
from pentad.core.db.base import utcnow

RECENT_RUNS = 200
"""Runs read back to find the last good one (a day of failures every 5 minutes is < 300)."""
GOOD = ("ok", "not_modified")
FAILING = ("failed", "deferred")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


async def book_status(market: MarketContext, region_id: int, *, now: datetime | None = None) -> BookStatus:
    now = _utc(now) or utcnow()
    state = await market.session.get(MarketRegionState, region_id)
    captured = (
        _utc(state.captured_at) if state is not None and state.current_snapshot_id is not None else None
    )
    runs = await market.session.scalars(
        select(MarketIngestRun)
        .where(MarketIngestRun.kind == KIND, MarketIngestRun.scope == str(region_id))
        .order_by(MarketIngestRun.started_at.desc())
        .limit(RECENT_RUNS)
    )
    failing: list[MarketIngestRun] = []
    for run in runs:
        if run.status in GOOD:
            break
        if run.status in FAILING:
            failing.append(run)
    age = None if captured is None else max(0, int((now - captured).total_seconds() // 60))
    since = _utc(failing[-1].started_at) if failing else None
    retry = _utc(failing[0].retry_at) if failing else None
    reason = failing[0].detail if failing else None
    held = "No market data yet" if age is None else f"Market data is {age} minutes old"
    if failing:
        assert since is not None
        message = f"{held}: ESI unavailable since {_clock(since)} ({reason})"
        message += f"; retrying at {_clock(retry)}." if retry is not None else "; retrying."
        return BookStatus(
            region_id=region_id, state="unavailable", captured_at=captured, age_minutes=age,
            unavailable_since=since, retry_at=retry, reason=reason, failed_attempts=len(failing),
            message=message,
        )  # fmt: skip
    if captured is None:
        return BookStatus(
            region_id=region_id, state="none", captured_at=None, age_minutes=None, unavailable_since=None,
            retry_at=None, reason=None, message=f"{held}: the first refresh has not finished.",
        )  # fmt: skip
    return BookStatus(
        region_id=region_id, state="ok", captured_at=captured, age_minutes=age, unavailable_since=None,
        retry_at=None, reason=None, message=f"{held}.",
    )  # fmt: skip


async def hub_statuses(market: MarketContext, region_ids: list[int]) -> list[BookStatus]:
    """One status per distinct region, in the order given."""
    return [await book_status(market, region) for region in dict.fromkeys(region_ids)]
