"""The chat app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from pentad.apps.chat import permissions, tasks
from pentad.apps.chat.events import DOMAIN_EVENTS
from pentad.apps.chat.settings import APP_NAME, ChatSettings
from pentad.apps.chat.tenancy import CREDENTIAL_SCHEMES
from pentad.apps.chat.topics import TOPICS
from pentad.core.apps import AppSpec

PACKAGE = Path(__file__).parent


def routers() -> list[APIRouter]:
    """The REST routers, imported when a web app is built (not by `pentad worker` or the CLI)."""
    from pentad.apps.chat import (
        attachments_endpoints,
        endpoints,
        integrations_endpoints,
        search_endpoints,
        server_endpoints,
    )

    return [
        endpoints.router,
        search_endpoints.router,
        attachments_endpoints.router,
        integrations_endpoints.router,
        server_endpoints.admin_router,
        server_endpoints.server_router,
    ]


def pages() -> list[APIRouter]:
    """The pages, imported when a web app is built."""
    from pentad.apps.chat import pages

    return [pages.router]


APP = AppSpec(
    name=APP_NAME,
    title="Chat",
    description="Channels, direct messages, threads, reactions, read receipts, search and moderation.",
    routers=routers,
    pages=pages,
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.CHAT_USE]},
    resource_roles={permissions.CHANNEL_RESOURCE: permissions.CHANNEL_ROLES},
    topics=TOPICS,
    jobs=tasks.JOBS,
    cron=tasks.CRON,
    events=DOMAIN_EVENTS,
    mail_templates=PACKAGE / "mail_templates",
    credential_schemes=CREDENTIAL_SCHEMES,
    home_path="/chat",
    static_dir=PACKAGE / "static",
    settings=ChatSettings,
)
