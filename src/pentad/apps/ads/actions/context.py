"""Who acts: what every ads action takes as its first argument."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.access import Access, advertiser_access, site_access
from pentad.apps.ads.models import AdsAdvertiser, AdsSite
from pentad.apps.ads.permissions import REPORTS_READ
from pentad.apps.ads.settings import AdsSettings
from pentad.core.audit import Actor
from pentad.core.auth.grants import resource_ids_for
from pentad.core.auth.principal import Principal
from pentad.core.db.hooks import on_commit
from pentad.core.platform import Platform


class AdsContext:
    """One request's (or command's) caller with its session and platform; the rules are the action
    modules' functions."""

    __slots__ = ("audit_actor", "platform", "principal", "session", "settings")

    def __init__(
        self, session: AsyncSession, platform: Platform, principal: Principal, audit_actor: Actor
    ) -> None:
        self.session = session
        self.platform = platform
        self.principal = principal
        self.audit_actor = audit_actor
        self.settings = platform.app_settings(AdsSettings)

    async def advertiser(self, advertiser_id: uuid.UUID) -> Access[AdsAdvertiser]:
        return await advertiser_access(self.session, self.platform, self.principal, advertiser_id)

    async def site(self, site_id: uuid.UUID) -> Access[AdsSite]:
        return await site_access(self.session, self.platform, self.principal, site_id)

    def delete_files_after_commit(self, keys: Sequence[str]) -> None:
        """Delete stored files once the rows pointing at them are gone for good: a rolled-back delete
        keeps its files."""
        if not keys:
            return
        storage, pending = self.platform.storage, list(keys)

        async def delete_files() -> None:
            for key in pending:
                await storage.delete(key)

        on_commit(self.session, delete_files)


async def shared_ids(ads: AdsContext, resource_type: str) -> list[uuid.UUID]:
    """Ids of the resources of `resource_type` the caller may read through core grants."""
    if not ads.principal.is_user:
        return []
    ids = await resource_ids_for(
        ads.session, ads.platform.permissions, ads.principal.id, resource_type, REPORTS_READ
    )
    found = []
    for resource_id in ids:
        try:
            found.append(uuid.UUID(resource_id))
        except ValueError:
            continue  # a grant on an id that was never ours (`pentad user grant` takes any string)
    return found
