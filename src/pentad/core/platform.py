"""The running platform's shared services, built once per process and injected into requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from starlette.requests import HTTPConnection

from pentad.core.apps import AppSpec
from pentad.core.auth.permissions import PermissionRegistry
from pentad.core.config import Settings
from pentad.core.crypto import KeyRing, load_keyring, load_signing_secret
from pentad.core.db.engine import Database
from pentad.core.mail import Mailer
from pentad.core.metrics import DatabasePoolCollector, Metrics
from pentad.core.ratelimit import RateLimiter


@dataclass
class Platform:
    settings: Settings
    database: Database
    keyring: KeyRing
    signing_secret: bytes
    permissions: PermissionRegistry
    limiter: RateLimiter
    mailer: Mailer
    metrics: Metrics
    apps: list[AppSpec] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, apps: list[AppSpec], *, database: Database | None = None) -> Platform:
        permissions = PermissionRegistry()
        for spec in apps:
            permissions.add_permissions(spec.permissions)
            for role, granted in spec.role_permissions.items():
                permissions.add_to_role(role, granted)
            for resource_type, roles in spec.resource_roles.items():
                permissions.add_resource_roles(resource_type, roles)
        database = database or Database.from_settings(settings.database)
        metrics = Metrics.from_environment()
        metrics.add_collector(DatabasePoolCollector(database.engine))
        return cls(
            settings=settings,
            database=database,
            keyring=load_keyring(settings),
            signing_secret=load_signing_secret(settings),
            permissions=permissions,
            limiter=RateLimiter(settings.ratelimit),
            mailer=Mailer(settings.mail),
            metrics=metrics,
            apps=apps,
        )

    async def close(self) -> None:
        await self.mailer.drain()
        await self.limiter.close()
        await self.database.dispose()


def get_platform(connection: HTTPConnection) -> Platform:
    platform: Platform = connection.app.state.platform
    return platform


def platform_dependency(request: Request) -> Platform:
    return get_platform(request)
