"""FastAPI dependencies of the panel: the caller's PanelContext, and the Authenticator of agent routes."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.credentials import NODE_PRINCIPAL
from pentad.apps.panel.permissions import PANEL_AGENT
from pentad.core.auth.dependencies import Authenticator, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.platform import get_platform

node_agent = Authenticator(
    PANEL_AGENT, principals=[NODE_PRINCIPAL], refusal="This route takes a node credential (`pnd_…`)."
)
"""Agent routes (the agent link's socket and blobs): a node principal, nothing else. Use `.socket` on
WebSocket routes."""


def panel_context(request: Request, session: AsyncSession, principal: Principal) -> PanelContext:
    return PanelContext(session, get_platform(request), principal, request_actor(request, principal))
