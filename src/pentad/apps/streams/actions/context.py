"""Who acts, where: what every streams action takes."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams import repository
from pentad.apps.streams.access import EVERYTHING, CameraAccess, camera_access
from pentad.apps.streams.exceptions import CameraNotFound
from pentad.apps.streams.permissions import CAMERA_VIEW, STREAMS_ADMIN
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.audit import Actor
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.platform import Platform


class StreamsContext:
    """One request's (or command's) caller with its session and platform. It holds no rules: those are the
    action modules' functions, which take it as their first argument. `principal` None is the command line,
    acting as the system on every camera."""

    __slots__ = ("audit_actor", "platform", "principal", "session", "settings")

    def __init__(
        self, session: AsyncSession, platform: Platform, principal: Principal | None, audit_actor: Actor
    ) -> None:
        self.session = session
        self.platform = platform
        self.principal = principal
        self.audit_actor = audit_actor
        self.settings = platform.app_settings(StreamsSettings)

    @property
    def is_admin(self) -> bool:
        return self.principal is None or self.principal.has(STREAMS_ADMIN)

    @property
    def user_id(self) -> uuid.UUID | None:
        """The acting account, if a person acts."""
        return self.principal.id if self.principal is not None and self.principal.is_user else None

    async def access(self, camera_id: uuid.UUID, permission: Permission = CAMERA_VIEW) -> CameraAccess:
        if self.principal is None:
            camera = await repository.get_camera(self.session, camera_id)
            if camera is None:
                raise CameraNotFound()
            return CameraAccess(camera, EVERYTHING, "owner")
        return await camera_access(self.session, self.platform, self.principal, camera_id, permission)
