"""The events store the deployment chose (`PENTAD_ANALYTICS__STORE`), and the hooks the rest of the app
calls: the ingest flush (`flush_elsewhere`), the planner (`external_store` → `Planning.store`), retention
(`prune_raw`), site deletion (`delete_site_events`). With the SQL store every hook is a no-op, so the code
around them runs as it always did.

With `clickhouse` each process opens one connection pool (`CLICKHOUSE`, a per-process resource) and
migrates the schema while opening it; a ClickHouse that cannot be reached stops the process's start.
`/readyz` lists `analytics.clickhouse` (ready at once with the SQL store).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import structlog
from pydantic import BaseModel
from sqlalchemy import select

from pentad.apps.analytics import retention
from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.apps.analytics.store.base import EventStore
from pentad.apps.analytics.store.clickhouse import ClickHouse, ClickHouseEventStore
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.health import HealthCheck, HealthContext
from pentad.core.ingest import FlushContext

logger = structlog.get_logger("pentad.analytics.store")

__all__ = [
    "CLICKHOUSE",
    "CLICKHOUSE_CHECK",
    "ClickHouseEventStore",
    "EventStore",
    "delete_site_events",
    "external_store",
    "flush_elsewhere",
    "prune_raw",
]


async def _open(context: AppContext) -> ClickHouseEventStore | None:
    settings = context.app_settings(AnalyticsSettings)
    if settings.store != "clickhouse":
        return None
    client = ClickHouse(settings.clickhouse)
    try:
        version = await client.migrate()
    except BaseException:
        await client.close()
        raise
    logger.info("analytics_clickhouse_ready", database=client.database, schema_version=version)
    return ClickHouseEventStore(client)


async def _close(store: ClickHouseEventStore | None) -> None:
    if store is not None:
        await store.client.close()


CLICKHOUSE: Final[ResourceSpec[ClickHouseEventStore | None]] = ResourceSpec(
    "analytics.clickhouse", _open, _close
)
"""This process's ClickHouse store (None with the SQL store)."""


def _clickhouse(context: AppContext) -> ClickHouseEventStore | None:
    """This process's ClickHouse store, None with the SQL store (which needs no resource open)."""
    if context.app_settings(AnalyticsSettings).store != "clickhouse":
        return None
    found: ClickHouseEventStore | None = context.resource(CLICKHOUSE)
    return found


def external_store(context: AppContext) -> EventStore | None:
    """The store of this deployment when it is not the database (the planner asks it instead), else None."""
    return _clickhouse(context)


async def flush_elsewhere(context: FlushContext, rows: Sequence[BaseModel]) -> bool:
    """Store an `analytics.events` batch outside the database when the deployment says so (True), else
    leave it to the SQL flush (False)."""
    found = _clickhouse(context.context)
    if found is None:
        return False
    await found.insert(context, rows)
    return True


async def prune_raw(context: AppContext, now: datetime | None = None) -> int:
    """Apply every site's raw tier to the events store outside the database (0 with the SQL store, which
    retention.prune_site_step prunes)."""
    found = _clickhouse(context)
    if found is None:
        return 0
    settings = context.app_settings(AnalyticsSettings)
    moment = now or datetime.now(UTC)
    async with context.database.transaction() as session:
        sites = list((await session.scalars(select(AnalyticsSite))).all())
    floors = {
        site.key: retention.raw_floor_ms(retention.effective(site.retention, settings.default_tiers), moment)
        for site in sites
    }
    return await found.prune(floors)


async def delete_site_events(context: AppContext, site_key: int) -> None:
    """A deleted site's events outside the database (nothing with the SQL store)."""
    found = _clickhouse(context)
    if found is not None:
        await found.delete_site(site_key)


async def _probe(context: HealthContext) -> None:
    settings = context.settings.app_settings("analytics", AnalyticsSettings)
    if settings.store != "clickhouse":
        return
    client = ClickHouse(settings.clickhouse)
    try:
        await client.execute("SELECT 1")
    finally:
        await client.close()


CLICKHOUSE_CHECK: Final = HealthCheck("clickhouse", _probe)
