"""One transaction per request: committed before the response starts, rolled back on errors, side
effects run only after a commit, and what was done outside the database undone after a rollback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.app import create_app
from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import db_session, request_session
from pentad.core.auth.models import User
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.db.hooks import commit_even_on_error, on_commit, on_rollback
from pentad.core.errors import Conflict
from pentad.core.platform import get_platform

announced: list[str] = []
undone: list[str] = []
refusals: list[str] = []
router = APIRouter(prefix="/api/tx")


def _write(session: AsyncSession, marker: str) -> None:
    audit.record(session, audit.SYSTEM, "test.write", resource_type="marker", resource_id=marker)

    async def announce() -> None:
        announced.append(marker)

    async def undo() -> None:
        undone.append(marker)

    on_commit(session, announce)
    on_rollback(session, undo)


@router.post("/ok/{marker}", status_code=201)
async def write_ok(marker: str, session: AsyncSession = Depends(db_session)) -> dict[str, str]:
    _write(session, marker)
    return {"marker": marker}


@router.post("/refused/{marker}")
async def write_then_refuse(marker: str, session: AsyncSession = Depends(db_session)) -> None:
    _write(session, marker)
    raise Conflict("refused on purpose")


@router.post("/crash/{marker}")
async def write_then_crash(marker: str, session: AsyncSession = Depends(db_session)) -> None:
    _write(session, marker)
    raise RuntimeError("bug")


@router.post("/kept/{marker}")
async def write_keep_and_refuse(marker: str, session: AsyncSession = Depends(db_session)) -> None:
    _write(session, marker)
    commit_even_on_error(session)
    raise Conflict("refused, but the write stays")


@router.post("/commit-fails/{marker}")
async def write_that_fails_at_commit(
    marker: str, session: AsyncSession = Depends(db_session)
) -> dict[str, str]:
    _write(session, marker)
    existing = await session.scalar(select(User.email).limit(1))
    session.add(User(email=existing, display_name="dup", password_hash="x", roles=[]))
    return {"marker": marker}


@router.post("/stream/{marker}")
async def write_then_stream(
    marker: str, request: Request, session: AsyncSession = Depends(db_session)
) -> StreamingResponse:
    _write(session, marker)
    database = get_platform(request).database

    async def body() -> AsyncIterator[bytes]:
        yield b"started\n"
        try:
            request_session(request)
        except RuntimeError as exc:
            refusals.append(str(exc))
        async with database.transaction() as own:
            _write(own, f"{marker}-chunk")
        yield b"stored\n"

    return StreamingResponse(body())


@pytest.fixture
async def tx_client(
    settings: Settings, database: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    announced.clear()
    undone.clear()
    app = create_app(settings, database=database, apps=[AppSpec(name="tx", title="tx", routers=[router])])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, app


async def _stored(database: Database, marker: str) -> int:
    async with database.transaction() as session:
        query = select(func.count()).where(audit.AuditEvent.resource_id == marker)
        return int(await session.scalar(query) or 0)


async def test_success_commits_then_announces(
    tx_client: tuple[httpx.AsyncClient, FastAPI], database: Database
) -> None:
    client, _ = tx_client
    marker = uuid.uuid4().hex
    assert (await client.post(f"/api/tx/ok/{marker}")).status_code == 201
    assert await _stored(database, marker) == 1
    assert announced == [marker]
    assert undone == []


@pytest.mark.parametrize(("route", "status"), [("refused", 409), ("crash", 500)])
async def test_errors_roll_back_and_announce_nothing(
    tx_client: tuple[httpx.AsyncClient, FastAPI], database: Database, route: str, status: int
) -> None:
    client, _ = tx_client
    marker = uuid.uuid4().hex
    response = await client.post(f"/api/tx/{route}/{marker}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert await _stored(database, marker) == 0
    assert announced == []
    assert undone == [marker]


async def test_a_service_may_keep_its_writes_on_error(
    tx_client: tuple[httpx.AsyncClient, FastAPI], database: Database
) -> None:
    client, _ = tx_client
    marker = uuid.uuid4().hex
    assert (await client.post(f"/api/tx/kept/{marker}")).status_code == 409
    assert await _stored(database, marker) == 1
    assert undone == []


async def test_a_failed_commit_is_reported_not_hidden(
    tx_client: tuple[httpx.AsyncClient, FastAPI], database: Database
) -> None:
    client, app = tx_client
    from tests.factories import create_user

    await create_user(app.state.platform)
    marker = uuid.uuid4().hex
    response = await client.post(f"/api/tx/commit-fails/{marker}")
    assert response.status_code == 503
    assert response.json()["code"] == "commit_failed"
    assert await _stored(database, marker) == 0
    assert announced == []
    assert undone == [marker]


async def test_a_streaming_body_works_in_transactions_of_its_own(
    tx_client: tuple[httpx.AsyncClient, FastAPI], database: Database
) -> None:
    """The request's transaction commits before the first byte and ends there: a stream that lasts
    minutes holds no session, and what its body stores goes through transactions of its own."""
    client, _ = tx_client
    refusals.clear()
    marker = uuid.uuid4().hex
    response = await client.post(f"/api/tx/stream/{marker}")
    assert (response.status_code, response.text) == (200, "started\nstored\n")
    assert (await _stored(database, marker), await _stored(database, f"{marker}-chunk")) == (1, 1)
    assert refusals == [
        "the request's transaction ended when its response started: a streaming body opens "
        "platform.database.transaction() per unit of work"
    ]


async def test_a_transaction_of_its_own_undoes_on_failure_only(database: Database) -> None:
    """platform.database.transaction(): a job's or a stream's unit of work."""
    undone.clear()
    announced.clear()
    async with database.transaction() as session:
        _write(session, "kept")

    async def failing() -> None:
        async with database.transaction() as session:
            _write(session, "failed")
            raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        await failing()
    assert (announced, undone) == (["kept"], ["failed"])
