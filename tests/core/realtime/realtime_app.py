"""The realtime tests' app: topics whose authorisation checks a real per-room grant, and a route that
numbers the notes it publishes in commit order.

Also importable as an installed app (`APP`), so `pentad serve` subprocesses can run it."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import db_session, require
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService
from pentad.core.errors import BadRequest
from pentad.core.realtime.publish import publish
from pentad.core.realtime.topics import TopicAccess, TopicCall, TopicSpec

ROOM_READ = Permission("rtest.rooms.read", "Follow a test room.")
RTEST_USE = Permission("rtest.use", "Use the realtime test app (every member holds it).")


async def may_read_room(access: TopicAccess) -> bool:
    service = AuthService(access.session, access.platform)
    return await service.can(access.principal, ROOM_READ, "room", access.params["room_id"])


class Note(BaseModel):
    """The payload the tests publish."""

    text: str


class Shout(BaseModel):
    """What the `shout` call answers the caller."""

    text: str
    by: str


async def shout(call: TopicCall) -> Shout:
    """Answers the caller with its text in capitals, and tells the room (after the commit)."""
    text = str(call.data.get("text", ""))
    if not text:
        raise BadRequest("Say something.", code="empty")
    publish(call.session, call.topic, Note(text=text.upper()))
    return Shout(text=text.upper(), by=str(call.principal.id))


async def fail(call: TopicCall) -> None:
    raise RuntimeError("a bug in a handler")


async def dawdle(call: TopicCall) -> Note:
    """Answers after `seconds`: a handler slower than the caller's timeout."""
    await asyncio.sleep(float(call.data.get("seconds", 0)))
    return Note(text="late")


ROOM_TOPIC = TopicSpec(
    "test.room.{room_id}",
    may_read_room,
    history_size=2000,
    presence=True,
    calls={"shout": shout, "fail": fail, "dawdle": dawdle},
    requires=RTEST_USE,
)
TYPING_TOPIC = TopicSpec(
    "test.typing.{room_id}", may_read_room, history_size=0, client_publish=True, requires=RTEST_USE
)

router = APIRouter(prefix="/api/rtest", tags=["realtime test"])


@router.post("/rooms/{room_id}/notes", status_code=201)
async def post_note(
    room_id: str,
    session: Annotated[AsyncSession, Depends(db_session)],
    principal: Annotated[Principal, Depends(require(RTEST_USE))],
) -> Note:
    """Publishes a note numbered by how many were stored in the room before it, itself included: as
    writers take turns (SQLite's write lock), the numbers are the commit order."""
    audit.record(session, principal.actor(), "rtest.note", resource_type="room", resource_id=room_id)
    await session.flush()
    stored = select(func.count()).where(audit.AuditEvent.action == "rtest.note")
    note = Note(text=str(await session.scalar(stored.where(audit.AuditEvent.resource_id == room_id))))
    publish(session, f"test.room.{room_id}", note)
    return note


APP = AppSpec(
    name="rtest",
    title="Realtime test",
    permissions=[ROOM_READ, RTEST_USE],
    role_permissions={"member": [RTEST_USE]},
    resource_roles={"room": {"member": [ROOM_READ]}},
    topics=[ROOM_TOPIC, TYPING_TOPIC],
    routers=[router],
)
