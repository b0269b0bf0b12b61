"""Apps plug into the core through AppSpec: routes, permissions in roles, per-resource grants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import auth_service, request_actor, require
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings, SettingsError
from pentad.core.db.engine import Database
from tests.factories import access_token, bearer, create_admin, create_user

BOARDS_READ = Permission("notes.boards.read", "See boards.")
BOARDS_WRITE = Permission("notes.boards.write", "Write on a board.")

router = APIRouter(prefix="/api/notes")


@router.get("/boards")
async def list_boards(principal: Annotated[Principal, Depends(require(BOARDS_READ))]) -> list[str]:
    return ["lobby"]


@router.put("/boards/{board_id}")
async def write_board(
    board_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require())],
    service: Annotated[AuthService, Depends(auth_service)],
) -> dict[str, str]:
    await service.authorize(principal, BOARDS_WRITE, "notes.board", board_id)
    return {"written": board_id, "by": str(request_actor(request, principal).id)}


NOTES = AppSpec(
    name="notes",
    title="Notes",
    routers=[router],
    permissions=[BOARDS_READ, BOARDS_WRITE],
    role_permissions={"member": [BOARDS_READ]},
    resource_roles={"notes.board": {"editor": [BOARDS_WRITE], "viewer": []}},
)


@pytest.fixture
async def notes(settings: Settings, database: Database) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(settings, database=database, apps=[NOTES])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, app


async def test_app_permissions_join_global_roles(notes: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = notes
    member = await create_user(app.state.platform)
    headers = bearer(await access_token(client, member))
    assert (await client.get("/api/notes/boards", headers=headers)).json() == ["lobby"]
    me = (await client.get("/api/me", headers=headers)).json()
    assert "notes.boards.read" in me["permissions"]
    assert "notes.boards.write" not in me["permissions"]


async def test_resource_grants_allow_only_that_resource(notes: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = notes
    platform = app.state.platform
    admin = await create_admin(platform)
    member = await create_user(platform)
    admin_headers = bearer(await access_token(client, admin))
    member_headers = bearer(await access_token(client, member))

    async def write(board_id: str, headers: dict[str, str]) -> httpx.Response:
        return await client.put(f"/api/notes/boards/{board_id}", headers=headers)

    async def grants() -> list[tuple[str, str]]:
        response = await client.get(f"/api/users/{member.id}/grants", headers=admin_headers)
        assert response.status_code == 200, response.text
        return sorted((grant["resource_id"], grant["role"]) for grant in response.json())

    refused = await write("b1", member_headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    granted = await client.post(
        f"/api/users/{member.id}/grants",
        json={"resource_type": "notes.board", "resource_id": "b1", "role": "editor"},
        headers=admin_headers,
    )
    assert granted.status_code == 201, granted.text
    assert {key: granted.json()[key] for key in ("resource_type", "resource_id", "role")} == {
        "resource_type": "notes.board",
        "resource_id": "b1",
        "role": "editor",
    }
    assert await grants() == [("b1", "editor")]
    written = await write("b1", member_headers)
    assert written.status_code == 200, written.text
    assert written.json() == {"written": "b1", "by": str(member.id)}
    assert (await write("b2", member_headers)).status_code == 403

    # A role that does not carry the permission does not open the door, although it is granted.
    viewer = await client.post(
        f"/api/users/{member.id}/grants",
        json={"resource_type": "notes.board", "resource_id": "b2", "role": "viewer"},
        headers=admin_headers,
    )
    assert viewer.status_code == 201, viewer.text
    assert await grants() == [("b1", "editor"), ("b2", "viewer")]
    assert (await write("b2", member_headers)).status_code == 403

    # Revoking the grant closes it again.
    revoked = await client.delete(
        f"/api/users/{member.id}/grants/{granted.json()['id']}", headers=admin_headers
    )
    assert revoked.status_code == 204, revoked.text
    assert await grants() == [("b2", "viewer")]
    assert (await write("b1", member_headers)).status_code == 403

    # Admins hold every permission of every app.
    assert (await write("b9", admin_headers)).status_code == 200


async def test_unknown_resource_roles_are_refused(notes: tuple[httpx.AsyncClient, FastAPI]) -> None:
    client, app = notes
    admin = await create_admin(app.state.platform)
    headers = bearer(await access_token(client, admin))
    response = await client.post(
        f"/api/users/{admin.id}/grants",
        json={"resource_type": "notes.board", "resource_id": "b1", "role": "overlord"},
        headers=headers,
    )
    assert response.status_code == 400, response.text
    listed = await client.get(f"/api/users/{admin.id}/grants", headers=headers)
    assert (listed.status_code, listed.json()) == (200, [])
    roles = (await client.get("/api/roles", headers=headers)).json()
    assert roles["resource_roles"]["notes.board"]["editor"] == ["notes.boards.write"]


def test_unknown_app_names_stop_start_up(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="PENTAD_APPS: unknown app 'nope'"):
        enabled_apps(settings.model_copy(update={"apps": ["nope"]}))
