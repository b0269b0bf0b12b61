"""Who acts, where: what every market action takes."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.settings import MarketSettings
from pentad.core.audit import Actor
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext


class MarketContext:
    """One request's (or job's) caller with its session and the platform. It holds no rules: those are the
    action modules' functions, which take it as their first argument. `principal` None is the system (a job
    or the command line)."""

    __slots__ = ("audit_actor", "platform", "principal", "session", "settings")

    def __init__(
        self, session: AsyncSession, platform: AppContext, principal: Principal | None, audit_actor: Actor
    ) -> None:
        self.session = session
        self.platform = platform
        self.principal = principal
        self.audit_actor = audit_actor
        self.settings = platform.app_settings(MarketSettings)

    @property
    def user_id(self) -> uuid.UUID | None:
        """The acting account, if a person acts."""
        return self.principal.id if self.principal is not None and self.principal.is_user else None
