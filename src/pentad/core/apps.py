"""AppSpec: everything an app hands the core. The core imports no app; app.py turns specs into routes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from pentad.core.auth.permissions import Permission
from pentad.core.auth.schemes import CredentialScheme
from pentad.core.context import ResourceSpec
from pentad.core.db.partitions import PartitionedTable
from pentad.core.events import DomainEvent, EventSubscriber
from pentad.core.health import HealthCheck
from pentad.core.ingest import IngestStream
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.policy import RoutePolicy
from pentad.core.queries import QuerySpec
from pentad.core.realtime.topics import TopicSpec
from pentad.core.services import ServiceSpec

Routers = Sequence[APIRouter] | Callable[[], Sequence[APIRouter]]
"""An app's routers, or a function that imports and returns them (AppSpec.routers and .pages)."""


@dataclass(frozen=True)
class AppSpec:
    """An app's contribution to the platform.

    routers: REST routers (mounted as given, normally under /api/<name>).
    pages: routers of server-rendered pages (normally under /<name>).
    Either may be a function returning the routers, so that the endpoint modules (seconds of imports: FastAPI
    builds every route's models) load only when a web app is built, not for `pentad worker` or the CLI;
    `api_routers()` and `page_routers()` give them either way.
    migrations: folder of Alembic version files for the app's own branch (depends on core).
    permissions: the app's named permissions; role_permissions adds them to global roles;
    resource_roles defines per-resource roles (e.g. channel owner) for the core grant mechanism.
    credential_schemes: bearer-token kinds the app authenticates itself (e.g. chat user tokens).
    route_policy: the default policy (core/policy.py) of every route of the app's routers and pages,
    e.g. security headers its pages all need; a route's own `@route_policy` wins field by field.
    topics: realtime topic patterns with their authorisation; jobs and cron: background work.
    mail_templates: folder of the app's e-mail templates for core mail (`enqueue_mail`).
    services: long-running tasks and child processes, supervised and restarted (core/services.py).
    settings: the app's settings model, read from PENTAD_<NAME>__<FIELD> variables, validated at start
    when the app is enabled, shown by `pentad config show`; read with `platform.app_settings(Model)`.
    The app's `pentad <app> …` click group is not part of the spec: pentad.apps.INSTALLED names it (and the
    settings model), so the command line reaches both without loading the app's routers and models.
    events: the domain events the app emits (core/events.py); subscribers: its handlers of other apps'
    (or its own) events, delivered after commit, at least once.
    ingest: buffered high-volume streams (core/ingest.py), appended through `platform.ingest`.
    health_checks: readiness probes of the app's own dependencies, shown in /readyz (core/health.py).
    queries: reads the app answers for other apps (core/queries.py), asked with `context.query(...)`.
    resources: per-process values (clients, readers, registries) opened once in every process and closed
    at shutdown (core/resources.py), got with `context.resource(SPEC)`.
    partitioned_tables: tables split by time (core/db/partitions.py) whose periods the core cron job
    `core.partitions_maintain` makes ahead and drops when expired.
    """

    name: str
    title: str
    description: str = ""
    routers: Routers = ()
    pages: Routers = ()
    migrations: Path | None = None
    permissions: Sequence[Permission] = ()
    role_permissions: Mapping[str, Sequence[Permission]] = field(default_factory=dict)
    resource_roles: Mapping[str, Mapping[str, Sequence[Permission]]] = field(default_factory=dict)
    topics: Sequence[TopicSpec] = ()
    jobs: Sequence[JobSpec] = ()
    cron: Sequence[CronSpec] = ()
    credential_schemes: Sequence[CredentialScheme] = ()
    route_policy: RoutePolicy | None = None
    home_path: str | None = None
    static_dir: Path | None = None
    mail_templates: Path | None = None
    services: Sequence[ServiceSpec] = ()
    settings: type[BaseModel] | None = None
    events: Sequence[DomainEvent[Any]] = ()
    subscribers: Sequence[EventSubscriber] = ()
    ingest: Sequence[IngestStream] = ()
    health_checks: Sequence[HealthCheck] = ()
    resources: Sequence[ResourceSpec[Any]] = ()
    queries: Sequence[QuerySpec] = ()
    partitioned_tables: Sequence[PartitionedTable] = ()

    def api_routers(self) -> tuple[APIRouter, ...]:
        """The REST routers (importing them now when `routers` is a function)."""
        return _resolve(self.routers)

    def page_routers(self) -> tuple[APIRouter, ...]:
        """The page routers (importing them now when `pages` is a function)."""
        return _resolve(self.pages)


def _resolve(routers: Routers) -> tuple[APIRouter, ...]:
    return tuple(routers() if callable(routers) else routers)
