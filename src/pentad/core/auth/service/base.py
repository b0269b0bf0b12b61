"""What every area of the accounts service shares: the session and platform, the checks of a typed password
or second factor under the account's budget, recent verification, and forgetting changed rights."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import passwords, repository, totp
from pentad.core.auth import tokens as tok
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.exceptions import (
    InvalidCredentials,
    InvalidSecondFactor,
    ReverificationRequired,
    UserNotFound,
    WeakPassword,
)
from pentad.core.auth.models import AuthSession, User
from pentad.core.auth.permissions import ACCOUNT_SECURITY, INTERACTIVE
from pentad.core.auth.principal import Principal
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import commit_even_on_error
from pentad.core.platform import Platform
from pentad.core.realtime.publish import recheck

logger = structlog.get_logger("pentad.auth")

BROWSER = "browser"
API = "api"
MFA_TOKEN_TTL = 300
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    session_id: uuid.UUID


@dataclass(frozen=True)
class BrowserSession:
    session: AuthSession
    cookie_value: str


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    otpauth_uri: str
    qr_svg: str


class AuthBase:
    """Never commits: the caller (a request, a job, a CLI command) owns the transaction."""

    def __init__(self, session: AsyncSession, platform: Platform) -> None:
        self.session = session
        self.platform = platform
        self.settings = platform.settings.auth

    async def get_user(self, user_id: uuid.UUID) -> User:
        user = await repository.get_user(self.session, user_id)
        if user is None:
            raise UserNotFound()
        return user

    def permissions_of(self, user: User) -> frozenset[str]:
        """What the user's roles allow, plus looking after their own account's security (every user)."""
        return self.platform.permissions.permissions_for_roles(user.roles) | {ACCOUNT_SECURITY.key}

    def _rights_changed(self, subject_id: uuid.UUID) -> None:
        """A user's or service token's credentials or rights changed: drop its cached principals, and once
        this commits re-check its realtime connections on every node (a revoked key's socket closes, a lost
        grant ends the subscriptions it allowed)."""
        forget_on_commit(self.session, self.platform.principals, subject_id)
        recheck(self.session, [subject_id])

    def _check_password(self, password: str, email: str) -> None:
        problem = passwords.password_problem(
            password, min_length=self.settings.password_min_length, email=email
        )
        if problem:
            raise WeakPassword(problem)

    async def _revoke_sessions(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        reason: str,
        session_id: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> int:
        self._rights_changed(user_id)
        return await repository.revoke_sessions(
            self.session, user_id, now=now, reason=reason, session_id=session_id, keep=keep
        )

    async def _spend_account_budget(self, user: User, actor: Actor) -> None:
        """Every check of a password or second factor counts against the same budgets as a login attempt:
        per account and per client address (429 once spent)."""
        limits = self.platform.settings.ratelimit
        await self.platform.limiter.enforce(
            limits.login_per_address, "login-address", actor.ip_address or "-"
        )
        await self.platform.limiter.enforce(limits.login_per_account, "login-account", user.email)

    async def _check_current_password(self, user: User, password: str, actor: Actor) -> None:
        """The account's password, re-entered by a signed-in user: budgeted like a login, failures audited."""
        await self._spend_account_budget(user, actor)
        if not await passwords.verify_password(password, user.password_hash):
            audit.record(
                self.session, actor, "auth.password_check_failed", resource_type="user", resource_id=user.id
            )
            commit_even_on_error(self.session)
            raise InvalidCredentials()

    async def verify_second_factor(self, user: User, code: str, actor: Actor) -> None:
        """Accept a fresh TOTP code (never one already used) or an unused recovery code, within the
        account's login budget."""
        await self._spend_account_budget(user, actor)
        if user.totp_secret and user.totp_enabled:
            secret = self._decrypt_totp(user)
            step = totp.matching_step(secret, code)
            if step is not None and (user.totp_last_step is None or step > user.totp_last_step):
                user.totp_last_step = step
                return
            normalised = totp.normalise_recovery_code(code)
            for recovery in await repository.list_unused_recovery_codes(self.session, user.id):
                if tok.secret_matches(normalised, recovery.code_hash):
                    recovery.used_at = utcnow()
                    audit.record(
                        self.session,
                        actor,
                        "auth.recovery_code_used",
                        resource_type="user",
                        resource_id=user.id,
                    )
                    return
        audit.record(
            self.session, actor, "auth.second_factor_failed", resource_type="user", resource_id=user.id
        )
        commit_even_on_error(self.session)
        raise InvalidSecondFactor()

    def _decrypt_totp(self, user: User) -> str:
        assert user.totp_secret is not None
        return self.platform.keyring.decrypt(
            user.totp_secret, context=column_context("users", "totp_secret", user.id)
        )

    def recently_verified(self, principal: Principal) -> bool:
        """Interactive sessions change account security only within `reverify_after` seconds of proving the
        password (sign-in or POST /api/me/verify). API keys that hold the explicit scope are not sessions."""
        if principal.via not in INTERACTIVE:
            return True
        verified = principal.verified_at
        return verified is not None and utcnow() - verified <= timedelta(seconds=self.settings.reverify_after)

    def require_recent_verification(self, principal: Principal) -> None:
        if not self.recently_verified(principal):
            raise ReverificationRequired()


def csrf_token(signing_secret: bytes, session_id: uuid.UUID) -> str:
    """Synchronizer token bound to the browser session (ASVS 4.2.2)."""
    return hmac.new(signing_secret, b"csrf:" + session_id.bytes, hashlib.sha256).hexdigest()


def csrf_matches(signing_secret: bytes, session_id: uuid.UUID, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(signing_secret, session_id), presented or "")


def _last_login_marker(user: User) -> str:
    return user.last_login_at.isoformat() if user.last_login_at else "never"
