"""A test app with long-lived routes of its own (core/realtime/live.py): an authenticated echo WebSocket
whose every message reads the database in a transaction of its own, a rate-limited public WebSocket, and
a Server-Sent Events stream that stops when the caller's credentials end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import require
from pentad.core.auth.service import AuthService
from pentad.core.policy import RateLimitClass, route_policy
from pentad.core.realtime.live import AppSocket, LiveCredentials
from tests.core.realtime.realtime_app import ROOM_READ, RTEST_USE

HANDSHAKES = RateLimitClass("rtlive_handshakes", "2/minute")

router = APIRouter(prefix="/api/rtlive")


@router.websocket("/echo")
async def echo(socket: Annotated[AppSocket, Depends(require(RTEST_USE).socket)]) -> None:
    """Answers each text frame (a room id) with it, who sent it, and whether they may read that room now."""
    try:
        while True:
            room = await socket.receive_text()
            async with socket.transaction(writes=False) as session:
                service = AuthService(session, socket.live.platform)
                may_read = await service.can(socket.principal, ROOM_READ, "room", room)
            await socket.send_json({"echo": room, "by": str(socket.principal.id), "may_read": may_read})
    except WebSocketDisconnect:
        return


@router.websocket("/knock")
@route_policy(public="a test socket anyone may open", rate_limit=HANDSHAKES)
async def knock(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


@router.get("/ticks")
async def ticks(
    live: Annotated[LiveCredentials, Depends(require(RTEST_USE).live)], room: str
) -> StreamingResponse:
    """One Server-Sent Event every 50 ms telling whether the caller may read `room`, until they may not
    call this route any more."""
    platform = live.platform

    async def events() -> AsyncIterator[bytes]:
        number = 0
        while True:
            number += 1
            async with platform.database.transaction(writes=False) as session:
                may_read = await AuthService(session, platform).can(live.principal, ROOM_READ, "room", room)
            yield b"id: %d\ndata: %s\n\n" % (number, orjson.dumps({"may_read": may_read}))
            await asyncio.sleep(0.05)

    return StreamingResponse(live.stream(events()), media_type="text/event-stream")


APP = AppSpec(name="rtlive", title="Live routes test", routers=[router])
