"""FastAPI dependencies of the ads routes: the caller, who needs `ads.use`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.delivery import reload_after_commit
from pentad.apps.ads.permissions import ADS_USE
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.principal import Principal
from pentad.core.platform import get_platform


async def ads_context(
    request: Request,
    principal: Annotated[Principal, Depends(require_user(ADS_USE))],
    session: Annotated[AsyncSession, Depends(db_session)],
) -> AdsContext:
    platform = get_platform(request)
    if request.method != "GET":
        reload_after_commit(session, platform)
    return AdsContext(session, platform, principal, request_actor(request, principal))
