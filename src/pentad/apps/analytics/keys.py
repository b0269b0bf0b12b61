"""Stats API keys: read-only bearer keys (`pas_<id>_<secret>`, a core CredentialScheme) of one account,
limited to some of its sites.

A key is shown once; only a SHA-256 of its secret is stored. Its principal (kind `analytics_stats_key`,
subject = the owning account, so every change to the account's rights forgets it) holds nothing but
`analytics.site.read`, so it reaches the Stats API (stats_api.py) and no other route. Each request checks
that the site is one the key names and that the owner still reads it (a grant, or `analytics.admin`): a
site outside either does not exist for the key (404). Revoked keys and keys of disabled accounts are
refused (401) at once: revoking forgets the owner's cached principals on every node.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.exceptions import SiteNotFound
from pentad.apps.analytics.models import AnalyticsSite, AnalyticsStatsKey
from pentad.apps.analytics.permissions import ANALYTICS_ADMIN, ANALYTICS_USE, SITE_READ, SITE_RESOURCE
from pentad.core import audit
from pentad.core.auth import tokens
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.grants import granted_permissions
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemes import CredentialScheme
from pentad.core.auth.service import AuthService
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.errors import NotFound, problem_responses
from pentad.core.platform import Platform, get_platform

STATS_KEY = "pas"
KEY_PRINCIPAL = "analytics_stats_key"
CHECK_SECONDS = 60
"""How long a verified key's principal is believed without reading its row again (a revocation is
forgotten at once; this bounds what a missed forget could cost)."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_SITES = 100


class KeyNotFound(NotFound):
    code = "stats_key_not_found"

    def __init__(self) -> None:
        super().__init__("No such Stats API key.")


# ---------------------------------------------------------------- the credential scheme


async def _authenticate(session: AsyncSession, platform: AppContext, raw: str) -> tuple[Principal, datetime]:
    token = tokens.parse_token(raw, STATS_KEY)
    if token is None:
        raise InvalidToken()
    key = await session.get(AnalyticsStatsKey, token.id)
    if key is None or key.revoked_at is not None or not tokens.secret_matches(token.secret, key.secret_hash):
        raise InvalidToken()
    assert isinstance(platform, Platform)
    try:
        owner = await AuthService(session, platform).get_user(key.user_id)
    except NotFound:
        raise InvalidToken() from None
    if not owner.is_active:
        raise InvalidToken()
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    principal = Principal(
        kind=KEY_PRINCIPAL,
        id=key.user_id,
        label=f"stats key {key.hint} of {owner.email}",
        roles=frozenset(),
        permissions=frozenset({SITE_READ.key}),
        via=KEY_PRINCIPAL,
        credential_id=key.id,
        scopes=frozenset({SITE_READ.key}),
        display_name=key.name,
    )
    return principal, now + timedelta(seconds=CHECK_SECONDS)


CREDENTIAL_SCHEMES = (CredentialScheme(STATS_KEY, _authenticate),)


# ---------------------------------------------------------------- who may read which site


async def stats_site(
    session: AsyncSession, platform: Platform, principal: Principal, domain: str
) -> AnalyticsSite:
    """The site `domain` names, if the caller may read its statistics; SiteNotFound (404) otherwise.

    A Stats API key reads the sites it names that its owner still reads; any other credential (a
    session, a core API key with `analytics.site.read` in its scopes) the sites it may read."""
    site = await session.scalar(select(AnalyticsSite).where(AnalyticsSite.domain == domain.strip().lower()))
    if site is None:
        raise SiteNotFound()
    if principal.kind != KEY_PRINCIPAL:
        return (await access_site(session, platform, principal, site.id)).site
    key = await session.get(AnalyticsStatsKey, principal.credential_id)
    if key is None or key.revoked_at is not None or str(site.id) not in key.site_ids:
        raise SiteNotFound()
    auth = AuthService(session, platform)
    try:
        owner = await auth.get_user(key.user_id)
    except NotFound:
        raise SiteNotFound() from None
    if ANALYTICS_ADMIN.key in auth.permissions_of(owner):
        return site
    granted = await granted_permissions(
        session, platform.permissions, key.user_id, SITE_RESOURCE, str(site.id)
    )
    if SITE_READ.key not in granted:
        raise SiteNotFound()
    return site


# ---------------------------------------------------------------- managing keys


class StatsKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the key is for.")
    site_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=MAX_SITES, description="The sites the key may read (you must read them)."
    )


class StatsKeyRead(BaseModel):
    id: uuid.UUID
    name: str
    hint: str = Field(description="The key's kind and last four characters, to recognise it.")
    site_ids: list[uuid.UUID]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class StatsKeyCreated(StatsKeyRead):
    key: str = Field(description="The key itself: shown this once, never again.")


def _read(key: AnalyticsStatsKey) -> StatsKeyRead:
    return StatsKeyRead(
        id=key.id,
        name=key.name,
        hint=key.hint,
        site_ids=[uuid.UUID(site) for site in key.site_ids],
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


async def create_key(
    session: AsyncSession, platform: Platform, principal: Principal, data: StatsKeyCreate, actor: audit.Actor
) -> tuple[AnalyticsStatsKey, str]:
    """A new key for the caller over sites they read (each checked: 404 for one they may not)."""
    site_ids = list(dict.fromkeys(data.site_ids))
    for site_id in site_ids:
        await access_site(session, platform, principal, site_id, SITE_READ)
    token = tokens.new_token(STATS_KEY, uuid.uuid4())
    key = AnalyticsStatsKey(
        id=token.id,
        user_id=principal.id,
        name=data.name,
        hint=token.hint,
        secret_hash=token.secret_hash,
        site_ids=[str(site_id) for site_id in site_ids],
    )
    session.add(key)
    await session.flush()
    audit.record(
        session, actor, "analytics.stats_key.create", resource_type="analytics.stats_key", resource_id=key.id,
        name=data.name, sites=key.site_ids,
    )  # fmt: skip
    return key, str(token)


async def revoke_key(
    session: AsyncSession, platform: Platform, principal: Principal, key_id: uuid.UUID, actor: audit.Actor
) -> None:
    key = await session.get(AnalyticsStatsKey, key_id)
    if key is None or key.user_id != principal.id:
        raise KeyNotFound()
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        forget_on_commit(session, platform.principals, key.user_id)
        audit.record(
            session,
            actor,
            "analytics.stats_key.revoke",
            resource_type="analytics.stats_key",
            resource_id=key.id,
        )


router = APIRouter(
    prefix="/api/analytics/keys",
    tags=["analytics"],
    responses=problem_responses(400, 401, 403, 404, 422, 429),
)
Session = Annotated[AsyncSession, Depends(db_session)]
Owner = Annotated[Principal, Depends(require_user(ANALYTICS_USE))]


@router.post("", status_code=201, summary="Make a read-only Stats API key for some of your sites")
async def create_stats_key(
    data: StatsKeyCreate, request: Request, session: Session, principal: Owner
) -> StatsKeyCreated:
    key, raw = await create_key(
        session, get_platform(request), principal, data, request_actor(request, principal)
    )
    return StatsKeyCreated(**_read(key).model_dump(), key=raw)


@router.get("", summary="Your Stats API keys")
async def list_stats_keys(session: Session, principal: Owner) -> list[StatsKeyRead]:
    keys = await session.scalars(
        select(AnalyticsStatsKey)
        .where(AnalyticsStatsKey.user_id == principal.id)
        .order_by(AnalyticsStatsKey.created_at.desc())
    )
    return [_read(key) for key in keys]


@router.delete("/{key_id}", status_code=204, summary="Revoke one of your Stats API keys")
async def revoke_stats_key(
    key_id: Annotated[uuid.UUID, Path(description="The key's id.")],
    request: Request,
    session: Session,
    principal: Owner,
) -> Response:
    await revoke_key(session, get_platform(request), principal, key_id, request_actor(request, principal))
    return Response(status_code=204)
