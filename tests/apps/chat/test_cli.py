"""`pentad chat …` run as an operator runs it, against a fresh SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from pentad.app import create_app
from pentad.apps.chat.spec import APP
from tests.conftest import make_settings
from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]


def test_tenant_and_server_key_lifecycle(env: dict[str, str], tmp_path: Path) -> None:
    pentad(env, "migrate")
    assert (
        "Created chat tenant acme" in pentad(env, "chat", "tenant", "create", "acme", "--name", "Acme").stdout
    )
    duplicate = pentad(env, "chat", "tenant", "create", "acme", "--name", "Again", check=False)
    assert duplicate.returncode != 0
    assert "exists" in duplicate.stderr
    assert "acme" in pentad(env, "chat", "tenant", "list").stdout
    output = pentad(env, "chat", "key", "create", "acme", "--name", "backend").stdout.splitlines()
    key_id, key = output[0].split()[2], output[1]
    assert key.startswith("pck_")

    async def server_api_status() -> int:
        settings = make_settings(tmp_path, env["PENTAD_DATABASE__URL"], apps=["chat"])
        app = create_app(settings, apps=[APP])
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/api/chat/server/tenant", headers={"Authorization": f"Bearer {key}"})
        await app.state.platform.close()
        return response.status_code

    assert asyncio.run(server_api_status()) == 200
    assert "Revoked" in pentad(env, "chat", "key", "revoke", "acme", key_id).stdout
    assert asyncio.run(server_api_status()) == 401
    assert "sqlite" in pentad(env, "chat", "reindex").stdout
