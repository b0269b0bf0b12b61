"""SiteRegistry: every site's ingest configuration in memory, so the ingest route reads no database.

Each process holds one registry (a per-process app resource, `SITE_REGISTRY`). It loads all sites once,
then checks a one-row signature of the sites table (count and sum of `version`, bumped on every change)
at most every PENTAD_ANALYTICS__REGISTRY_POLL seconds, in the background: the request that notices the
interval passed does not wait for it. A change made in this process (`invalidate()` after the commit) is
seen at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select

from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core.context import AppContext, ResourceSpec

logger = structlog.get_logger("pentad.analytics.registry")


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """What the ingest route needs to know of a site."""

    id: uuid.UUID
    key: int
    domain: str
    hosts: frozenset[str]
    timezone: str
    excluded: re.Pattern[str] | None
    version: int

    def allows_host(self, host: str) -> bool:
        """Pages of the domain, its subdomains and the extra hosts may report to the site."""
        host = host.lower().rstrip(".")
        return host == self.domain or host.endswith("." + self.domain) or host in self.hosts

    def excludes(self, path: str) -> bool:
        return self.excluded is not None and self.excluded.fullmatch(path) is not None


def normalise_domain(value: str) -> str:
    return value.strip().lower().rstrip(".")


def compile_excluded(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """`/admin/*`-style patterns (`*` any characters) as one expression; None when there are none."""
    parts = [fnmatch.translate(pattern).removeprefix("(?s:").removesuffix(")\\Z") for pattern in patterns]
    return re.compile("|".join(f"(?:{part})" for part in parts), re.S) if parts else None


def site_config(site: AnalyticsSite) -> SiteConfig:
    return SiteConfig(
        id=site.id,
        key=site.key,
        domain=site.domain,
        hosts=frozenset(normalise_domain(host) for host in site.hosts),
        timezone=site.timezone,
        excluded=compile_excluded(site.excluded_paths),
        version=site.version,
    )


class SiteRegistry:
    """Domain → SiteConfig for this process."""

    def __init__(self, context: AppContext, poll: float) -> None:
        self._context = context
        self._poll = poll
        self._by_domain: dict[str, SiteConfig] = {}
        self._signature: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._stale = True
        self._lock = asyncio.Lock()
        self._check: asyncio.Task[None] | None = None

    async def get(self, domain: str) -> SiteConfig | None:
        """The site that `domain` (or `www.` + it) names; None for an unknown one."""
        if self._stale:
            await self.reload()
        elif time.monotonic() - self._checked_at >= self._poll and self._check is None:
            self._checked_at = time.monotonic()
            self._check = asyncio.get_running_loop().create_task(self._check_signature())
        domain = normalise_domain(domain)
        found = self._by_domain.get(domain)
        if found is None and domain.startswith("www."):
            found = self._by_domain.get(domain[4:])
        return found

    def invalidate(self) -> None:
        """A site changed in this process: the next lookup reloads (call after the commit)."""
        self._stale = True

    async def reload(self) -> None:
        async with self._lock:
            if not self._stale:
                return
            async with self._context.database.transaction(writes=False) as session:
                sites = (await session.scalars(select(AnalyticsSite))).all()
                signature = await self._read_signature(session)
            self._by_domain = {site.domain: site_config(site) for site in sites}
            self._signature = signature
            self._checked_at = time.monotonic()
            self._stale = False

    async def _read_signature(self, session: Any) -> tuple[int, int]:
        row = (
            await session.execute(select(func.count(), func.coalesce(func.sum(AnalyticsSite.version), 0)))
        ).one()
        return int(row[0]), int(row[1])

    async def check(self) -> bool:
        """Read the sites' signature now and reload when it changed (another process changed a site);
        whether it did."""
        async with self._context.database.transaction(writes=False) as session:
            signature = await self._read_signature(session)
        self._checked_at = time.monotonic()
        if signature == self._signature:
            return False
        self._stale = True
        await self.reload()
        return True

    async def _check_signature(self) -> None:
        try:
            await self.check()
        except Exception:
            logger.warning("analytics_registry_check_failed", exc_info=True)
        finally:
            self._check = None

    async def close(self) -> None:
        if self._check is not None:
            self._check.cancel()
            with contextlib.suppress(BaseException):
                await self._check


async def open_registry(context: AppContext) -> SiteRegistry:
    return SiteRegistry(context, context.app_settings(AnalyticsSettings).registry_poll)


async def close_registry(registry: SiteRegistry) -> None:
    await registry.close()


SITE_REGISTRY: ResourceSpec[SiteRegistry] = ResourceSpec("analytics.sites", open_registry, close_registry)
"""This process's registry (AppSpec.resources): `context.resource(SITE_REGISTRY)`."""


def site_registry(context: AppContext) -> SiteRegistry:
    return context.resource(SITE_REGISTRY)
