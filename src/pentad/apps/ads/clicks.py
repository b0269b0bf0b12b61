"""The signed click redirect `/ads/c/<token>`: a click token (tokens.py) names the creative, and the
destination is read from the creative's row, never from the URL, so the route cannot be an open redirect
(Revive's old `dest=` problem). A token that is forged, tampered with, of the wrong kind or expired gets a
400 page and no redirect.

A valid click is counted once per impression: the first click of an impression token appends a row to the
`ads.clicks` ingest stream and adds to the campaign's daily click counter (and its spend, for CPC); later
clicks of the same token still redirect but count nothing (and ads_clicks keeps one row per impression).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from pentad.apps.ads import repository
from pentad.apps.ads.budgets import add_spend
from pentad.apps.ads.delivery import delivery_snapshot
from pentad.apps.ads.impressions import CLICKS_STREAM, ClickRow
from pentad.apps.ads.serving import DAY_TTL, daily_key
from pentad.apps.ads.settings import APP_NAME, AdsSettings
from pentad.apps.ads.tokens import TOKEN_BYTES, AdToken, ExpiredToken, InvalidToken, TokenSigner
from pentad.core.auth.dependencies import db_session
from pentad.core.platform import Platform, get_platform
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
    await _count(get_platform(request), found, creative.campaign_id)
    return RedirectResponse(creative.destination_url, status_code=302, headers=NO_STORE)


async def _count(platform: Platform, token: AdToken, campaign_id: uuid.UUID) -> None:
    settings = platform.app_settings(AdsSettings)
    if await platform.cache.incr(f"ads:c:{token.impression_id}", 1, settings.click_token_ttl + 60) != 1:
        return
    zone = await delivery_snapshot(platform).zone(token.zone_id)
    house = zone is not None and zone.house is not None and zone.house.id == token.creative_id
    platform.ingest.append_nowait(
        CLICKS_STREAM,
        ClickRow(
            impression_id=token.impression_id,
            ts=int(time.time() * 1000),
            zone_id=token.zone_id,
            creative_id=token.creative_id,
            campaign_id=None if house else campaign_id,
        ),
    )
    campaign = None
    if zone is not None and not house:
        campaign = next((entry for entry in zone.campaigns if entry.id == campaign_id), None)
    if campaign is not None:
        day = datetime.now(ZoneInfo(zone.timezone) if zone is not None else UTC).strftime("%Y%m%d")
        await platform.cache.incr(daily_key(campaign.id, day, "clk"), 1, DAY_TTL)
        if campaign.pricing == "cpc":
            await platform.cache.incr(daily_key(campaign.id, day, "spend"), campaign.rate_micros, DAY_TTL)
            if campaign.budget_micros is not None:
                await add_spend(platform, campaign.id, campaign.rate_micros)
    platform.metrics.for_app(APP_NAME).counter("clicks", "Ad clicks counted.").inc()
