"""The chat web page (/chat) for signed-in Pentad accounts.

The page is a shell: static/chat.js gets a `pcu_` user token from POST /api/chat/session-token (cookie
session + CSRF header) and then uses static/chat-sdk.js exactly as a product embedding the chat would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from pentad.apps.chat.permissions import CHAT_USE
from pentad.apps.chat.settings import ChatSettings
from pentad.core.auth.principal import Principal
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import TEMPLATES_DIR, PageAccess, render_page

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])

router = APIRouter(include_in_schema=False)

ChatUser = Annotated[Principal, Depends(PageAccess(CHAT_USE))]


@router.get("/chat")
async def chat_page(request: Request, principal: ChatUser) -> Response:
    limit = get_platform(request).app_settings(ChatSettings).max_message_length
    return render_page(request, "chat.html", principal, renderer=templates, max_message_length=limit)
