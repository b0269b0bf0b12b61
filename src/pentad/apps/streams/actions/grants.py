"""Per-camera roles (viewer, operator, owner) held as core grants on `streams.camera:<id>`
(core/auth/grants.py: audited; taking a role forgets the holder's cached principals and re-checks its
realtime connections once it commits)."""

from __future__ import annotations

import uuid

from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.events import GrantChanged, user_topic
from pentad.apps.streams.exceptions import GrantNotFound
from pentad.apps.streams.permissions import CAMERA_MANAGE, CAMERA_RESOURCE, CAMERA_ROLES
from pentad.apps.streams.schemas import GrantCreate, GrantRead
from pentad.core.auth.grants import grant_role, holders, revoke_role
from pentad.core.auth.service import AuthService
from pentad.core.errors import Conflict
from pentad.core.realtime.publish import publish


class OwnerKeepsRole(Conflict):
    code = "camera_owner_role"

    def __init__(self) -> None:
        super().__init__("The camera's owner keeps the owner role; delete the camera instead.")


async def _revoke_all(streams: StreamsContext, user_id: uuid.UUID, camera_id: uuid.UUID) -> int:
    revoked = 0
    for role in CAMERA_ROLES:
        revoked += await revoke_role(
            streams.session,
            streams.platform,
            user_id,
            CAMERA_RESOURCE,
            camera_id,
            role,
            actor=streams.audit_actor,
        )
    return revoked


async def do_grant(streams: StreamsContext, camera_id: uuid.UUID, data: GrantCreate) -> GrantRead:
    """Give the account the role on the camera, replacing the one it had."""
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    user_id = (await AuthService(streams.session, streams.platform).get_user_by_email(data.email)).id
    if user_id == camera.owner_id:
        raise OwnerKeepsRole()
    await _revoke_all(streams, user_id, camera.id)
    await grant_role(
        streams.session,
        streams.platform,
        user_id,
        CAMERA_RESOURCE,
        camera.id,
        data.role,
        actor=streams.audit_actor,
    )
    publish(
        streams.session,
        user_topic(user_id),
        GrantChanged(type="grant.added", camera_id=camera.id, role=data.role),
    )
    return GrantRead(user_id=user_id, role=data.role)


async def do_revoke(streams: StreamsContext, camera_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Take every role on the camera from the account; its subscriptions to the camera end at once."""
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    if user_id == camera.owner_id:
        raise OwnerKeepsRole()
    if await _revoke_all(streams, user_id, camera.id) == 0:
        raise GrantNotFound()
    publish(
        streams.session,
        user_topic(user_id),
        GrantChanged(type="grant.removed", camera_id=camera.id, role=None),
    )


async def list_grants(streams: StreamsContext, camera_id: uuid.UUID) -> list[GrantRead]:
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    found = await holders(streams.session, CAMERA_RESOURCE, camera.id)
    return [GrantRead(user_id=holder.user_id, role=holder.role) for holder in found]
