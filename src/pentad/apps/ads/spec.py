"""The ads app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from pentad.apps.ads import budgets, conversions, impressions, live, permissions, tasks
from pentad.apps.ads.delivery import DELIVERY_SNAPSHOT
from pentad.apps.ads.settings import APP_NAME, AdsSettings
from pentad.core.apps import AppSpec

PACKAGE = Path(__file__).parent


def routers() -> list[APIRouter]:
    """The REST routers, imported when a web app is built (not by `pentad worker` or the CLI)."""
    from pentad.apps.ads import endpoints, serving

    return [serving.router, endpoints.router]


def pages() -> list[APIRouter]:
    """The pages (and the click, image and HTML5 routes beside them), imported when a web app is built."""
    from pentad.apps.ads import clicks, html5, images, pages, report_pages

    return [pages.router, report_pages.router, clicks.router, images.router, html5.router]


APP = AppSpec(
    name=APP_NAME,
    title="Ads",
    description="Advertisers, campaigns and creatives; sites and their zones; serving with viewable "
    "impressions, counted clicks, conversions from analytics goals and budgets.",
    routers=routers,
    pages=pages,
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.ADS_USE]},
    resource_roles={
        permissions.SITE_RESOURCE: permissions.SITE_ROLES,
        permissions.ADVERTISER_RESOURCE: permissions.ADVERTISER_ROLES,
    },
    ingest=[impressions.IMPRESSIONS, impressions.CLICKS],
    resources=[DELIVERY_SNAPSHOT, live.WATCHED],
    topics=live.TOPICS,
    services=live.SERVICES,
    home_path="/ads",
    static_dir=PACKAGE / "static",
    settings=AdsSettings,
    jobs=tasks.JOBS,
    cron=tasks.CRON,
    events=[budgets.BUDGET_EXHAUSTED],
    subscribers=[*budgets.SUBSCRIBERS, *conversions.SUBSCRIBERS],
    mail_templates=PACKAGE / "mail_templates",
)
