"""Sites: create, change, delete, share. Every change bumps the site's `version` (the registries of all
processes reload) and tells this process's registry after the commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import grants, repository, retention, store
from pentad.apps.analytics.access import access_site, site_permissions
from pentad.apps.analytics.exceptions import DomainTaken, SiteNotFound
from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.permissions import ANALYTICS_ADMIN, SITE_MANAGE
from pentad.apps.analytics.registry import site_registry
from pentad.apps.analytics.schemas import GrantCreate, GrantRead, SiteCreate, SiteRead, SiteUpdate
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth.principal import Principal
from pentad.core.db.hooks import on_commit
from pentad.core.platform import Platform


def site_read(site: AnalyticsSite, permissions: frozenset[str]) -> SiteRead:
    read = SiteRead.model_validate(site)
    read.can_manage = SITE_MANAGE.key in permissions
    return read


@dataclass
class SiteService:
    session: AsyncSession
    platform: Platform
    principal: Principal | None
    """None: the command line (every site, as the system)."""
    actor: Actor

    def _changed(self) -> None:
        registry = site_registry(self.platform)

        async def reload() -> None:
            registry.invalidate()

        on_commit(self.session, reload)

    async def create(self, data: SiteCreate, owner: uuid.UUID | None) -> AnalyticsSite:
        """A new site; `owner` (the caller, or an account named on the command line) gets its owner role."""
        if await repository.get_site_by_domain(self.session, data.domain) is not None:
            raise DomainTaken()
        site = AnalyticsSite(
            key=await repository.next_site_key(self.session),
            domain=data.domain,
            name=data.name or data.domain,
            timezone=data.timezone,
            hosts=data.hosts,
            excluded_paths=data.excluded_paths,
            version=1,
            created_by=owner,
        )
        self.session.add(site)
        try:
            async with self.session.begin_nested():
                await self.session.flush()
        except IntegrityError:
            raise DomainTaken() from None
        if owner is not None:
            await grants.grant_site_role(self.session, self.platform, owner, site.id, "owner", self.actor)
        audit.record(self.session, self.actor, "analytics.site.create", resource_type="analytics.site",
                     resource_id=str(site.id), domain=site.domain)  # fmt: skip
        self._changed()
        return site

    async def _managed(self, site_id: uuid.UUID) -> AnalyticsSite:
        if self.principal is None:
            site = await repository.get_site(self.session, site_id)
            if site is None:
                raise SiteNotFound()
            return site
        return (await access_site(self.session, self.platform, self.principal, site_id, SITE_MANAGE)).site

    async def update(self, site_id: uuid.UUID, data: SiteUpdate) -> AnalyticsSite:
        site = await self._managed(site_id)
        for name, value in data.model_dump(exclude_unset=True).items():
            if name == "retention" and value is not None:
                default = self.platform.app_settings(AnalyticsSettings).default_tiers
                value = retention.merge_checked(site.retention, value, default)
            if value is not None:
                setattr(site, name, value)
        site.version += 1
        await self.session.flush()
        audit.record(self.session, self.actor, "analytics.site.update", resource_type="analytics.site",
                     resource_id=str(site.id))  # fmt: skip
        self._changed()
        return site

    async def delete(self, site_id: uuid.UUID) -> None:
        site = await self._managed(site_id)
        await repository.delete_site_data(self.session, site.key)
        await store.delete_site_events(self.platform, site.key)
        await grants.forget_site(self.session, self.platform, site.id, self.actor)
        await self.session.delete(site)
        audit.record(self.session, self.actor, "analytics.site.delete", resource_type="analytics.site",
                     resource_id=str(site_id), domain=site.domain)  # fmt: skip
        self._changed()

    async def share(self, site_id: uuid.UUID, data: GrantCreate) -> uuid.UUID:
        site = await self._managed(site_id)
        user_id = await grants.user_id_by_email(self.session, self.platform, data.email)
        await grants.revoke_site_roles(self.session, self.platform, user_id, site.id, self.actor)
        await grants.grant_site_role(self.session, self.platform, user_id, site.id, data.role, self.actor)
        return user_id

    async def unshare(self, site_id: uuid.UUID, user_id: uuid.UUID) -> None:
        site = await self._managed(site_id)
        if await grants.revoke_site_roles(self.session, self.platform, user_id, site.id, self.actor) == 0:
            raise SiteNotFound()

    async def holders(self, site_id: uuid.UUID) -> list[GrantRead]:
        site = await self._managed(site_id)
        found = await grants.site_holders(self.session, site.id)
        return [GrantRead(user_id=h.user_id, role="owner" if h.role == "owner" else "viewer") for h in found]

    async def list(self) -> list[SiteRead]:
        """The sites the caller may read (all of them for analytics admins and the command line)."""
        if self.principal is None or self.principal.has(ANALYTICS_ADMIN):
            sites = await repository.list_sites(self.session)
        elif self.principal.is_user:
            readable = await grants.readable_site_ids(self.session, self.platform, self.principal.id)
            sites = await repository.list_sites(self.session, readable)
        else:
            sites = []
        result = []
        for site in sites:
            if self.principal is None:
                result.append(site_read(site, frozenset({SITE_MANAGE.key})))
                continue
            permissions = await site_permissions(self.session, self.platform, self.principal, site.id)
            if permissions:
                result.append(site_read(site, permissions))
        return result
