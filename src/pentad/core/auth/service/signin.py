"""Signing in (password, second factor), sessions and their tokens, re-verification, logout."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import passwords, repository
from pentad.core.auth import tokens as tok
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.exceptions import (
    CredentialNotFound,
    InvalidCredentials,
    InvalidSecondFactor,
    InvalidToken,
    RefreshTokenReused,
)
from pentad.core.auth.models import AuthSession, RefreshToken, User
from pentad.core.auth.permissions import INTERACTIVE
from pentad.core.auth.principal import Principal
from pentad.core.auth.service.base import (
    API,
    BROWSER,
    MFA_TOKEN_TTL,
    AuthBase,
    BrowserSession,
    TokenPair,
    _last_login_marker,
    csrf_token,
    logger,
)
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import commit_even_on_error
from pentad.core.emails import normalise_email
from pentad.core.errors import BadRequest, PermissionDenied


class SignIn(AuthBase):
    async def check_password_login(self, email: str, password: str, actor: Actor) -> User:
        """Verify e-mail and password under the login rate limits; audit failures."""
        email = normalise_email(email)
        limits = self.platform.settings.ratelimit
        await self.platform.limiter.enforce(
            limits.login_per_address, "login-address", actor.ip_address or "-"
        )
        await self.platform.limiter.enforce(limits.login_per_account, "login-account", email)
        user = await repository.get_user_by_email(self.session, email)
        valid = await passwords.verify_password(password, user.password_hash if user else None)
        if user is None or not valid or not user.is_active:
            audit.record(
                self.session, actor, "auth.login_failed", resource_type="user",
                resource_id=user.id if user else None, email=email,
            )  # fmt: skip
            commit_even_on_error(self.session)
            raise InvalidCredentials()
        return user

    def issue_mfa_token(self, user: User) -> str:
        """The token of the second sign-in step. It names the user's last completed sign-in, so it is spent
        by the sign-in it completes (or by any other one): a replay with a fresh code is refused."""
        token, _ = tok.issue_jwt(
            self.platform.signing_secret,
            issuer=self.settings.issuer,
            audience=tok.MFA_AUDIENCE,
            subject=str(user.id),
            ttl=MFA_TOKEN_TTL,
            last=_last_login_marker(user),
        )
        return token

    async def complete_mfa(self, mfa_token: str, code: str, actor: Actor) -> User:
        claims = tok.read_jwt(
            self.platform.signing_secret, mfa_token, issuer=self.settings.issuer, audience=tok.MFA_AUDIENCE
        )
        if claims is None:
            raise InvalidToken("The sign-in step expired; enter your password again.")
        user = await repository.get_user(self.session, uuid.UUID(claims["sub"]))
        if user is None or not user.is_active:
            raise InvalidToken()
        if claims.get("last") != _last_login_marker(user):
            raise InvalidToken("This sign-in step was already used; enter your password again.")
        await self.verify_second_factor(user, code, actor)
        return user

    async def reverify(
        self, principal: Principal, password: str, code: str | None, actor: Actor
    ) -> Principal:
        """Prove again what sign-in proved (the password, and a second factor when it is on), so that the
        session may change account security for the next `reverify_after` seconds."""
        if principal.via not in INTERACTIVE or principal.session_id is None:
            raise PermissionDenied("Only a signed-in session can be re-verified.", code="session_required")
        user = await self.get_user(principal.id)
        await self._check_current_password(user, password, actor)
        if user.totp_enabled:
            if not code:
                raise InvalidSecondFactor()
            await self.verify_second_factor(user, code, actor)
        now = utcnow()
        await repository.mark_session_verified(self.session, principal.session_id, now)
        # Only the cached verification time changed: no rights, so no realtime re-check.
        forget_on_commit(self.session, self.platform.principals, user.id)
        audit.record(
            self.session, actor, "auth.reverify", resource_type="session", resource_id=principal.session_id
        )
        return dataclasses.replace(principal, verified_at=now)

    def verified_until(self, principal: Principal) -> datetime | None:
        if principal.verified_at is None:
            return None
        return principal.verified_at + timedelta(seconds=self.settings.reverify_after)

    async def start_api_session(
        self, user: User, actor: Actor, user_agent: str | None, *, mfa: bool
    ) -> TokenPair:
        auth_session = self._new_session(user, API, actor, user_agent, mfa=mfa)
        self.session.add(auth_session)
        await self.session.flush()
        refresh = await self._new_refresh_token(auth_session)
        audit.record(self.session, actor, "auth.login", resource_type="user", resource_id=user.id, kind=API)
        return self._token_pair(user, auth_session, refresh)

    async def start_browser_session(
        self, user: User, actor: Actor, user_agent: str | None, *, mfa: bool
    ) -> BrowserSession:
        auth_session = self._new_session(user, BROWSER, actor, user_agent, mfa=mfa)
        cookie = tok.new_token(tok.BROWSER_SESSION, auth_session.id)
        auth_session.secret_hash = cookie.secret_hash
        self.session.add(auth_session)
        await self.session.flush()
        audit.record(
            self.session, actor, "auth.login", resource_type="user", resource_id=user.id, kind=BROWSER
        )
        return BrowserSession(auth_session, str(cookie))

    def _new_session(
        self, user: User, kind: str, actor: Actor, user_agent: str | None, *, mfa: bool
    ) -> AuthSession:
        now = utcnow()
        user.last_login_at = now
        return AuthSession(
            id=uuid.uuid4(),
            user_id=user.id,
            kind=kind,
            expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl),
            last_seen_at=now,
            ip_address=actor.ip_address,
            user_agent=(user_agent or "")[:255] or None,
            mfa=mfa,
            verified_at=now,
        )

    async def _new_refresh_token(self, auth_session: AuthSession) -> tok.OpaqueToken:
        token = tok.new_token(tok.REFRESH_TOKEN, uuid.uuid4())
        self.session.add(RefreshToken(id=token.id, session_id=auth_session.id, token_hash=token.secret_hash))
        await self.session.flush()
        return token

    def _access_token(self, user_id: uuid.UUID, session_id: uuid.UUID) -> tuple[str, datetime]:
        return tok.issue_jwt(
            self.platform.signing_secret,
            issuer=self.settings.issuer,
            audience=tok.ACCESS_AUDIENCE,
            subject=str(user_id),
            ttl=self.settings.access_token_ttl,
            sid=str(session_id),
        )

    def _token_pair(self, user: User, auth_session: AuthSession, refresh: tok.OpaqueToken) -> TokenPair:
        access, expires = self._access_token(user.id, auth_session.id)
        return TokenPair(access, expires, str(refresh), auth_session.expires_at, auth_session.id)

    def session_access_token(self, principal: Principal) -> tuple[str, datetime]:
        """A short-lived access token for a browser session's own scripts (the realtime socket).

        It lives and dies with the cookie session it was minted from: logging out revokes both."""
        if principal.via != "session" or principal.session_id is None:
            raise PermissionDenied("Only a signed-in browser session can exchange its cookie for a token.")
        return self._access_token(principal.id, principal.session_id)

    async def refresh(self, raw_token: str, actor: Actor) -> TokenPair:
        """Rotate a refresh token. Presenting an already-rotated token revokes the whole family."""
        token = tok.parse_token(raw_token, tok.REFRESH_TOKEN)
        stored = await repository.get_refresh_token(self.session, token.id) if token else None
        if token is None or stored is None or not tok.secret_matches(token.secret, stored.token_hash):
            raise InvalidToken()
        found = await repository.get_session_with_user(self.session, stored.session_id)
        if found is None:
            raise InvalidToken()
        auth_session, user = found
        now = utcnow()
        if stored.used_at is not None or not await repository.mark_refresh_token_used(
            self.session, stored.id, now
        ):
            await self._revoke_sessions(user.id, now=now, reason="refresh_reuse", session_id=auth_session.id)
            audit.record(
                self.session, actor, "auth.refresh_reuse_detected", resource_type="session",
                resource_id=auth_session.id, user_id=str(user.id),
            )  # fmt: skip
            commit_even_on_error(self.session)
            logger.warning("refresh_token_reuse", session_id=str(auth_session.id), user_id=str(user.id))
            raise RefreshTokenReused()
        if auth_session.revoked_at is not None or auth_session.expires_at <= now or not user.is_active:
            raise InvalidToken()
        auth_session.last_seen_at = now
        auth_session.ip_address = actor.ip_address
        refresh = await self._new_refresh_token(auth_session)
        return self._token_pair(user, auth_session, refresh)

    async def logout(self, principal: Principal, actor: Actor) -> None:
        if principal.session_id is None:
            raise BadRequest(
                "Only a login session can be logged out; revoke API keys instead.", code="no_session"
            )
        await self._revoke_sessions(
            principal.id, now=utcnow(), reason="logout", session_id=principal.session_id
        )
        audit.record(
            self.session, actor, "auth.logout", resource_type="session", resource_id=principal.session_id
        )

    async def logout_everywhere(self, principal: Principal, actor: Actor) -> int:
        if not principal.is_user:
            raise PermissionDenied("Only users have sessions.")
        count = await self._revoke_sessions(principal.id, now=utcnow(), reason="logout_all")
        audit.record(
            self.session,
            actor,
            "auth.logout_all",
            resource_type="user",
            resource_id=principal.id,
            sessions=count,
        )
        return count

    async def list_sessions(self, user_id: uuid.UUID) -> list[AuthSession]:
        return await repository.list_active_sessions(self.session, user_id, utcnow())

    async def revoke_session(self, user_id: uuid.UUID, session_id: uuid.UUID, actor: Actor) -> None:
        count = await self._revoke_sessions(user_id, now=utcnow(), reason="revoked", session_id=session_id)
        if not count:
            raise CredentialNotFound("session")
        audit.record(
            self.session, actor, "auth.session_revoke", resource_type="session", resource_id=session_id
        )

    def csrf_token(self, session_id: uuid.UUID) -> str:
        return csrf_token(self.platform.signing_secret, session_id)
