"""The analytics app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module)."""

from __future__ import annotations

from pathlib import Path

from pentad.apps.analytics import endpoints, ingest, pages, permissions, store, tasks
from pentad.apps.analytics.registry import SITE_REGISTRY
from pentad.apps.analytics.settings import APP_NAME, AnalyticsSettings
from pentad.core.apps import AppSpec

PACKAGE = Path(__file__).parent

APP = AppSpec(
    name=APP_NAME,
    title="Analytics",
    description="Cookieless first-party web analytics: a 1 KB tracker, durable ingest, dashboards.",
    routers=[ingest.router, endpoints.router],
    pages=[pages.router],
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.ANALYTICS_USE]},
    resource_roles={permissions.SITE_RESOURCE: permissions.SITE_ROLES},
    ingest=[ingest.EVENTS, ingest.DROPS],
    resources=[SITE_REGISTRY, store.CLICKHOUSE],
    health_checks=[store.CLICKHOUSE_CHECK],
    home_path="/analytics",
    static_dir=PACKAGE / "static",
    settings=AnalyticsSettings,
    jobs=tasks.JOBS,
    cron=tasks.CRON,
)
