"""granted_permissions: what apps read of the core's resource grants."""

from __future__ import annotations

import uuid

from fastapi import FastAPI

from pentad.app import create_app
from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.auth.grants import granted_permissions
from pentad.core.auth.permissions import Permission
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.factories import create_user

READ = Permission("boards.read", "Read a board")
WRITE = Permission("boards.write", "Write on a board")
BOARDS = AppSpec(
    name="boards",
    title="Boards",
    permissions=[READ, WRITE],
    resource_roles={"boards.board": {"editor": [READ, WRITE], "viewer": [READ]}},
)


async def test_a_grant_gives_its_roles_permissions_on_that_resource_only(
    settings: Settings, database: Database
) -> None:
    app: FastAPI = create_app(settings, database=database, apps=[BOARDS])
    platform: Platform = app.state.platform
    user = await create_user(platform)
    board, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with platform.database.transaction() as session:
        await AuthService(session, platform).grant(
            user.id, "boards.board", board, "viewer", actor=audit.SYSTEM
        )
    async with platform.database.transaction() as session:
        on_board = await granted_permissions(session, platform.permissions, user.id, "boards.board", board)
        elsewhere = await granted_permissions(session, platform.permissions, user.id, "boards.board", other)
    assert on_board == {"boards.read"}
    assert elsewhere == frozenset()
