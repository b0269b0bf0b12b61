"""SiteRegistry: every site's ingest configuration in memory, so the ingest route reads no database.

Each process holds one registry (a per-process app resource, `SITE_REGISTRY`). It loads all sites once,
then checks a one-row signature of the sites table (count and sum of `version`, bumped on every change)
at most every PENTAD_ANALYTICS__REGISTRY_POLL seconds, in the background: the request that notices the
interval passed does not wait for it. A change made in this process (`invalidate()` after the commit) is
seen at once.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.snapshots import PolledSnapshot


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


class SiteRegistry(PolledSnapshot[dict[str, SiteConfig]]):
    """Domain → SiteConfig for this process."""

    name = "analytics.sites"

    def __init__(self, context: AppContext, poll: float) -> None:
        super().__init__(context, poll, {})

    async def read_signature(self, session: AsyncSession) -> tuple[int, int]:
        row = (
            await session.execute(select(func.count(), func.coalesce(func.sum(AnalyticsSite.version), 0)))
        ).one()
        return int(row[0]), int(row[1])

    async def load(self, session: AsyncSession) -> dict[str, SiteConfig]:
        sites = (await session.scalars(select(AnalyticsSite))).all()
        return {site.domain: site_config(site) for site in sites}

    async def get(self, domain: str) -> SiteConfig | None:
        """The site that `domain` (or `www.` + it) names; None for an unknown one."""
        by_domain = await self.current()
        domain = normalise_domain(domain)
        found = by_domain.get(domain)
        if found is None and domain.startswith("www."):
            found = by_domain.get(domain[4:])
        return found


async def open_registry(context: AppContext) -> SiteRegistry:
    return SiteRegistry(context, context.app_settings(AnalyticsSettings).registry_poll)


async def close_registry(registry: SiteRegistry) -> None:
    await registry.close()


SITE_REGISTRY: ResourceSpec[SiteRegistry] = ResourceSpec("analytics.sites", open_registry, close_registry)
"""This process's registry (AppSpec.resources): `context.resource(SITE_REGISTRY)`."""


def site_registry(context: AppContext) -> SiteRegistry:
    return context.resource(SITE_REGISTRY)
