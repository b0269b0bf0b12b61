"""The agents' side of the panel (/api/panel/agent): enrolment and the control socket.

- POST /enrol (public, rate class `panel_enrol`, 10/minute per address): a one-time enrolment token
  (`pne_…`) is swapped for the node's credential (`pnd_…`, answered once, stored hashed).
- WS /socket: the agent's one control WebSocket, authenticated with `Authorization: Bearer pnd_…` as a
  principal of kind `panel_node` holding `panel.agent`; nothing else gets in (4401 without or with a bad
  credential, 4403 for a user's or a service's credential). agent_link.py serves it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions import nodes
from pentad.apps.panel.agent_link import serve_agent
from pentad.apps.panel.credentials import NODE_PRINCIPAL
from pentad.apps.panel.permissions import PANEL_AGENT
from pentad.core.auth.dependencies import Authenticator, db_session
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import RateLimitClass, route_policy
from pentad.core.realtime.live import AppSocket
from pentad.panel_wire import protocol as wire

ENROL_RATE = RateLimitClass("panel_enrol", "10/minute")
AGENT_ONLY = Authenticator(
    PANEL_AGENT, principals={NODE_PRINCIPAL}, refusal="This socket takes a node credential."
)

router = APIRouter(
    prefix="/api/panel/agent", tags=["panel agents"], responses=problem_responses(400, 401, 422, 429)
)


@router.post("/enrol", summary="Swap a one-time enrolment token for the node's credential (agents call it)")
@route_policy(public="the one-time enrolment token in the body is the credential", rate_limit=ENROL_RATE)
async def enrol(
    data: wire.EnrolRequest, request: Request, session: Annotated[AsyncSession, Depends(db_session)]
) -> wire.EnrolResponse:
    node, credential = await nodes.enrol_node(
        session,
        data.token,
        data.facts,
        platform=get_platform(request),
        ip_address=request.client.host if request.client else None,
    )
    return wire.EnrolResponse(node_id=str(node.id), node_name=node.name, credential=credential)


@router.websocket("/socket")
async def agent_socket(socket: Annotated[AppSocket, Depends(AGENT_ONLY.socket)]) -> None:
    await serve_agent(socket)
