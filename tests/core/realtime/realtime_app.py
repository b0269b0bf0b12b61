"""The realtime tests' app: topics whose authorisation checks a real per-room grant.

Also importable as an installed app (`APP`), so `pentad serve` subprocesses can run it."""

from __future__ import annotations

from pydantic import BaseModel

from pentad.core.apps import AppSpec
from pentad.core.auth.permissions import Permission
from pentad.core.auth.service import AuthService
from pentad.core.realtime.topics import TopicAccess, TopicSpec

ROOM_READ = Permission("rtest.rooms.read", "Follow a test room.")
RTEST_USE = Permission("rtest.use", "Use the realtime test app (every member holds it).")


async def may_read_room(access: TopicAccess) -> bool:
    service = AuthService(access.session, access.platform)
    return await service.can(access.principal, ROOM_READ, "room", access.params["room_id"])


class Note(BaseModel):
    """The payload the tests publish."""

    text: str


ROOM_TOPIC = TopicSpec(
    "test.room.{room_id}", may_read_room, history_size=2000, presence=True, requires=RTEST_USE
)
TYPING_TOPIC = TopicSpec(
    "test.typing.{room_id}", may_read_room, history_size=0, client_publish=True, requires=RTEST_USE
)

APP = AppSpec(
    name="rtest",
    title="Realtime test",
    permissions=[ROOM_READ, RTEST_USE],
    role_permissions={"member": [RTEST_USE]},
    resource_roles={"room": {"member": [ROOM_READ]}},
    topics=[ROOM_TOPIC, TYPING_TOPIC],
)
