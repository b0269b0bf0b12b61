"""The running platform's shared services, built once per process and injected into requests.

The Platform is the top of the core (import-linter keeps it there): the apps' callbacks get it only as an
`AppContext` (core/context.py), which it satisfies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from pentad.core.apps import AppSpec
from pentad.core.auth.cache import PrincipalCache, invalidation_url
from pentad.core.auth.permissions import PermissionRegistry
from pentad.core.auth.schemes import CredentialScheme
from pentad.core.cache import Cache, build_cache
from pentad.core.config import AppModel, OutboundSettings, Settings
from pentad.core.context import ResourceSpec
from pentad.core.crypto import KeyRing, load_keyring, load_signing_secret
from pentad.core.db.engine import Database
from pentad.core.db.partitions import maintain_cron, maintain_jobs
from pentad.core.events import EventRegistry, bind_events
from pentad.core.ingest import Ingest
from pentad.core.jobs.worker import JOB_PROGRESS_TOPIC, Jobs
from pentad.core.mail import Mailer, add_template_folder, send_mail_job
from pentad.core.metrics import DatabasePoolCollector, Metrics
from pentad.core.queries import Queries
from pentad.core.ratelimit import RateLimiter
from pentad.core.realtime.hub import Hub
from pentad.core.realtime.publish import bind_sessions
from pentad.core.realtime.relay import Relay, build_relay
from pentad.core.resources import Resources
from pentad.core.services import Services
from pentad.core.storage import Storage, build_storage
from pentad.core.visitors import Visitors
from pentad.core.visitors.jobs import ROTATE_SALTS, ROTATE_SALTS_CRON

T = TypeVar("T")


@dataclass
class Platform:
    settings: Settings
    database: Database
    keyring: KeyRing
    signing_secret: bytes
    permissions: PermissionRegistry
    limiter: RateLimiter
    principals: PrincipalCache
    mailer: Mailer
    metrics: Metrics
    storage: Storage
    cache: Cache
    jobs: Jobs
    hub: Hub
    relay: Relay
    ingest: Ingest
    apps: list[AppSpec] = field(default_factory=list)
    credential_schemes: dict[str, CredentialScheme] = field(default_factory=dict)
    app_config: dict[type[BaseModel], BaseModel] = field(default_factory=dict)
    services: Services = field(init=False)
    resources: Resources = field(init=False)
    queries: Queries = field(init=False)
    visitors: Visitors = field(init=False)

    @classmethod
    def build(
        cls,
        settings: Settings,
        apps: list[AppSpec],
        *,
        installed: Collection[str] = (),
        database: Database | None = None,
    ) -> Platform:
        """The platform of the enabled `apps`. installed: the names of every installed app; a subscriber of
        an event of an installed app that is not enabled is skipped rather than refused (core/events.py)."""
        app_config = {
            spec.settings: settings.app_settings(spec.name, spec.settings) for spec in apps if spec.settings
        }
        permissions = PermissionRegistry()
        for spec in apps:
            permissions.add_permissions(spec.permissions)
            for role, granted in spec.role_permissions.items():
                permissions.add_to_role(role, granted)
            for resource_type, roles in spec.resource_roles.items():
                permissions.add_resource_roles(resource_type, roles)
            if spec.mail_templates is not None:
                add_template_folder(spec.mail_templates)
        database = database or Database.from_settings(settings.database)
        metrics = Metrics.from_environment()
        metrics.add_collector(DatabasePoolCollector(database.engine))
        signing_secret = load_signing_secret(settings)
        topics = [JOB_PROGRESS_TOPIC, *(topic for spec in apps for topic in spec.topics)]
        hub = Hub.build(settings.realtime, metrics, topics)
        bind_sessions(database, hub)
        mailer = Mailer(settings.mail)
        enabled = {spec.name for spec in apps}
        events = EventRegistry(
            ((spec.name, event) for spec in apps for event in spec.events),
            (subscriber for spec in apps for subscriber in spec.subscribers),
            disabled_apps=[name for name in installed if name not in enabled],
        )
        jobs = Jobs.build(
            settings.jobs,
            [
                send_mail_job(mailer),
                ROTATE_SALTS,
                *maintain_jobs(apps),
                *(job for spec in apps for job in spec.jobs),
            ],
            [ROTATE_SALTS_CRON, *maintain_cron(apps), *(entry for spec in apps for entry in spec.cron)],
            events,
            metrics,
        )
        bind_events(database, events)
        platform = cls(
            settings=settings,
            database=database,
            keyring=load_keyring(settings),
            signing_secret=signing_secret,
            permissions=permissions,
            limiter=RateLimiter(settings.ratelimit),
            principals=PrincipalCache.from_settings(settings),
            mailer=mailer,
            metrics=metrics,
            storage=build_storage(settings, signing_secret),
            cache=build_cache(settings.cache),
            jobs=jobs,
            hub=hub,
            relay=build_relay(invalidation_url(settings), workers=settings.server.workers),
            ingest=Ingest(database, settings.data_dir / "ingest", (s for spec in apps for s in spec.ingest)),
            apps=apps,
            credential_schemes={scheme.prefix: scheme for spec in apps for scheme in spec.credential_schemes},
            app_config=app_config,
        )
        platform.ingest.bind(platform)
        platform.queries = Queries(
            ((spec.name, query) for spec in apps for query in spec.queries),
            disabled_apps=[name for name in installed if name not in enabled],
        )
        platform.visitors = Visitors.from_settings(settings, database, platform.keyring)
        platform.resources = Resources(resource for spec in apps for resource in spec.resources)
        platform.services = Services(
            [service for spec in apps for service in spec.services], platform=platform, metrics=metrics
        )
        return platform

    @property
    def base_url(self) -> str:
        return self.settings.server.base_url

    @property
    def token_issuer(self) -> str:
        return self.settings.auth.issuer

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def outbound(self) -> OutboundSettings:
        return self.settings.outbound

    def app_settings(self, model: type[AppModel]) -> AppModel:
        """The validated settings of the enabled app whose `AppSpec.settings` is `model`."""
        found = self.app_config.get(model)
        if not isinstance(found, model):
            raise LookupError(f"no enabled app has the settings {model.__name__}")
        return found

    @overload
    def resource(self, spec: ResourceSpec[T], /) -> T: ...

    @overload
    def resource(self, spec: str, /) -> Any: ...

    def resource(self, spec: ResourceSpec[Any] | str, /) -> Any:
        """The open value of an enabled app's per-process resource (core/resources.py)."""
        return self.resources.get(spec)

    async def query(
        self, session: AsyncSession, name: str, payload: Mapping[str, Any] | BaseModel
    ) -> dict[str, Any]:
        """Another app's answer to the query `name` (core/queries.py)."""
        return await self.queries.run(self, session, name, payload)

    async def open_resources(self) -> None:
        """Open the enabled apps' per-process resources (once; before jobs, services and ingest start)."""
        await self.resources.open(self)

    async def close(self) -> None:
        await self.services.stop()
        await self.jobs.close()
        await self.ingest.close()
        await self.resources.close()
        await self.relay.close()
        await self.hub.close()
        await self.limiter.close()
        await self.principals.close()
        await self.storage.close()
        self.visitors.close()
        await self.cache.close()
        await self.database.dispose()


def get_platform(connection: HTTPConnection) -> Platform:
    platform: Platform = connection.app.state.platform
    return platform
