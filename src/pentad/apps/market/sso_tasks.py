"""Jobs that keep linked characters' SSO tokens alive (core jobs; spec.py adds JOBS and CRON).

- `market.check_tokens` (cron, hourly): every character in `ok` whose last access token was issued more
  than REFRESH_AFTER ago gets a `market.refresh_token` job (one per character: dedupe key), so a revoked
  link shows `needs_reauth` to its user within hours, not at the next sync; login states expired for a
  day are deleted.
- `market.refresh_token` `{"character": <link id>}`: refresh one character's tokens (rotation stored; a
  refused token sets `needs_reauth`). The SSO being down is a wait (`RetryLater`), not a failure.
- `market.mail_reauth` `{"character": <link id>}`: e-mail the user that the character needs linking again
  (queued once per transition to `needs_reauth`, beside a `character.status` event on the user's topic);
  nothing when it was linked again meanwhile, or the account is gone, inactive or has no address.
- `market.revoke_token` (secret `{"token"}`): revoke a refresh token whose character was unlinked while
  the SSO was down; retried with backoff, dead-lettered after 8 attempts. The token is encrypted in the
  job row and deleted on success.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import delete, or_, select

from pentad.apps.market.actions import characters
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.exceptions import SsoNotConfigured, SsoUnavailable
from pentad.apps.market.models import MarketCharacter, MarketSsoState
from pentad.apps.market.sso import InvalidGrant, SsoError
from pentad.apps.market.sso import SsoUnavailable as SsoDown
from pentad.core.audit import SYSTEM
from pentad.core.auth.service import AuthService
from pentad.core.context import JobContext
from pentad.core.db.base import utcnow
from pentad.core.errors import NotFound
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import CronSpec, JobSpec, RetryLater
from pentad.core.mail import enqueue_mail
from pentad.core.platform import Platform

logger = structlog.get_logger("pentad.market.sso")

CHECK_TOKENS = "market.check_tokens"
REFRESH_TOKEN = "market.refresh_token"  # noqa: S105 - a job name
REVOKE_TOKEN = characters.REVOKE_JOB
REFRESH_AFTER = timedelta(hours=12)
"""A character whose last access token was issued longer ago than this is refreshed by the hourly check.
(Access tokens live 20 minutes, so `access_expires_at` tells when the last refresh was.)"""
SSO_DOWN_WAIT = 300.0
STATE_KEEP = timedelta(days=1)
"""Expired login states are deleted by the hourly check this long after they expired."""


async def check_tokens(context: JobContext, payload: dict[str, Any]) -> None:
    now = utcnow()
    cutoff = now - REFRESH_AFTER
    async with context.platform.database.transaction() as session:
        # Logins started and never finished (a user's next start clears their own too).
        await session.execute(delete(MarketSsoState).where(MarketSsoState.expires_at < now - STATE_KEEP))
        due = await session.scalars(
            select(MarketCharacter.id).where(
                MarketCharacter.status == characters.OK,
                MarketCharacter.refresh_token.is_not(None),
                or_(MarketCharacter.access_expires_at.is_(None), MarketCharacter.access_expires_at < cutoff),
            )
        )
        for link_id in due.all():
            await enqueue(
                session, REFRESH_TOKEN, {"character": str(link_id)}, dedupe_key=f"{REFRESH_TOKEN}:{link_id}"
            )


async def refresh_token(context: JobContext, payload: dict[str, Any]) -> None:
    link_id = uuid.UUID(str(payload["character"]))
    async with context.platform.database.transaction() as session:
        market = MarketContext(session, context.platform, None, SYSTEM)
        character = await characters.lock_character(market, link_id)
        if character is None:
            return  # unlinked meanwhile
        try:
            await characters.do_refresh(market, character)
        except SsoNotConfigured:
            logger.warning("market_sso_not_configured", job=REFRESH_TOKEN)
        except SsoUnavailable:
            raise RetryLater(SSO_DOWN_WAIT, "EVE SSO unavailable") from None


REAUTH_MAIL_TEMPLATE = "market_reauth"


async def mail_reauth(context: JobContext, payload: dict[str, Any]) -> None:
    platform = context.platform
    assert isinstance(platform, Platform)
    async with platform.database.transaction() as session:
        character = await session.get(MarketCharacter, uuid.UUID(str(payload["character"])))
        if character is None or character.status != characters.NEEDS_REAUTH:
            return  # unlinked or linked again meanwhile
        try:
            user = await AuthService(session, platform).get_user(character.user_id)
        except NotFound:
            return
        if not user.is_active or not user.email:
            return
        await enqueue_mail(
            session,
            platform.keyring,
            REAUTH_MAIL_TEMPLATE,
            to=user.email,
            name=user.display_name,
            character=character.name,
            link=platform.base_url.rstrip("/") + "/market",
        )


async def revoke_token(context: JobContext, payload: dict[str, Any]) -> None:
    token = str(context.secret()["token"])
    try:
        await characters.sso_client(context.platform).revoke(token)
    except (SsoNotConfigured, InvalidGrant):
        return
    except SsoDown:
        raise  # retried with backoff; dead after max_attempts (its message holds no token)
    except SsoError as refused:
        logger.error("market_sso_revoke_refused", error=refused.error, status=refused.status)
        raise


JOBS = [
    JobSpec(CHECK_TOKENS, check_tokens, concurrency=1, timeout=120),
    JobSpec(REFRESH_TOKEN, refresh_token, concurrency=4, timeout=60, max_attempts=5),
    JobSpec(characters.REAUTH_MAIL_JOB, mail_reauth, timeout=60, max_attempts=5),
    JobSpec(REVOKE_TOKEN, revoke_token, concurrency=2, timeout=60, max_attempts=8),
]
CRON = [CronSpec(CHECK_TOKENS, every=3600)]
