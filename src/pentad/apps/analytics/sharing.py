"""Shared links: a site owner's read-only dashboard for people without an account.

An owner makes a link (`POST /api/analytics/sites/{id}/shares`): `/analytics/share/<slug>`, the slug a
random 128-bit secret. A link is public, or protected by a password the core password hasher (argon2)
keeps only as a hash. Password attempts are limited per link and address (SHARE_ATTEMPTS a minute,
counted in the core cache whatever the request rate limits are); a right password sets a cookie
scoped to the link's path, signed with the server's signing secret over the link and its password
hash, valid for COOKIE_HOURS (a new password or a deleted link ends it). Deleting the link revokes it at once.

The link opens that site only, read-only: the dashboard page and its JSON (`/analytics/share/<slug>/api/
…`: top stats, time series, breakdowns, goals, properties, funnels, CSV export) — no settings, no
sharing, no other site. Everything else answers 404 as for an unknown link.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.analytics import stats
from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.export import export_response
from pentad.apps.analytics.live import LiveFrame, live_frame
from pentad.apps.analytics.models import AnalyticsFunnel, AnalyticsShare, AnalyticsSite
from pentad.apps.analytics.permissions import SITE_MANAGE
from pentad.apps.analytics.query import Dimension
from pentad.apps.analytics.schemas import ShareCreate, ShareRead
from pentad.apps.analytics.store import external_store
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth.dependencies import db_session
from pentad.core.auth.passwords import hash_password, verify_password
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError, NotFound, TooManyRequests
from pentad.core.platform import Platform, get_platform
from pentad.core.policy import route_policy
from pentad.core.security import client_address
from pentad.core.web.pages.kit import TEMPLATES_DIR, check_same_origin, render_page, see_other

SHARE_ATTEMPTS: Final = 10
ATTEMPT_WINDOW: Final = 60
"""Password attempts per link and address within ATTEMPT_WINDOW seconds of the first."""
COOKIE: Final = "pentad_share"
COOKIE_HOURS: Final = 12
SHARE_PREFIX: Final = "/analytics/share"
PUBLIC: Final = "a shared link: its secret slug (and, when set, its password) is the credential"

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])
router = APIRouter(include_in_schema=False)
Session = Annotated[AsyncSession, Depends(db_session)]
Slug = Annotated[str, PathParam(min_length=10, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class ShareNotFound(NotFound):
    code = "share_not_found"

    def __init__(self) -> None:
        super().__init__("No such shared link (it may have been revoked).")


class SharePassword(AppError):
    status, code = 401, "share_password_required"


# ------------------------------------------------------------------ owners


def share_read(platform: Platform, share: AnalyticsShare) -> ShareRead:
    return ShareRead(
        id=share.id,
        label=share.label,
        url=f"{platform.base_url.rstrip('/')}{SHARE_PREFIX}/{share.slug}",
        password_protected=share.password_hash is not None,
        created_at=share.created_at,
    )


@dataclass
class ShareService:
    session: AsyncSession
    platform: Platform
    principal: Principal
    actor: Actor

    async def _site(self, site_id: uuid.UUID) -> AnalyticsSite:
        return (await access_site(self.session, self.platform, self.principal, site_id, SITE_MANAGE)).site

    async def create(self, site_id: uuid.UUID, data: ShareCreate) -> AnalyticsShare:
        site = await self._site(site_id)
        share = AnalyticsShare(
            site_id=site.id,
            slug=secrets.token_urlsafe(16),
            label=data.label,
            password_hash=await hash_password(data.password) if data.password else None,
            created_by=self.principal.id if self.principal.is_user else None,
        )
        self.session.add(share)
        await self.session.flush()
        audit.record(self.session, self.actor, "analytics.share.create", resource_type="analytics.site",
                     resource_id=str(site.id), share_id=str(share.id),
                     password=share.password_hash is not None)  # fmt: skip
        return share

    async def list(self, site_id: uuid.UUID) -> list[AnalyticsShare]:
        site = await self._site(site_id)
        query = select(AnalyticsShare).where(AnalyticsShare.site_id == site.id)
        return list((await self.session.scalars(query.order_by(AnalyticsShare.created_at))).all())

    async def revoke(self, site_id: uuid.UUID, share_id: uuid.UUID) -> None:
        site = await self._site(site_id)
        share = await self.session.get(AnalyticsShare, share_id)
        if share is None or share.site_id != site.id:
            raise ShareNotFound()
        await self.session.delete(share)
        audit.record(self.session, self.actor, "analytics.share.revoke", resource_type="analytics.site",
                     resource_id=str(site.id), share_id=str(share_id))  # fmt: skip


# ------------------------------------------------------------------ visitors of a link


def _signature(secret: bytes, share: AnalyticsShare, expires: int) -> str:
    message = f"{share.id}|{share.password_hash}|{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def cookie_value(secret: bytes, share: AnalyticsShare, now: float | None = None) -> str:
    expires = int((now or time.time()) + COOKIE_HOURS * 3600)
    return f"{expires}.{_signature(secret, share, expires)}"


def cookie_valid(secret: bytes, share: AnalyticsShare, value: str | None, now: float | None = None) -> bool:
    if not value:
        return False
    expires_text, _, signature = value.partition(".")
    if not expires_text.isdigit() or int(expires_text) < (now or time.time()):
        return False
    return hmac.compare_digest(signature, _signature(secret, share, int(expires_text)))


async def _share(session: AsyncSession, slug: str) -> tuple[AnalyticsShare, AnalyticsSite]:
    found = (
        await session.execute(
            select(AnalyticsShare, AnalyticsSite)
            .join(AnalyticsSite, AnalyticsSite.id == AnalyticsShare.site_id)
            .where(AnalyticsShare.slug == slug)
        )
    ).one_or_none()
    if found is None:
        raise ShareNotFound()
    return found[0], found[1]


def _unlocked(request: Request, share: AnalyticsShare) -> bool:
    if share.password_hash is None:
        return True
    return cookie_valid(get_platform(request).signing_secret, share, request.cookies.get(COOKIE))


async def _open_site(request: Request, session: AsyncSession, slug: str) -> AnalyticsSite:
    share, site = await _share(session, slug)
    if not _unlocked(request, share):
        raise SharePassword("This shared link needs its password: open the link and enter it.")
    return site


async def _enforce_attempts(platform: Platform, slug: str, address: str) -> None:
    """At most SHARE_ATTEMPTS password attempts per link and address in a window of ATTEMPT_WINDOW
    seconds from the first, counted in the core cache (shared by every node when it is Redis), whatever
    the server's request rate limits are."""
    tried = await platform.cache.incr(f"analytics:share-attempts:{slug}:{address}", ttl=ATTEMPT_WINDOW)
    if tried > SHARE_ATTEMPTS:
        raise TooManyRequests(
            "Too many password attempts for this link; try again in a minute.",
            headers={"Retry-After": str(ATTEMPT_WINDOW)},
        )


@router.get(SHARE_PREFIX + "/{slug}")
@route_policy(public=PUBLIC)
async def shared_dashboard(slug: Slug, request: Request, session: Session) -> Response:
    share, site = await _share(session, slug)
    if not _unlocked(request, share):
        return render_page(request, "analytics_share_password.html", None, renderer=templates, site=site)
    return render_page(
        request, "analytics_dashboard.html", None, renderer=templates, site=site, can_manage=False,
        shared=True, api_base=f"{SHARE_PREFIX}/{slug}/api", snippet="", tracker_bytes=0,
    )  # fmt: skip


@router.post(SHARE_PREFIX + "/{slug}")
@route_policy(public=PUBLIC)
async def unlock_shared_dashboard(
    slug: Slug, request: Request, session: Session, password: Annotated[str, Form(max_length=256)] = ""
) -> Response:
    check_same_origin(request)
    platform = get_platform(request)
    share, site = await _share(session, slug)
    await _enforce_attempts(platform, slug, client_address(request))
    if share.password_hash is None:
        return see_other(f"{SHARE_PREFIX}/{slug}")
    if not await verify_password(password, share.password_hash):
        return render_page(request, "analytics_share_password.html", None, renderer=templates, site=site,
                           status_code=401, error="That password is not right.")  # fmt: skip
    response = see_other(f"{SHARE_PREFIX}/{slug}")
    response.set_cookie(
        COOKIE,
        cookie_value(platform.signing_secret, share),
        max_age=COOKIE_HOURS * 3600,
        path=f"{SHARE_PREFIX}/{slug}",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


# ------------------------------------------------------------------ the link's read-only JSON

API = SHARE_PREFIX + "/{slug}/api"


async def _shared_ask(
    request: Request,
    session: AsyncSession,
    slug: str,
    asked: stats.RangeParams,
) -> stats.Ask:
    site = await _open_site(request, session, slug)
    return stats.Ask.of(get_platform(request), site, asked)


@router.get(API + "/stats/aggregate")
@route_policy(public=PUBLIC)
async def shared_aggregate(
    slug: Slug,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
    compare: str | None = None,
) -> stats.Aggregate:
    ask = await _shared_ask(request, session, slug, asked)
    return await stats.aggregate(session, ask, compare)


@router.get(API + "/stats/timeseries")
@route_policy(public=PUBLIC)
async def shared_timeseries(
    slug: Slug,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
) -> stats.Timeseries:
    ask = await _shared_ask(request, session, slug, asked)
    return await stats.timeseries(session, ask)


@router.get(API + "/stats/breakdown/{dimension}")
@route_policy(public=PUBLIC)
async def shared_breakdown(
    slug: Slug,
    dimension: Dimension,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
    limit: int = 10,
) -> stats.Breakdown:
    ask = await _shared_ask(request, session, slug, asked)
    return await stats.breakdown(session, ask, dimension, max(1, min(limit, 100)))


@router.get(API + "/stats/live")
@route_policy(public=PUBLIC)
async def shared_live(slug: Slug, request: Request, session: Session) -> LiveFrame:
    site = await _open_site(request, session, slug)
    return await live_frame(session, site.key, store=external_store(get_platform(request)))


@router.get(API + "/stats/goals")
@route_policy(public=PUBLIC)
async def shared_goals(
    slug: Slug,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
) -> stats.Goals:
    ask = await _shared_ask(request, session, slug, asked)
    return await stats.goals(session, ask)


@router.get(API + "/stats/props")
@route_policy(public=PUBLIC)
async def shared_props(
    slug: Slug,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
    key: str | None = None,
) -> stats.Props:
    ask = await _shared_ask(request, session, slug, asked)
    return await stats.props(session, ask, key, 10)


@router.get(API + "/funnels")
@route_policy(public=PUBLIC)
async def shared_funnels(slug: Slug, request: Request, session: Session) -> list[dict[str, str]]:
    site = await _open_site(request, session, slug)
    found = await session.scalars(
        select(AnalyticsFunnel).where(AnalyticsFunnel.site_id == site.id).order_by(AnalyticsFunnel.created_at)
    )
    return [{"id": str(f.id), "name": f.name} for f in found.all()]


@router.get(API + "/funnels/{funnel_id}/report")
@route_policy(public=PUBLIC)
async def shared_funnel_report(
    slug: Slug,
    funnel_id: uuid.UUID,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
) -> stats.FunnelReport:
    ask = await _shared_ask(request, session, slug, asked)
    funnel = await session.get(AnalyticsFunnel, funnel_id)
    if funnel is None or funnel.site_id != ask.site.id:
        raise NotFound("No such funnel on this site.", code="funnel_not_found")
    return await stats.funnel(session, ask, funnel)


@router.get(API + "/export/{panel}")
@route_policy(public=PUBLIC)
async def shared_export(
    slug: Slug,
    panel: str,
    request: Request,
    session: Session,
    asked: stats.RangeQuery,
) -> Response:
    ask = await _shared_ask(request, session, slug, asked)
    return await export_response(session, ask, panel)
