"""A real `pentad serve` with the chat app, on a database of its own, that a test can kill and restart on
the same port: what the SDK tests and the chaos test run against."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from pentad.apps.chat import schemas
from pentad.apps.chat.spec import APP
from pentad.apps.chat.tenancy import TenantService
from pentad.core import audit
from pentad.core.db.migrate import upgrade_async
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, TEST_CRYPTO_KEYS, TEST_SECRET_KEY, free_port
from tests.servers import HOST, STARTUP_TIMEOUT_SECONDS, VENV_BIN, log_tail


async def create_tenant_key(data_dir: Path, database_url: str, slug: str) -> str:
    """Migrate the database and create a chat tenant in it; its server key (`pck_…`)."""
    await upgrade_async(database_url, [APP])
    platform = Platform.build(make_settings(data_dir, database_url, apps=["chat"]), [APP])
    try:
        async with platform.database.transaction() as session:
            service = TenantService(session, platform, audit.SYSTEM)
            tenant = await service.create_tenant(schemas.TenantCreate(slug=slug, name=slug.title()))
            key = await service.create_server_key(tenant.id, "tests")
    finally:
        await platform.close()
    return key.key


class ChatServerProcess:
    """`pentad serve` (PENTAD_APPS=chat, one worker) on a fixed loopback port across restarts."""

    def __init__(self, data_dir: Path, database_url: str, server_key: str) -> None:
        self.data_dir = data_dir
        self.server_key = server_key
        self.port = free_port()
        self.log_path = data_dir / "server.log"
        keep = {name: value for name, value in os.environ.items() if not name.startswith("PENTAD_")}
        self.env = {
            **keep,
            "PENTAD_ENVIRONMENT": "test",
            "PENTAD_APPS": "chat",
            "PENTAD_DATA_DIR": str(data_dir),
            "PENTAD_DATABASE__URL": database_url,
            "PENTAD_AUTH__SECRET_KEY": TEST_SECRET_KEY,
            "PENTAD_CRYPTO__KEYS": TEST_CRYPTO_KEYS,
            "PENTAD_JOBS__IN_PROCESS_WORKER": "false",
            "PENTAD_RATELIMIT__ENABLED": "false",
            "PENTAD_LOG__LEVEL": "WARNING",
            "PENTAD_ADMIN__EMAIL": f"admin-{uuid.uuid4().hex[:8]}@example.com",
            "PENTAD_ADMIN__PASSWORD": DEFAULT_PASSWORD,
        }
        self.process: asyncio.subprocess.Process | None = None

    @classmethod
    async def create(cls, data_dir: Path, database_url: str) -> ChatServerProcess:
        key = await create_tenant_key(data_dir, database_url, f"sdk-{uuid.uuid4().hex[:8]}")
        return cls(data_dir, database_url, key)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        """Start and wait until /readyz answers 200."""
        assert self.process is None, "already running"
        command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                "--workers",
                "1",
                env=self.env,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.returncode is not None:
                    code = self.process.returncode
                    pytest.fail(f"pentad serve exited with {code}:\n{log_tail(self.log_path)}")
                try:
                    if (await client.get(f"{self.base_url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"pentad serve did not come up:\n{log_tail(self.log_path)}")
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no closing frames, whatever was in flight is cut."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        self.process = None

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            async with asyncio.timeout(15):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.process = None
