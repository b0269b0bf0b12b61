"""The signed click redirect `/ads/c/<token>`: a click token (tokens.py) names the creative, and the
destination is read from the creative's row, never from the URL, so the route cannot be an open redirect
(Revive's old `dest=` problem). A token that is forged, tampered with, of the wrong kind or expired gets a
400 page and no redirect. Counting clicks comes with serving (session 2 of docs/plans/analytics.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from pentad.apps.ads import repository
from pentad.apps.ads.tokens import TOKEN_BYTES, ExpiredToken, InvalidToken, TokenSigner
from pentad.core.auth.dependencies import db_session
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy
from pentad.core.web.pages.kit import TEMPLATES_DIR, render_page

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])
router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/ads/c/{token}")
@route_policy(public="a signed click link is its own credential; the destination comes from the creative row")
async def follow_click(
    request: Request,
    token: Annotated[str, PathParam(max_length=2 * TOKEN_BYTES)],
    session: Annotated[AsyncSession, Depends(db_session)],
) -> Response:
    try:
        found = TokenSigner(get_platform(request).signing_secret).verify("click", token)
    except (InvalidToken, ExpiredToken) as exc:
        return render_page(
            request, "ads_click.html", None, renderer=templates, status_code=400, message=exc.message
        )
    creative = await repository.get_creative(session, found.creative_id)
    if creative is None:
        return render_page(
            request, "ads_click.html", None, renderer=templates, status_code=404,
            message="This ad is no longer available.",
        )  # fmt: skip
    return RedirectResponse(creative.destination_url, status_code=302, headers=NO_STORE)
