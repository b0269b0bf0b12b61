"""The market app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module).

Session 1 builds it in parts; each part adds its pieces to the lists below with one line (an import and an
entry), so the parts merge without touching each other's lines:

- routers(), pages(): the REST routers and pages, imported only when a web app is built.
- JOBS, CRON: background work (market-esi: `*ingest_tasks.JOBS`, `*ingest_tasks.CRON`; market-sso: the
  token refresh job).
- TOPICS, EVENTS, SUBSCRIBERS: realtime topics, domain events and their handlers.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from pentad.apps.market import alert_tasks, permissions, sso_tasks
from pentad.apps.market import events as market_events
from pentad.apps.market import topics as market_topics
from pentad.apps.market.actions.characters import SSO_RUNTIME
from pentad.apps.market.analysis.hauling import LADDERS
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.ingest import character as character_ingest
from pentad.apps.market.ingest import history as history_ingest
from pentad.apps.market.ingest import locations as location_ingest
from pentad.apps.market.ingest import orders as ingest_orders
from pentad.apps.market.models import PARTITIONED
from pentad.apps.market.settings import APP_NAME, MarketSettings
from pentad.core.apps import AppSpec
from pentad.core.events import DomainEvent, EventSubscriber
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.realtime.topics import TopicSpec

PACKAGE = Path(__file__).parent

JOBS: list[JobSpec] = [*ingest_orders.JOBS]
CRON: list[CronSpec] = [*ingest_orders.CRON]
TOPICS: list[TopicSpec] = []
EVENTS: list[DomainEvent] = []  # type: ignore[type-arg]
SUBSCRIBERS: list[EventSubscriber] = []

JOBS.extend(sso_tasks.JOBS)
CRON.extend(sso_tasks.CRON)
JOBS.extend(character_ingest.JOBS)
JOBS.extend(history_ingest.JOBS)
CRON.extend(history_ingest.CRON)
CRON.extend(character_ingest.CRON)
JOBS.extend(alert_tasks.JOBS)
CRON.extend(alert_tasks.CRON)
TOPICS.extend(market_topics.TOPICS)
EVENTS.extend(market_events.EVENTS)
SUBSCRIBERS.extend(alert_tasks.SUBSCRIBERS)
JOBS.extend(location_ingest.JOBS)
SUBSCRIBERS.extend(location_ingest.SUBSCRIBERS)


def routers() -> list[APIRouter]:
    """The REST routers, imported when a web app is built (not by `pentad worker` or the CLI)."""
    from pentad.apps.market import (
        advisor_endpoints,
        alert_endpoints,
        endpoints,
        scan_endpoints,
        sso_endpoints,
        trader_endpoints,
    )

    return [
        endpoints.router,
        sso_endpoints.router,
        sso_endpoints.callback_router,
        trader_endpoints.router,
        alert_endpoints.router,
        scan_endpoints.router,
        advisor_endpoints.router,
    ]


def pages() -> list[APIRouter]:
    """The pages, imported when a web app is built."""
    from pentad.apps.market import pages, trader_pages

    return [trader_pages.router, pages.router]


APP = AppSpec(
    name=APP_NAME,
    title="Market",
    description="EVE Online market assistant: ESI and SSO in; station trading, hauling, orders, P&L, "
    "alerts and an AI advisor out.",
    routers=routers,
    pages=pages,
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.MARKET_USE, permissions.MARKET_ADVISOR]},
    resource_roles={permissions.CHARACTER_RESOURCE: permissions.CHARACTER_ROLES},
    topics=TOPICS,
    jobs=JOBS,
    cron=CRON,
    events=EVENTS,
    subscribers=SUBSCRIBERS,
    settings=MarketSettings,
    partitioned_tables=PARTITIONED,
    mail_templates=PACKAGE / "mail_templates",
    static_dir=PACKAGE / "static",
    resources=[ESI_CLIENT, SSO_RUNTIME, LADDERS],
    home_path="/market",
)
