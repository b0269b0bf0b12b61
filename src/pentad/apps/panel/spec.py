"""The panel app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module).

Session 1 part B built the control plane (nodes, enrolment, allocations, templates, servers). The agent
link, power, console and the later parts add their routers (to `routers()`, imported only when a web app is
built), topics, services, jobs and events to the lists below, one entry each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from pentad.apps.panel import events, permissions, services, topics
from pentad.apps.panel.actions import backups, plugins, schedules, transfers
from pentad.apps.panel.credentials import NODE_SCHEME
from pentad.apps.panel.plugins import host as plugin_host
from pentad.apps.panel.settings import APP_NAME, PanelSettings
from pentad.core.apps import AppSpec
from pentad.core.events import DomainEvent, EventSubscriber
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.realtime.topics import TopicSpec
from pentad.core.services import ServiceSpec

PACKAGE = Path(__file__).parent


def routers() -> list[APIRouter]:
    """The REST routers, imported when a web app is built (not by `pentad worker`, the agent or the CLI)."""
    from pentad.apps.panel import (
        agent_endpoints,
        backup_endpoints,
        control_endpoints,
        endpoints,
        files_endpoints,
        plugins_endpoints,
    )

    return [
        endpoints.router,
        agent_endpoints.router,
        control_endpoints.router,
        files_endpoints.router,
        backup_endpoints.router,
        plugins_endpoints.router,
    ]


def pages() -> list[APIRouter]:
    """The pages, imported when a web app is built."""
    from pentad.apps.panel import pages

    return [pages.router]


TOPICS: list[TopicSpec] = [*topics.TOPICS]
SERVICES: list[ServiceSpec] = [*services.SERVICES]
SERVICES.extend(plugin_host.SERVICES)
JOBS: list[JobSpec] = [*schedules.JOBS, *backups.JOBS]
JOBS.extend(transfers.JOBS)
CRON: list[CronSpec] = []
EVENTS: list[DomainEvent[Any]] = [*events.LINK_EVENTS]
EVENTS.extend(events.PLUGIN_EVENTS)
SUBSCRIBERS: list[EventSubscriber] = [*plugins.SUBSCRIBERS]

APP = AppSpec(
    name=APP_NAME,
    title="Panel",
    description="Game servers on many hosts: nodes and their agents, templates (eggs), servers.",
    routers=routers,
    pages=pages,
    static_dir=PACKAGE / "static",
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.PANEL_USE]},
    resource_roles={permissions.SERVER_RESOURCE: permissions.SERVER_ROLES},
    credential_schemes=[NODE_SCHEME],
    topics=TOPICS,
    services=SERVICES,
    jobs=JOBS,
    cron=CRON,
    events=EVENTS,
    subscribers=SUBSCRIBERS,
    settings=PanelSettings,
)
