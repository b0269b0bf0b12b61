"""Resource grants as apps use them: granting, revoking, listing holders and their resources, and what a
grant gives (core/auth/grants.py)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.audit import Actor
from pentad.core.auth.exceptions import UserNotFound
from pentad.core.auth.grants import (
    delete_resource_grants,
    grant_role,
    granted_permissions,
    holders,
    resource_ids_for,
    revoke_role,
)
from pentad.core.auth.permissions import Permission
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.errors import BadRequest
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


# ------------------------------------------------------------- grants made by apps

BOARD = "boards.board"
SYSTEM = audit.SYSTEM


class Rechecks:
    """What the platform was told after a commit: realtime re-checks and forgotten principals."""

    def __init__(self, platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rechecked: list[list[str]] = []
        self.forgotten: list[uuid.UUID] = []

        async def recheck(principal_ids: list[str], _topic: str | None) -> None:
            self.rechecked.append(principal_ids)

        def forget(subject_id: uuid.UUID) -> None:
            self.forgotten.append(subject_id)

        monkeypatch.setattr(platform.hub, "recheck", recheck)
        monkeypatch.setattr(platform.principals, "forget", forget)


@pytest.fixture
def boards(settings: Settings, database: Database) -> Platform:
    platform: Platform = create_app(settings, database=database, apps=[BOARDS]).state.platform
    return platform


async def _audit(platform: Platform, board: str) -> list[tuple[str, dict[str, object]]]:
    async with platform.database.transaction(writes=False) as session:
        events = await audit.list_events(session, resource_type=BOARD, resource_id=board)
    return sorted(((event.action, event.details) for event in events), key=lambda event: event[0])


async def test_an_app_grants_a_role_once_audited_and_lists_it(boards: Platform) -> None:
    owner, viewer = await create_user(boards), await create_user(boards)
    board = uuid.uuid4()
    actor = Actor("user", str(owner.id), "owner")
    async with boards.database.transaction() as session:
        assert await grant_role(session, boards, owner.id, BOARD, board, "editor", actor=actor)
        assert await grant_role(session, boards, viewer.id, BOARD, board, "viewer", actor=actor)
        assert not await grant_role(session, boards, viewer.id, BOARD, board, "viewer", actor=actor)
    async with boards.database.transaction(writes=False) as session:
        held = await holders(session, BOARD, board)
        assert [(h.user_id, h.role, h.granted_by) for h in held] == [
            (owner.id, "editor", owner.id),
            (viewer.id, "viewer", owner.id),
        ]
        perms = await granted_permissions(session, boards.permissions, viewer.id, BOARD, str(board))
        assert perms == {"boards.read"}
    recorded = await _audit(boards, str(board))
    assert [action for action, _ in recorded] == ["grant.create", "grant.create"]
    assert {"user_id": str(viewer.id), "role": "viewer"} in [details for _, details in recorded]


async def test_resource_ids_for_lists_the_resources_where_the_permission_is_held(boards: Platform) -> None:
    user, other = await create_user(boards), await create_user(boards)
    edited, viewed, foreign = sorted(str(uuid.uuid4()) for _ in range(3))
    async with boards.database.transaction() as session:
        await grant_role(session, boards, user.id, BOARD, edited, "editor", actor=SYSTEM)
        await grant_role(session, boards, user.id, BOARD, edited, "viewer", actor=SYSTEM)
        await grant_role(session, boards, user.id, BOARD, viewed, "viewer", actor=SYSTEM)
        await grant_role(session, boards, other.id, BOARD, foreign, "editor", actor=SYSTEM)
    async with boards.database.transaction(writes=False) as session:
        assert await resource_ids_for(session, boards.permissions, user.id, BOARD, READ) == [
            edited,
            viewed,
        ]
        assert await resource_ids_for(session, boards.permissions, user.id, BOARD, "boards.write") == [edited]
        assert await resource_ids_for(session, boards.permissions, user.id, "boards.other", READ) == []


async def test_bad_roles_and_unknown_users_are_refused_and_change_nothing(boards: Platform) -> None:
    user = await create_user(boards)
    board = str(uuid.uuid4())
    async with boards.database.transaction() as session:
        with pytest.raises(BadRequest) as refused:
            await grant_role(session, boards, user.id, BOARD, board, "owner", actor=SYSTEM)
        assert refused.value.code == "unknown_role"
        with pytest.raises(BadRequest):
            await revoke_role(session, boards, user.id, "boards.nope", board, "viewer", actor=SYSTEM)
        with pytest.raises(UserNotFound):
            await grant_role(session, boards, uuid.uuid4(), BOARD, board, "viewer", actor=SYSTEM)
        assert await holders(session, BOARD, board) == []
    assert await _audit(boards, board) == []


async def test_revoking_forgets_the_user_and_rechecks_its_connections_after_the_commit(
    boards: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await create_user(boards)
    board = str(uuid.uuid4())
    async with boards.database.transaction() as session:
        await grant_role(session, boards, user.id, BOARD, board, "editor", actor=SYSTEM)
    told = Rechecks(boards, monkeypatch)
    async with boards.database.transaction() as session:
        assert await revoke_role(session, boards, user.id, BOARD, board, "editor", actor=SYSTEM)
        assert told.rechecked == []
        assert told.forgotten == [user.id]
    assert told.rechecked == [[str(user.id)]]
    assert told.forgotten == [user.id, user.id]
    async with boards.database.transaction() as session:
        assert await granted_permissions(session, boards.permissions, user.id, BOARD, board) == set()
        assert not await revoke_role(session, boards, user.id, BOARD, board, "editor", actor=SYSTEM)
    assert told.rechecked == [[str(user.id)]]
    assert [action for action, _ in await _audit(boards, board)] == ["grant.create", "grant.delete"]


async def test_a_rolled_back_revocation_keeps_the_grant_and_rechecks_nobody(
    boards: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await create_user(boards)
    board = str(uuid.uuid4())
    async with boards.database.transaction() as session:
        await grant_role(session, boards, user.id, BOARD, board, "viewer", actor=SYSTEM)
    told = Rechecks(boards, monkeypatch)

    async def revoke_then_fail() -> None:
        async with boards.database.transaction() as session:
            await revoke_role(session, boards, user.id, BOARD, board, "viewer", actor=SYSTEM)
            raise RuntimeError("the rest of the change failed")

    with pytest.raises(RuntimeError):
        await revoke_then_fail()
    assert told.rechecked == []
    async with boards.database.transaction(writes=False) as session:
        assert [h.user_id for h in await holders(session, BOARD, board)] == [user.id]


async def test_deleting_a_resource_removes_every_grant_on_it_only(
    boards: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await create_user(boards), await create_user(boards)
    board, kept = str(uuid.uuid4()), str(uuid.uuid4())
    async with boards.database.transaction() as session:
        await grant_role(session, boards, first.id, BOARD, board, "editor", actor=SYSTEM)
        await grant_role(session, boards, first.id, BOARD, board, "viewer", actor=SYSTEM)
        await grant_role(session, boards, second.id, BOARD, board, "viewer", actor=SYSTEM)
        await grant_role(session, boards, second.id, BOARD, kept, "viewer", actor=SYSTEM)
    told = Rechecks(boards, monkeypatch)
    async with boards.database.transaction() as session:
        assert await delete_resource_grants(session, boards, BOARD, board, actor=SYSTEM) == 3
        assert await delete_resource_grants(session, boards, BOARD, board, actor=SYSTEM) == 0
    assert told.rechecked == [sorted([str(first.id), str(second.id)])]
    async with boards.database.transaction(writes=False) as session:
        assert await holders(session, BOARD, board) == []
        assert [h.user_id for h in await holders(session, BOARD, kept)] == [second.id]
    assert [action for action, _ in await _audit(boards, board)].count("grant.delete_all") == 1
