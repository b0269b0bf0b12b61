"""Who acts, where: what every panel action takes."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.access import ServerAccess, server_access
from pentad.apps.panel.permissions import PANEL_ADMIN
from pentad.apps.panel.settings import PanelSettings
from pentad.core.audit import Actor
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.platform import Platform


class PanelContext:
    """One request's (or command's, or job's) caller with its session and platform. It holds no rules: those
    are the action modules' functions, which take it as their first argument. `principal` None is the
    command line (or the panel itself), acting as the system with every right."""

    __slots__ = ("audit_actor", "platform", "principal", "session", "settings")

    def __init__(
        self, session: AsyncSession, platform: Platform, principal: Principal | None, audit_actor: Actor
    ) -> None:
        self.session = session
        self.platform = platform
        self.principal = principal
        self.audit_actor = audit_actor
        self.settings = platform.app_settings(PanelSettings)

    @property
    def is_admin(self) -> bool:
        return self.principal is None or self.principal.has(PANEL_ADMIN)

    @property
    def user_id(self) -> uuid.UUID | None:
        """The acting account, if a person acts."""
        return self.principal.id if self.principal is not None and self.principal.is_user else None

    async def access(self, server_id: uuid.UUID, permission: Permission | None = None) -> ServerAccess:
        """The server if the caller may see it (and holds `permission` on it, when given)."""
        return await server_access(self.session, self.platform, self.principal, server_id, permission)
