"""The analytics app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from pentad.apps.analytics import (
    ga4,
    ga4_import,
    ingest,
    keys,
    live,
    permissions,
    reports,
    retention,
    store,
    tasks,
    topics,
)
from pentad.apps.analytics.events import DOMAIN_EVENTS
from pentad.apps.analytics.queries import QUERIES
from pentad.apps.analytics.registry import SITE_REGISTRY
from pentad.apps.analytics.settings import APP_NAME, AnalyticsSettings
from pentad.core.apps import AppSpec

PACKAGE = Path(__file__).parent


def routers() -> list[APIRouter]:
    """The REST routers, imported when a web app is built (not by `pentad worker` or the CLI)."""
    from pentad.apps.analytics import endpoints, stats_api

    return [
        ingest.router,
        endpoints.router,
        keys.router,
        stats_api.router,
        ga4.router,
        reports.router,
        ga4_import.router,
    ]


def pages() -> list[APIRouter]:
    """The pages, imported when a web app is built."""
    from pentad.apps.analytics import pages, sharing

    return [sharing.router, pages.router, reports.pages]


APP = AppSpec(
    name=APP_NAME,
    title="Analytics",
    description="Cookieless first-party web analytics: a 1 KB tracker, durable ingest, dashboards.",
    routers=routers,
    credential_schemes=keys.CREDENTIAL_SCHEMES,
    pages=pages,
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.ANALYTICS_USE]},
    resource_roles={permissions.SITE_RESOURCE: permissions.SITE_ROLES},
    ingest=[ingest.EVENTS, ingest.DROPS],
    resources=[SITE_REGISTRY, live.LIVE_SITES, store.CLICKHOUSE],
    topics=topics.TOPICS,
    services=[live.LIVE_SERVICE],
    health_checks=[store.CLICKHOUSE_CHECK],
    home_path="/analytics",
    static_dir=PACKAGE / "static",
    settings=AnalyticsSettings,
    jobs=[*tasks.JOBS, *ga4.JOBS, *ga4_import.JOBS, *reports.JOBS],
    cron=[*tasks.CRON, *reports.CRON],
    mail_templates=PACKAGE / "templates" / "analytics" / "mail",
    partitioned_tables=[retention.RAW_EVENTS],
    events=DOMAIN_EVENTS,
    queries=QUERIES,
)
