"""Linked EVE characters: linking through EVE SSO (PKCE), listing, unlinking, and keeping their refresh
tokens alive.

A user may link several characters. Linking: `do_start_link` makes a one-time state (stored hashed,
bound to the user and to the session or credential that started it) and a PKCE verifier (encrypted at
rest), and answers the SSO's authorize URL; the SSO sends the browser back to the callback, where
`do_complete_link` burns the state, trades the code for tokens, verifies the access token against the
SSO's JWKS and stores the character with its refresh token encrypted at rest (core crypto, bound to the
row). Access tokens are never stored: `do_refresh` gets a fresh one when ESI work needs it, and stores the
rotated refresh token. A refresh token the SSO refuses (revoked by the player, expired) or an owner hash
that changed (the character moved to another EVE account) puts the character in `needs_reauth`, shown to
the user, until they link it again. Tokens are never logged, echoed or put in an error.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import delete, select

from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.exceptions import (
    CharacterNotFound,
    SsoCodeRefused,
    SsoDenied,
    SsoFailed,
    SsoNotConfigured,
    SsoStateInvalid,
    SsoUnavailable,
)
from pentad.apps.market.models import MarketCharacter, MarketSsoState
from pentad.apps.market.permissions import CHARACTER_RESOURCE
from pentad.apps.market.schemas import CharacterRead
from pentad.apps.market.settings import MarketSettings
from pentad.apps.market.sso import (
    InvalidGrant,
    SsoClient,
    SsoConfig,
    SsoError,
    authorize_url,
    code_challenge,
    new_state,
    new_verifier,
)
from pentad.apps.market.sso import SsoUnavailable as SsoDown
from pentad.apps.market.sso_jwks import CharacterToken, JwksCache, JwksUnavailable, TokenInvalid
from pentad.apps.market.topics import CharacterStatus, user_topic
from pentad.core import audit
from pentad.core.auth.grants import delete_resource_grants, grant_role
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow, uuid7
from pentad.core.db.hooks import commit_even_on_error
from pentad.core.errors import BadRequest
from pentad.core.jobs.queue import SecretPayload, enqueue
from pentad.core.realtime.publish import publish

logger = structlog.get_logger("pentad.market.sso")

OK = "ok"
NEEDS_REAUTH = "needs_reauth"
REAUTH_MAIL_JOB = "market.mail_reauth"
"""The job mailing a user that a character of theirs must be linked again (sso_tasks.py)."""
REVOKE_JOB = "market.revoke_token"


# the per-process SSO clients -----------------------------------------------------------------------------


@dataclass
class SsoRuntime:
    """This process's HTTP client for the SSO and its cached JWKS (one per process: `SSO_RUNTIME`)."""

    http: httpx.AsyncClient
    jwks: JwksCache


async def _open_runtime(context: AppContext) -> SsoRuntime:
    settings = context.app_settings(MarketSettings)
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
    return SsoRuntime(http, JwksCache(settings.sso_base_url, http=http))


async def _close_runtime(runtime: SsoRuntime) -> None:
    await runtime.http.aclose()


SSO_RUNTIME = ResourceSpec("market.sso", _open_runtime, _close_runtime)


def sso_config(context: AppContext) -> SsoConfig:
    """The SSO application this deployment is registered as; SsoNotConfigured without a client id."""
    settings = context.app_settings(MarketSettings)
    if not settings.esi_client_id:
        raise SsoNotConfigured()
    return SsoConfig(
        base_url=settings.sso_base_url,
        client_id=settings.esi_client_id,
        client_secret=settings.esi_secret.get_secret_value() if settings.esi_secret else None,
        redirect_uri=context.base_url.rstrip("/") + settings.sso_callback_path,
        scopes=tuple(settings.scopes),
    )


def sso_client(context: AppContext) -> SsoClient:
    return SsoClient(sso_config(context), http=context.resource(SSO_RUNTIME).http)


def _token_context(character_id: uuid.UUID) -> str:
    return column_context("market_characters", "refresh_token", character_id)


def _verifier_context(state_hash: str) -> str:
    return column_context("market_sso_states", "code_verifier", state_hash)


def _state_hash(state: str, binding: str) -> str:
    """The stored form of a state: bound to the session (or credential) that started the login, so a state
    presented by anyone else matches no row."""
    return hashlib.sha256(f"{state}\x00{binding}".encode()).hexdigest()


def _binding(market: MarketContext) -> str:
    principal = market.principal
    assert principal is not None
    return str(principal.session_id or principal.credential_id)


def _user(market: MarketContext) -> uuid.UUID:
    if market.user_id is None:
        raise CharacterNotFound()
    return market.user_id


def check_return_to(value: str | None) -> str:
    """Where the browser goes after linking: a path on this site only (no open redirect)."""
    if not value:
        return "/market"
    if (
        not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or len(value) > 500
        or any(ord(char) < 0x21 or ord(char) == 0x7F for char in value)
    ):
        raise BadRequest("return_to must be a path on this site, e.g. /market.", code="bad_return_to")
    return value


# views ---------------------------------------------------------------------------------------------


def character_read(character: MarketCharacter) -> CharacterRead:
    return CharacterRead(
        id=character.id,
        character_id=character.character_id,
        name=character.name,
        status=NEEDS_REAUTH if character.status != OK else OK,
        scopes=list(character.scopes or []),
        linked_at=character.created_at,
        token_expires_at=character.access_expires_at,
    )


async def list_characters(market: MarketContext) -> list[CharacterRead]:
    """The caller's linked characters, by name."""
    user_id = _user(market)
    found = await market.session.scalars(
        select(MarketCharacter)
        .where(MarketCharacter.user_id == user_id)
        .order_by(MarketCharacter.name, MarketCharacter.character_id)
    )
    return [character_read(character) for character in found]


async def get_own_character(
    market: MarketContext, link_id: uuid.UUID, *, lock: bool = False
) -> MarketCharacter:
    """One of the caller's characters; another user's is CharacterNotFound (404: no existence leak)."""
    user_id = _user(market)
    query = select(MarketCharacter).where(MarketCharacter.id == link_id, MarketCharacter.user_id == user_id)
    if lock:
        query = query.with_for_update()
    character = await market.session.scalar(query)
    if character is None:
        raise CharacterNotFound()
    return character


# linking -------------------------------------------------------------------------------------------


async def do_start_link(market: MarketContext, *, return_to: str | None = None) -> str:
    """Begin linking a character: a one-time state and PKCE verifier are stored (state hashed, verifier
    encrypted), and the SSO's authorize URL is answered for the browser to go to."""
    user_id = _user(market)
    config = sso_config(market.platform)
    target = check_return_to(return_to)
    now = utcnow()
    await market.session.execute(
        delete(MarketSsoState).where(MarketSsoState.user_id == user_id, MarketSsoState.expires_at < now)
    )
    state, verifier = new_state(), new_verifier()
    digest = _state_hash(state, _binding(market))
    market.session.add(
        MarketSsoState(
            state_hash=digest,
            user_id=user_id,
            code_verifier=market.platform.keyring.encrypt(verifier, context=_verifier_context(digest)),
            scopes=list(config.scopes),
            return_to=target,
            expires_at=now + timedelta(seconds=market.settings.sso_state_ttl),
        )
    )
    await market.session.flush()
    return authorize_url(config, state=state, challenge=code_challenge(verifier))


async def _verify(context: AppContext, config: SsoConfig, access_token: str) -> CharacterToken:
    try:
        return await context.resource(SSO_RUNTIME).jwks.verify(access_token, config.client_id)
    except JwksUnavailable:
        raise SsoUnavailable() from None
    except TokenInvalid as error:
        logger.warning("market_sso_token_invalid", reason=error.reason)
        raise SsoFailed(f"access token {error.reason}") from None


async def do_complete_link(
    market: MarketContext, *, state: str | None, code: str | None, error: str | None = None
) -> tuple[MarketCharacter, str]:
    """The SSO's redirect back: check and burn the state, trade the code (with the verifier) for tokens,
    verify the access token and store the character. Answers the character and where to send the browser.
    The state is burned even when a later step fails (single use)."""
    user_id = _user(market)
    config = sso_config(market.platform)
    if not state or len(state) > 200:
        raise SsoStateInvalid()
    digest = _state_hash(state, _binding(market))
    row = await market.session.scalar(
        select(MarketSsoState).where(MarketSsoState.state_hash == digest).with_for_update()
    )
    now = utcnow()
    if row is None or row.user_id != user_id or row.used_at is not None or row.expires_at <= now:
        raise SsoStateInvalid()
    row.used_at = now
    await market.session.flush()
    commit_even_on_error(market.session)  # a failed exchange still burns the state
    if error is not None or not code:
        raise SsoDenied()
    verifier = market.platform.keyring.decrypt(row.code_verifier, context=_verifier_context(digest))
    client = SsoClient(config, http=market.platform.resource(SSO_RUNTIME).http)
    try:
        tokens = await client.exchange_code(code[:1000], verifier)
    except InvalidGrant:
        raise SsoCodeRefused() from None
    except SsoDown:
        raise SsoUnavailable() from None
    except SsoError as refused:
        logger.error("market_sso_refused", error=refused.error, status=refused.status)
        raise SsoFailed(refused.error or f"HTTP {refused.status}") from None
    token = await _verify(market.platform, config, tokens.access_token)
    # Only the state's burn is kept when something below fails: the character is written in a savepoint.
    async with market.session.begin_nested():
        character = await market.session.scalar(
            select(MarketCharacter)
            .where(MarketCharacter.user_id == user_id, MarketCharacter.character_id == token.character_id)
            .with_for_update()
        )
        created = character is None
        if character is None:
            character = MarketCharacter(id=uuid7(), user_id=user_id, character_id=token.character_id)
            market.session.add(character)
        elif character.owner_hash != token.owner_hash:
            logger.info("market_character_owner_changed", character_id=token.character_id)
        character.name = token.name
        character.owner_hash = token.owner_hash
        character.scopes = list(token.scopes)
        character.status = OK
        character.access_expires_at = token.expires_at
        character.refresh_token = market.platform.keyring.encrypt(
            tokens.refresh_token, context=_token_context(character.id)
        )
        await market.session.flush()
        if created:
            await grant_role(
                market.session, market.platform, user_id, CHARACTER_RESOURCE, character.id, "owner",
                actor=market.audit_actor,
            )  # fmt: skip
        audit.record(
            market.session,
            market.audit_actor,
            "market.character.link",
            resource_type=CHARACTER_RESOURCE,
            resource_id=character.id,
            character_id=token.character_id,
            relinked=not created,
        )
    return character, row.return_to or "/market"


async def do_delete_character(market: MarketContext, link_id: uuid.UUID) -> None:
    """Unlink one of the caller's characters: its refresh token is revoked at the SSO (later, by a job,
    when the SSO is down) and the row goes."""
    character = await get_own_character(market, link_id, lock=True)
    if character.refresh_token is not None:
        token = market.platform.keyring.decrypt(character.refresh_token, context=_token_context(character.id))
        await _revoke_or_queue(market, token)
    await delete_resource_grants(
        market.session, market.platform, CHARACTER_RESOURCE, character.id, actor=market.audit_actor
    )
    audit.record(
        market.session,
        market.audit_actor,
        "market.character.unlink",
        resource_type=CHARACTER_RESOURCE,
        resource_id=character.id,
        character_id=character.character_id,
    )
    await market.session.delete(character)
    await market.session.flush()


async def _revoke_or_queue(market: MarketContext, token: str) -> None:
    try:
        await sso_client(market.platform).revoke(token)
    except SsoNotConfigured:
        return
    except SsoDown:
        await enqueue(
            market.session,
            REVOKE_JOB,
            {},
            secret=SecretPayload(market.platform.keyring, {"token": token}),
        )
    except SsoError as refused:
        logger.error("market_sso_revoke_refused", error=refused.error, status=refused.status)


# refreshing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refreshed:
    """A fresh access token (kept in memory only) for the character, or None: the character needs reauth,
    or (`retry`) the token could not be checked now — the rotated refresh token is stored all the same."""

    access_token: str | None
    character: MarketCharacter
    retry: bool = False


async def do_refresh(market: MarketContext, character: MarketCharacter) -> Refreshed:
    """Trade the character's refresh token for a new access token and store the rotated refresh token.
    The caller locks the row (get_own_character(lock=True) or `lock_character`), so two processes never
    spend the same refresh token. A refused refresh token, an access token that fails its checks or a
    changed owner hash sets `needs_reauth` (the token is dropped); an unreachable SSO raises
    SsoUnavailable and changes nothing. Once the SSO has answered, nothing raises: the rotated refresh
    token (the old one is dead at the SSO) must reach the database with the caller's commit."""
    if character.status != OK or character.refresh_token is None:
        return Refreshed(None, character)
    config = sso_config(market.platform)
    old = market.platform.keyring.decrypt(character.refresh_token, context=_token_context(character.id))
    try:
        tokens = await SsoClient(config, http=market.platform.resource(SSO_RUNTIME).http).refresh(old)
    except InvalidGrant:
        await _needs_reauth(market, character, "refresh_refused")
        return Refreshed(None, character)
    except SsoDown:
        raise SsoUnavailable() from None
    except SsoError as refused:
        logger.error("market_sso_refused", error=refused.error, status=refused.status)
        raise SsoFailed(refused.error or f"HTTP {refused.status}") from None
    character.refresh_token = market.platform.keyring.encrypt(
        tokens.refresh_token, context=_token_context(character.id)
    )
    await market.session.flush()
    try:
        token = await market.platform.resource(SSO_RUNTIME).jwks.verify(tokens.access_token, config.client_id)
    except JwksUnavailable:
        logger.warning("market_sso_jwks_unavailable", character_id=character.character_id)
        return Refreshed(None, character, retry=True)
    except TokenInvalid as error:
        logger.warning("market_sso_token_invalid", reason=error.reason)
        await _needs_reauth(market, character, "token_invalid")
        return Refreshed(None, character)
    if token.character_id != character.character_id or token.owner_hash != character.owner_hash:
        await _needs_reauth(market, character, "owner_changed")
        return Refreshed(None, character)
    character.scopes = list(token.scopes)
    character.access_expires_at = token.expires_at
    await market.session.flush()
    return Refreshed(tokens.access_token, character)


async def _needs_reauth(market: MarketContext, character: MarketCharacter, reason: str) -> None:
    """The link is dead: the token is dropped and, on the transition only, the user is told — a
    `character.status` event on their own topic (after the commit) and an e-mail (REAUTH_MAIL_JOB)."""
    was = character.status
    character.status = NEEDS_REAUTH
    character.refresh_token = None
    await market.session.flush()
    if was != NEEDS_REAUTH:
        publish(
            market.session,
            user_topic(character.user_id),
            CharacterStatus(
                character=character.id,
                character_id=character.character_id,
                name=character.name,
                status=NEEDS_REAUTH,
                reason=reason,
            ),
        )
        await enqueue(
            market.session,
            REAUTH_MAIL_JOB,
            {"character": str(character.id)},
            dedupe_key=f"{REAUTH_MAIL_JOB}:{character.id}",
        )
    logger.info("market_character_needs_reauth", character_id=character.character_id, reason=reason)
    audit.record(
        market.session,
        market.audit_actor,
        "market.character.needs_reauth",
        resource_type=CHARACTER_RESOURCE,
        resource_id=character.id,
        reason=reason,
    )


async def lock_character(market: MarketContext, link_id: uuid.UUID) -> MarketCharacter | None:
    """A character by its link id, row-locked for a refresh (the system acting: jobs)."""
    return await market.session.scalar(
        select(MarketCharacter).where(MarketCharacter.id == link_id).with_for_update()
    )
