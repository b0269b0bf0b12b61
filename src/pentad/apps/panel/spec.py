"""The panel app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module).

Session 1 part B built the control plane (nodes, enrolment, allocations, templates, servers). The agent
link, power, console and the later parts add their routers, topics, services, jobs and events to the lists
below, one entry each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from pentad.apps.panel import (
    agent_endpoints,
    backup_endpoints,
    control_endpoints,
    endpoints,
    events,
    files_endpoints,
    pages,
    permissions,
    services,
    topics,
)
from pentad.apps.panel.actions import backups, schedules, transfers
from pentad.apps.panel.credentials import NODE_SCHEME
from pentad.apps.panel.settings import APP_NAME, PanelSettings
from pentad.core.apps import AppSpec
from pentad.core.events import DomainEvent
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.realtime.topics import TopicSpec
from pentad.core.services import ServiceSpec

PACKAGE = Path(__file__).parent

ROUTERS: list[APIRouter] = [endpoints.router, agent_endpoints.router, control_endpoints.router]
ROUTERS.append(files_endpoints.router)
ROUTERS.append(backup_endpoints.router)
TOPICS: list[TopicSpec] = [*topics.TOPICS]
SERVICES: list[ServiceSpec] = [*services.SERVICES]
JOBS: list[JobSpec] = [*schedules.JOBS, *backups.JOBS]
JOBS.extend(transfers.JOBS)
CRON: list[CronSpec] = []
EVENTS: list[DomainEvent[Any]] = [*events.LINK_EVENTS]

APP = AppSpec(
    name=APP_NAME,
    title="Panel",
    description="Game servers on many hosts: nodes and their agents, templates (eggs), servers.",
    routers=ROUTERS,
    pages=[pages.router],
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
    settings=PanelSettings,
)
