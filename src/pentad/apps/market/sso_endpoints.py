"""Linking EVE characters through EVE SSO, and the caller's linked characters.

- `GET /api/market/sso/start` → 302 to the SSO's consent page (state + PKCE made here).
- `GET /market/sso/callback` (the SSO_CALLBACK_PATH default, registered with the SSO as the callback) →
  303 back into the market pages once the character is stored; errors are problem+json 4xx/5xx.
- `GET /api/market/characters`, `DELETE /api/market/characters/{id}` (revokes the token at the SSO).

Thin: each route builds the caller's MarketContext and makes one action call.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import characters
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.permissions import MARKET_USE
from pentad.apps.market.schemas import CharacterRead
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

CALLBACK_PATH = "/market/sso/callback"

RESPONSES = problem_responses(400, 401, 403, 404, 409, 422, 429, 502, 503)
router = APIRouter(prefix="/api/market", tags=["market"], responses=RESPONSES)
callback_router = APIRouter(tags=["market"], responses=RESPONSES)
"""The callback lives at SSO_CALLBACK_PATH's default, outside /api: it is where the browser lands."""

LinkId = Annotated[uuid.UUID, Path(description="The character link's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Person = Annotated[Principal, Depends(require_user(MARKET_USE))]


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get(
    "/sso/start",
    status_code=302,
    summary="Link an EVE character: redirects to EVE SSO's consent page",
    response_class=RedirectResponse,
)
async def start_link(
    request: Request,
    session: Session,
    principal: Person,
    return_to: Annotated[
        str | None, Query(max_length=500, description="Path on this site to come back to (default /market).")
    ] = None,
) -> RedirectResponse:
    url = await characters.do_start_link(_context(request, session, principal), return_to=return_to)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@callback_router.get(
    CALLBACK_PATH,
    status_code=303,
    summary="EVE SSO's redirect back: stores the linked character",
    response_class=RedirectResponse,
)
async def sso_callback(
    request: Request,
    session: Session,
    principal: Person,
    code: Annotated[str | None, Query(max_length=1000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    character, return_to = await characters.do_complete_link(
        _context(request, session, principal), state=state, code=code, error=error
    )
    separator = "&" if "?" in return_to else "?"
    target = f"{return_to}{separator}linked={quote(str(character.id))}"
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/characters", summary="Your linked EVE characters and their link status")
async def list_characters(request: Request, session: Session, principal: Person) -> list[CharacterRead]:
    return await characters.list_characters(_context(request, session, principal))


@router.delete(
    "/characters/{link_id}",
    status_code=204,
    summary="Unlink one of your characters (its token is revoked at EVE SSO)",
)
async def delete_character(
    link_id: LinkId, request: Request, session: Session, principal: Person
) -> Response:
    await characters.do_delete_character(_context(request, session, principal), link_id)
    return Response(status_code=204)
