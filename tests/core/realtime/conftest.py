"""Fixtures for realtime tests: a test app with topics whose authorisation checks real grants, live
servers (uvicorn in this process, or `pentad serve` subprocesses), and Redis servers of our own.

Live servers need a database many connections can use at once, so these tests use their own migrated
SQLite file (they run once, not once per database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from pentad.app import create_app
from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.auth import tokens
from pentad.core.auth.models import User
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade_async
from pentad.core.platform import Platform
from pentad.core.realtime.wsserver import SERVE_PROTOCOL
from tests.conftest import make_settings
from tests.core.realtime.realtime_app import APP
from tests.databases import REQUIRE_SERVICES
from tests.factories import DEFAULT_PASSWORD, TEST_CRYPTO_KEYS, TEST_SECRET_KEY, create_user, free_port
from tests.servers import STARTUP_TIMEOUT_SECONDS

WAIT = 15.0
"""Upper bound of every wait in these tests; nothing should come near it."""

TEST_APP = APP


@pytest.fixture(scope="session")
async def realtime_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('realtime') / 'pentad.db'}"
    await upgrade_async(url)
    return url


def realtime_settings(data_dir: Path, database_url: str, **realtime: Any) -> Settings:
    return make_settings(
        data_dir,
        database_url,
        realtime=realtime,
        jobs={"in_process_worker": False},
        ratelimit={"enabled": False},
    )


@dataclass
class LiveServer:
    platform: Platform
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def live_server(
    settings: Settings, apps: list[AppSpec] | None = None, ws: str = SERVE_PROTOCOL
) -> AsyncIterator[LiveServer]:
    """The whole app served by uvicorn on a free loopback port, in this event loop, with the WebSocket
    protocol `pentad serve` uses (the hub writes pre-encoded frames), or `ws` ("auto": uvicorn's own)."""
    app = create_app(settings, apps=[TEST_APP] if apps is None else apps)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws=ws)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield LiveServer(app.state.platform, port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT):
            await asyncio.wait([task])


@pytest.fixture
async def server(tmp_path: Path, realtime_database_url: str) -> AsyncIterator[LiveServer]:
    settings = realtime_settings(tmp_path, realtime_database_url, heartbeat_interval=1.0)
    async with live_server(settings) as running:
        yield running


# ------------------------------------------------------------------ people and credentials


async def grant_room(platform: Platform, user: User, room_id: str) -> None:
    async with platform.database.transaction() as session:
        await AuthService(session, platform).grant(user.id, "room", room_id, "member", actor=audit.SYSTEM)


async def room_member(platform: Platform, *rooms: str) -> User:
    user = await create_user(platform)
    for room in rooms:
        await grant_room(platform, user, room)
    return user


async def access_token(platform: Platform, user: User, ttl: int | None = None) -> str:
    """A real access token of a new API session; `ttl` makes a shorter-lived one for the same session."""
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        pair = await service.start_api_session(
            await service.get_user(user.id), audit.SYSTEM, "tests", mfa=False
        )
    if ttl is None:
        return pair.access_token
    token, _ = tokens.issue_jwt(
        platform.signing_secret,
        issuer=platform.settings.auth.issuer,
        audience=tokens.ACCESS_AUDIENCE,
        subject=str(user.id),
        ttl=ttl,
        sid=str(pair.session_id),
    )
    return token


# ------------------------------------------------------------------ raw protocol helpers


class Peer:
    """A raw WebSocket client speaking the protocol frame by frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = iter(range(1, 1_000_000))
        self._backlog: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def recv(self) -> dict[str, Any]:
        if self._backlog:
            return self._backlog.pop(0)
        async with asyncio.timeout(WAIT):
            frame: dict[str, Any] = orjson.loads(await self.ws.recv())
        return frame

    async def recv_op(self, *ops: str) -> dict[str, Any]:
        """The next frame with one of `ops`, answering pings and skipping presence changes not asked for."""
        while True:
            frame = await self.recv()
            if frame["op"] in ops:
                return frame
            if frame["op"] == "ping":
                await self.send({"op": "pong"})
            else:
                assert frame["op"] in ("join", "leave"), frame

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its acknowledgement; other frames read meanwhile are kept for recv."""
        request_id = next(self._ids)
        await self.send({"op": op, "id": request_id, **fields})
        skipped = []
        while True:
            frame = await self.recv()
            if frame["op"] == "ack":
                assert frame["id"] == request_id, frame
                self._backlog[:0] = skipped
                return frame
            skipped.append(frame)

    async def closed_with(self) -> int:
        """Read until the server closes the socket; its close code."""
        async with asyncio.timeout(WAIT):
            with contextlib.suppress(Exception):
                while True:
                    await self.ws.recv()
        assert self.ws.close_code is not None
        return self.ws.close_code


@asynccontextmanager
async def peer(server: LiveServer, token: str | None = None, **options: Any) -> AsyncIterator[Peer]:
    """A raw client; authenticated (and checked) when `token` is given."""
    async with connect(server.ws_url, open_timeout=WAIT, **options) as ws:
        client = Peer(ws)
        if token is not None:
            ack = await client.request("auth", token=token)
            assert ack["ok"], ack
        yield client


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# ------------------------------------------------------------------ processes of our own


class RedisProcess:
    """A redis-server of our own on a spare port, without persistence: a restart loses everything."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if REQUIRE_SERVICES:
                pytest.fail("redis-server is required (PENTAD_TEST_REQUIRE_SERVICES=1) but not installed")
            pytest.skip("redis-server is not installed")
        self.process = await asyncio.create_subprocess_exec(
            *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_until_listening(self.port)

    async def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            async with asyncio.timeout(WAIT):
                await self.process.wait()
            self.process = None


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    await redis.start()
    try:
        yield redis
    finally:
        await redis.kill()


async def wait_until_listening(port: int, seconds: float = WAIT) -> None:
    async with asyncio.timeout(seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


class ServeProcess:
    """`pentad serve` in a subprocess, with the test app enabled through PENTAD_APPS."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "PENTAD_SERVER__PORT": str(self.port)}
        self.process: asyncio.subprocess.Process | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.core.realtime.serve_test_app"),
            env=self.env,
            cwd=Path(__file__).parents[3],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_until_listening(self.port, STARTUP_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(WAIT):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            self.process = None


def serve_environment(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    keep = {name: value for name, value in os.environ.items() if not name.startswith("PENTAD_")}
    return {
        **keep,
        "PENTAD_ENVIRONMENT": "test",
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": database_url,
        "PENTAD_AUTH__SECRET_KEY": TEST_SECRET_KEY,
        "PENTAD_CRYPTO__KEYS": TEST_CRYPTO_KEYS,
        "PENTAD_JOBS__IN_PROCESS_WORKER": "false",
        "PENTAD_RATELIMIT__ENABLED": "false",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_APPS": "rtest",
        "PENTAD_ADMIN__EMAIL": f"admin-{uuid.uuid4().hex[:8]}@example.com",
        "PENTAD_ADMIN__PASSWORD": DEFAULT_PASSWORD,
        **extra,
    }


async def ready_status(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(url + "/readyz")).status_code


async def wait_ready_status(url: str, status: int) -> None:
    """Until GET /readyz answers `status`."""
    async with asyncio.timeout(WAIT):
        while True:
            if await ready_status(url) == status:
                return
            await asyncio.sleep(0.05)
