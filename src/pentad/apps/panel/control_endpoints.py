"""Power, install and console of a server (/api/panel/servers/{id}/…). Thin: one action call each.

Every route needs `panel.use` and then the server's own key (actions/power.py, actions/console.py);
a server the caller holds no key on is 404, one they lack the key on is 403. An agent that is not
connected answers 409 `node_offline`, one that does not answer 504 `agent_timeout`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions import console, power, transfers
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.agent_link import stats_key
from pentad.apps.panel.permissions import PANEL_USE, SERVER_WEBSOCKET
from pentad.apps.panel.topics import ServerStats
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/panel/servers",
    tags=["panel"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429, 504),
)

ServerId = Annotated[uuid.UUID, Path(description="The server's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(PANEL_USE))]


class PowerRequest(BaseModel):
    action: Literal["start", "stop", "restart", "kill"]


class CommandRequest(BaseModel):
    command: str = Field(min_length=1, max_length=8192, description="one console line")


class InstallRequest(BaseModel):
    reinstall: bool = False


class StatsRead(BaseModel):
    server_id: uuid.UUID
    stats: ServerStats | None = Field(description="the latest report (1 Hz), null when none is fresh")


def _context(request: Request, session: AsyncSession, principal: Principal) -> PanelContext:
    return PanelContext(session, get_platform(request), principal, request_actor(request, principal))


@router.post("/{server_id}/power", summary="Start, stop, restart or kill the server")
async def send_power(
    server_id: ServerId, data: PowerRequest, request: Request, session: Session, principal: Member
) -> power.PowerResult:
    return await power.do_power(_context(request, session, principal), server_id, data.action)


@router.post("/{server_id}/install", status_code=202, summary="Run the template's install script on the node")
async def install(
    server_id: ServerId, data: InstallRequest, request: Request, session: Session, principal: Member
) -> power.PowerResult:
    return await power.do_install(_context(request, session, principal), server_id, reinstall=data.reinstall)


@router.post("/{server_id}/command", status_code=204, summary="Send one command to the server's console")
async def send_command(
    server_id: ServerId, data: CommandRequest, request: Request, session: Session, principal: Member
) -> Response:
    await console.do_send_command(_context(request, session, principal), server_id, data.command)
    return Response(status_code=204)


@router.get("/{server_id}/console", summary="The last console lines kept on the node")
async def console_history(
    server_id: ServerId,
    request: Request,
    session: Session,
    principal: Member,
    lines: Annotated[int | None, Query(ge=1, le=10_000, description="default: console_history_lines")] = None,
) -> console.ConsoleHistory:
    return await console.get_console_history(_context(request, session, principal), server_id, lines)


@router.get("/{server_id}/stats", summary="The server's latest resource figures")
async def stats(server_id: ServerId, request: Request, session: Session, principal: Member) -> StatsRead:
    context = _context(request, session, principal)
    await context.access(server_id, SERVER_WEBSOCKET)
    cached = await context.platform.cache.get(stats_key(server_id))
    return StatsRead(server_id=server_id, stats=ServerStats.model_validate(cached) if cached else None)


@router.post(
    "/{server_id}/transfer",
    status_code=202,
    summary="Move the stopped server to another node (panel admins; a job moves its files)",
)
async def transfer(
    server_id: ServerId,
    data: transfers.TransferCreate,
    request: Request,
    session: Session,
    principal: Member,
) -> transfers.TransferQueued:
    return await transfers.do_transfer_server(_context(request, session, principal), server_id, data)
