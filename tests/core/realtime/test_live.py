"""Apps' own long-lived routes (core/realtime/live.py, core/auth/dependencies.py): a WebSocket route and a
Server-Sent Events stream get a principal like any route, a database session per unit of work, and end
when the credentials do; route policy applies to WebSocket routes too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, Depends, WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pentad.app import create_app
from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import require
from pentad.core.auth.models import User
from pentad.core.auth.service import AuthService
from pentad.core.realtime.live import AppSocket, SocketCloseCode
from tests.conftest import make_settings
from tests.core.realtime.conftest import (
    TEST_APP,
    WAIT,
    LiveServer,
    access_token,
    live_server,
    realtime_settings,
    room_member,
)
from tests.core.realtime.live_app import APP as LIVE_APP
from tests.factories import issue_api_key

APPS = [TEST_APP, LIVE_APP]


@contextlib.asynccontextmanager
async def running(tmp_path: Path, database_url: str, **realtime: Any) -> AsyncIterator[LiveServer]:
    async with live_server(realtime_settings(tmp_path, database_url, **realtime), apps=APPS) as server:
        yield server


def echo_url(server: LiveServer) -> str:
    return f"ws://127.0.0.1:{server.port}/api/rtlive/echo"


async def ask(ws: ClientConnection, room: str) -> dict[str, Any]:
    await ws.send(room)
    async with asyncio.timeout(WAIT):
        answer: dict[str, Any] = orjson.loads(await ws.recv())
    return answer


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


async def revoke_sessions(server: LiveServer, user: User) -> None:
    platform = server.platform
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        for auth_session in await service.list_sessions(user.id):
            await service.revoke_session(user.id, auth_session.id, audit.SYSTEM)


async def test_a_socket_authenticates_by_header_subprotocol_or_first_frame(
    tmp_path: Path, realtime_database_url: str
) -> None:
    async with running(tmp_path, realtime_database_url) as server:
        platform = server.platform
        user = await room_member(platform, "r1")
        token = await access_token(platform, user)
        expected = {"echo": "r1", "by": str(user.id), "may_read": True}

        header = {"Authorization": f"Bearer {token}"}
        async with connect(echo_url(server), additional_headers=header, open_timeout=WAIT) as ws:
            assert await ask(ws, "r1") == expected
            # Each message has its own transaction, so it sees what changed since the last one.
            assert await ask(ws, "r2") == {**expected, "echo": "r2", "may_read": False}
            async with platform.database.transaction() as session:
                await AuthService(session, platform).grant(
                    user.id, "room", "r2", "member", actor=audit.SYSTEM
                )
            assert await ask(ws, "r2") == {**expected, "echo": "r2", "may_read": True}

        offered = ["pentad.bearer", token]
        async with connect(echo_url(server), subprotocols=offered, open_timeout=WAIT) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "pentad.bearer"
            assert await ask(ws, "r1") == expected

        async with connect(echo_url(server), open_timeout=WAIT) as ws:
            await ws.send(orjson.dumps({"op": "auth", "token": token}).decode())
            assert await ask(ws, "r1") == expected


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ("none", SocketCloseCode.UNAUTHORIZED),
        ("first frame not auth", SocketCloseCode.UNAUTHORIZED),
        ("bad token", SocketCloseCode.UNAUTHORIZED),
        ("token in the query", SocketCloseCode.UNAUTHORIZED),
        ("key without the route's scope", SocketCloseCode.FORBIDDEN),
    ],
)
async def test_a_socket_without_acceptable_credentials_is_closed(
    tmp_path: Path, realtime_database_url: str, credentials: str, code: int
) -> None:
    async with running(tmp_path, realtime_database_url, auth_timeout=0.5) as server:
        user = await room_member(server.platform, "r1")
        url, headers = echo_url(server), {}
        if credentials == "bad token":
            headers = {"Authorization": "Bearer pak_not-a-key"}
        elif credentials == "token in the query":
            url += f"?token={await access_token(server.platform, user)}"
        elif credentials == "key without the route's scope":
            key = await issue_api_key(server.platform, user, scopes=("core.api_keys.own",))
            headers = {"Authorization": f"Bearer {key}"}
        async with connect(url, additional_headers=headers, open_timeout=WAIT) as ws:
            if credentials == "first frame not auth":
                await ws.send("r1")
            assert (await closed_with(ws))[0] == code


async def test_a_client_that_leaves_before_authenticating_is_no_error(
    tmp_path: Path, realtime_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, realtime_database_url, auth_timeout=0.5) as server:
        async with connect(echo_url(server), open_timeout=WAIT):
            pass
        await asyncio.sleep(1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_revoking_the_credentials_closes_an_open_socket(
    tmp_path: Path, realtime_database_url: str
) -> None:
    # Revalidation would take an hour: only the recheck the revocation sends can close the socket.
    async with running(tmp_path, realtime_database_url, revalidate_interval=3600) as server:
        user = await room_member(server.platform, "r1")
        header = {"Authorization": f"Bearer {await access_token(server.platform, user)}"}
        async with connect(echo_url(server), additional_headers=header, open_timeout=WAIT) as ws:
            assert (await ask(ws, "r1"))["may_read"] is True
            await revoke_sessions(server, user)
            assert await closed_with(ws) == (SocketCloseCode.UNAUTHORIZED, "credentials revoked")
        assert server.platform.hub.live_credentials == set()


async def test_an_expiring_token_closes_its_socket(tmp_path: Path, realtime_database_url: str) -> None:
    async with running(tmp_path, realtime_database_url, heartbeat_interval=0.2) as server:
        user = await room_member(server.platform, "r1")
        token = await access_token(server.platform, user, ttl=3)
        async with connect(echo_url(server), subprotocols=["pentad.bearer", token]) as ws:  # type: ignore[list-item]
            assert (await ask(ws, "r1"))["may_read"] is True
            assert await closed_with(ws) == (SocketCloseCode.UNAUTHORIZED, "credentials expired")


async def read_events(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    events = []
    async for line in lines:
        if line.startswith("data: "):
            events.append(orjson.loads(line.removeprefix("data: ")))
            if len(events) == count:
                break
    return events


async def test_a_stream_runs_until_its_credentials_are_revoked(
    tmp_path: Path, realtime_database_url: str
) -> None:
    async with running(tmp_path, realtime_database_url, revalidate_interval=3600) as server:
        user = await room_member(server.platform, "r1")
        token = await access_token(server.platform, user)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=WAIT) as client:
            assert (await client.get("/api/rtlive/ticks", params={"room": "r1"})).status_code == 401
            key = await issue_api_key(server.platform, user, scopes=("core.api_keys.own",))
            refused = await client.get(
                "/api/rtlive/ticks", params={"room": "r1"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert refused.status_code == 403

            headers = {"Authorization": f"Bearer {token}"}
            async with client.stream(
                "GET", "/api/rtlive/ticks", params={"room": "r1"}, headers=headers
            ) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()
                assert await read_events(lines, 3) == [{"may_read": True}] * 3
                await revoke_sessions(server, user)
                async with asyncio.timeout(WAIT):
                    rest = [line async for line in lines]  # the server ends the response
                assert len([line for line in rest if line.startswith("data: ")]) < 5
        assert server.platform.hub.live_credentials == set()


async def test_a_socket_route_spends_its_rate_limit_class_per_handshake(
    tmp_path: Path, realtime_database_url: str
) -> None:
    settings = make_settings(tmp_path, realtime_database_url, jobs={"in_process_worker": False})
    async with live_server(settings, apps=APPS) as server:
        url = f"ws://127.0.0.1:{server.port}/api/rtlive/knock"
        for _ in range(2):
            async with connect(url, open_timeout=WAIT) as ws:
                assert await ws.recv() == "welcome"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, open_timeout=WAIT):
                pass
        assert refused.value.response.status_code == 429


def test_a_socket_route_that_is_neither_guarded_nor_public_stops_the_build(tmp_path: Path) -> None:
    guarded, unguarded = APIRouter(), APIRouter()

    @guarded.websocket("/api/guarded")
    async def guarded_socket(socket: Annotated[AppSocket, Depends(require().socket)]) -> None:
        await socket.close()

    @unguarded.websocket("/api/open-door")
    async def open_door(websocket: WebSocket) -> None:
        await websocket.accept()

    settings = make_settings(tmp_path, "sqlite+aiosqlite://")
    create_app(settings, apps=[AppSpec(name="doors", title="Doors", routers=[guarded])])
    with pytest.raises(TypeError, match="/api/open-door needs credentials"):
        create_app(settings, apps=[AppSpec(name="doors", title="Doors", routers=[guarded, unguarded])])
