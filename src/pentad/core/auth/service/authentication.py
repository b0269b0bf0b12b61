"""Who is calling: bearer tokens, API keys, service tokens, app credential schemes and browser cookies
turned into Principals, through the principal cache."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth import repository
from pentad.core.auth import tokens as tok
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.models import AuthSession, User
from pentad.core.auth.permissions import ALL_SCOPES
from pentad.core.auth.principal import Principal
from pentad.core.auth.service.base import BROWSER, LAST_USED_RESOLUTION, AuthBase
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import on_commit


class Authentication(AuthBase):
    async def authenticate_bearer(self, raw: str) -> Principal:
        async def verify() -> tuple[Principal, datetime | None]:
            kind = tok.token_kind(raw)
            if kind == tok.API_KEY:
                return await self._authenticate_api_key(raw)
            if kind == tok.SERVICE_TOKEN:
                return await self._authenticate_service_token(raw)
            if scheme := self.platform.credential_schemes.get(kind):
                return await scheme.authenticate(self.session, self.platform, raw)
            return await self._authenticate_access_token(raw)

        return await self.platform.principals.get_or_load(raw, verify)

    async def _authenticate_access_token(self, raw: str) -> tuple[Principal, datetime]:
        claims = tok.read_jwt(
            self.platform.signing_secret, raw, issuer=self.settings.issuer, audience=tok.ACCESS_AUDIENCE
        )
        if claims is None or "sid" not in claims:
            raise InvalidToken()
        try:
            session_id = uuid.UUID(str(claims["sid"]))
        except ValueError:
            raise InvalidToken() from None
        auth_session, user = await self._live_session(session_id)
        if str(user.id) != claims["sub"]:
            raise InvalidToken()
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        return self._user_principal(user, "access_token", auth_session.id, auth_session), expires_at

    async def authenticate_cookie(self, raw: str) -> Principal:
        async def verify() -> tuple[Principal, datetime | None]:
            token = tok.parse_token(raw, tok.BROWSER_SESSION)
            if token is None:
                raise InvalidToken()
            auth_session, user = await self._live_session(token.id)
            if auth_session.kind != BROWSER or not auth_session.secret_hash:
                raise InvalidToken()
            if not tok.secret_matches(token.secret, auth_session.secret_hash):
                raise InvalidToken()
            principal = self._user_principal(user, "session", auth_session.id, auth_session)
            return principal, auth_session.expires_at

        return await self.platform.principals.get_or_load(raw, verify)

    async def _live_session(self, session_id: uuid.UUID) -> tuple[AuthSession, User]:
        found = await repository.get_session_with_user(self.session, session_id)
        if found is None:
            raise InvalidToken()
        auth_session, user = found
        if auth_session.revoked_at is not None or auth_session.expires_at <= utcnow() or not user.is_active:
            raise InvalidToken()
        return auth_session, user

    def _user_principal(
        self, user: User, via: str, credential_id: uuid.UUID, auth_session: AuthSession | None = None,
        scopes: frozenset[str] | None = None, named_scopes: frozenset[str] = frozenset(),
    ) -> Principal:  # fmt: skip
        # An API key holds an explicit permission (account security) only when its scopes name it: `*`
        # alone does not imply it.
        permissions = self.permissions_of(user)
        if scopes is not None:
            permissions = permissions & scopes
        elif via == "api_key":
            permissions = permissions - (self.platform.permissions.explicit_scopes - named_scopes)
        return Principal(
            kind="user",
            id=user.id,
            label=user.email,
            roles=frozenset(user.roles),
            permissions=permissions,
            via=via,
            credential_id=credential_id,
            session_id=auth_session.id if auth_session else None,
            mfa=bool(auth_session and auth_session.mfa),
            verified_at=auth_session.verified_at if auth_session else None,
            scopes=scopes,
            display_name=user.display_name,
            two_factor_enabled=user.totp_enabled,
        )

    def _touch_later(
        self,
        touch: Callable[[AsyncSession, uuid.UUID, datetime], Awaitable[None]],
        row_id: uuid.UUID,
        now: datetime,
    ) -> None:
        """Record last use in a transaction of its own after the request's commits, best effort: a read-only
        request must not fail, or take the write lock, because of this bookkeeping."""
        database = self.platform.database

        async def record() -> None:
            async with database.transaction() as session:
                await touch(session, row_id, now)

        on_commit(self.session, record)

    async def _authenticate_api_key(self, raw: str) -> tuple[Principal, datetime | None]:
        token = tok.parse_token(raw, tok.API_KEY)
        found = await repository.get_api_key_with_user(self.session, token.id) if token else None
        if token is None or found is None:
            raise InvalidToken()
        key, user = found
        now = utcnow()
        if (
            not tok.secret_matches(token.secret, key.secret_hash)
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= now)
            or not user.is_active
        ):
            raise InvalidToken()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            self._touch_later(repository.touch_api_key, key.id, now)
        named = frozenset(key.scopes)
        scopes = None if ALL_SCOPES in named else named
        principal = self._user_principal(user, "api_key", key.id, scopes=scopes, named_scopes=named)
        return principal, key.expires_at

    async def _authenticate_service_token(self, raw: str) -> tuple[Principal, datetime | None]:
        token = tok.parse_token(raw, tok.SERVICE_TOKEN)
        stored = await repository.get_service_token(self.session, token.id) if token else None
        if token is None or stored is None:
            raise InvalidToken()
        now = utcnow()
        if (
            not tok.secret_matches(token.secret, stored.secret_hash)
            or stored.revoked_at is not None
            or (stored.expires_at is not None and stored.expires_at <= now)
        ):
            raise InvalidToken()
        if stored.last_used_at is None or now - stored.last_used_at > LAST_USED_RESOLUTION:
            self._touch_later(repository.touch_service_token, stored.id, now)
        return Principal(
            kind="service",
            id=stored.id,
            label=f"service:{stored.name}",
            roles=frozenset(),
            permissions=frozenset(stored.scopes),
            via="service_token",
            credential_id=stored.id,
            scopes=frozenset(stored.scopes),
        ), stored.expires_at
