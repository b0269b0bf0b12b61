"""Rules of accounts, sessions and credentials. Never commits: the caller owns the transaction."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import passwords, repository, totp
from pentad.core.auth import tokens as tok
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.exceptions import (
    CredentialNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidEmailAddress,
    InvalidScope,
    InvalidSecondFactor,
    InvalidToken,
    LastAdmin,
    NameTaken,
    RefreshTokenReused,
    ReverificationRequired,
    TwoFactorState,
    UserNotFound,
    WeakPassword,
)
from pentad.core.auth.models import (
    ApiKey,
    AuthSession,
    Grant,
    PasswordResetToken,
    RecoveryCode,
    RefreshToken,
    ServiceToken,
    User,
)
from pentad.core.auth.permissions import (
    ACCOUNT_SECURITY,
    ADMIN,
    ALL_SCOPES,
    INTERACTIVE,
    MEMBER,
    Permission,
    UnknownPermission,
    UnknownRole,
)
from pentad.core.auth.principal import Principal
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import commit_even_on_error, on_commit
from pentad.core.emails import InvalidEmail, check_email, normalise_email
from pentad.core.errors import BadRequest, PermissionDenied
from pentad.core.mail import enqueue_mail
from pentad.core.platform import Platform
from pentad.core.ratelimit import address_subject
from pentad.core.realtime.publish import recheck

logger = structlog.get_logger("pentad.auth")

BROWSER = "browser"
API = "api"
MFA_TOKEN_TTL = 300
LAST_USED_RESOLUTION = timedelta(seconds=60)

Touch = Callable[[AsyncSession, uuid.UUID, datetime], Awaitable[None]]


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


class AuthService:
    def __init__(self, session: AsyncSession, platform: Platform) -> None:
        self.session = session
        self.platform = platform
        self.settings = platform.settings.auth

    # ----------------------------------------------------------------- users

    async def create_user(
        self,
        *,
        email: str,
        password: str,
        actor: Actor,
        display_name: str | None = None,
        roles: Sequence[str] = (MEMBER,),
    ) -> User:
        try:
            email = check_email(email)
        except InvalidEmail as exc:
            raise InvalidEmailAddress(str(exc)) from None
        self._check_password(password, email)
        checked_roles = self._check_roles(roles)
        if await repository.get_user_by_email(self.session, email) is not None:
            raise EmailTaken()
        user = User(
            email=email,
            display_name=(display_name or email.split("@", 1)[0])[:120],
            password_hash=await passwords.hash_password(password),
            roles=checked_roles,
        )
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise EmailTaken() from exc
        audit.record(
            self.session, actor, "user.create", resource_type="user", resource_id=user.id, roles=checked_roles
        )
        return user

    async def get_user(self, user_id: uuid.UUID) -> User:
        user = await repository.get_user(self.session, user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def get_user_by_email(self, email: str) -> User:
        user = await repository.get_user_by_email(self.session, normalise_email(email))
        if user is None:
            raise UserNotFound()
        return user

    async def list_users(self, *, search: str | None, limit: int, offset: int) -> tuple[list[User], int]:
        return await repository.list_users(self.session, search=search, limit=limit, offset=offset)

    async def update_user(
        self,
        user_id: uuid.UUID,
        *,
        actor: Actor,
        display_name: str | None = None,
        is_active: bool | None = None,
        roles: Sequence[str] | None = None,
    ) -> User:
        user = await self.get_user(user_id)
        changes: dict[str, object] = {}
        losing_admin = (roles is not None and ADMIN not in roles) or is_active is False
        if ADMIN in user.roles and user.is_active and losing_admin:
            await self._ensure_another_admin(user.id)
        if display_name is not None and display_name != user.display_name:
            user.display_name = display_name
            changes["display_name"] = display_name
        if roles is not None:
            checked = self._check_roles(roles)
            if checked != sorted(user.roles):
                user.roles = checked
                changes["roles"] = checked
        if is_active is not None and is_active != user.is_active:
            user.is_active = is_active
            changes["is_active"] = is_active
            if not is_active:
                await self._revoke_sessions(user.id, now=utcnow(), reason="user_disabled")
        if changes:
            self._rights_changed(user.id)
            audit.record(
                self.session, actor, "user.update", resource_type="user", resource_id=user.id, **changes
            )
        return user

    async def _ensure_another_admin(self, user_id: uuid.UUID) -> None:
        admins = [
            u
            for u in await repository.list_active_users(self.session)
            if ADMIN in u.roles and u.id != user_id
        ]
        if not admins:
            raise LastAdmin()

    async def ensure_first_admin(self, email: str, password: str) -> User | None:
        """Create an admin when the platform has no active admin; None when one exists."""
        if any(ADMIN in u.roles for u in await repository.list_active_users(self.session)):
            return None
        return await self.create_user(
            email=email,
            password=password,
            roles=[ADMIN, MEMBER],
            display_name="Administrator",
            actor=audit.SYSTEM,
        )

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

    def _check_roles(self, roles: Iterable[str]) -> list[str]:
        try:
            return sorted({self.platform.permissions.check_role(role) for role in roles})
        except UnknownRole as exc:
            raise BadRequest(f"Unknown role {exc}.", code="unknown_role") from None

    def permissions_of(self, user: User) -> frozenset[str]:
        """What the user's roles allow, plus looking after their own account's security (every user)."""
        return self.platform.permissions.permissions_for_roles(user.roles) | {ACCOUNT_SECURITY.key}

    # --------------------------------------------------------------- grants

    async def grant(
        self, user_id: uuid.UUID, resource_type: str, resource_id: str, role: str, *, actor: Actor
    ) -> Grant:
        user = await self.get_user(user_id)
        try:
            self.platform.permissions.check_resource_role(resource_type, role)
        except UnknownRole:
            raise BadRequest(
                f"Unknown role {role!r} for resources of type {resource_type!r}.", code="unknown_role"
            ) from None
        existing = await repository.find_grant(self.session, user.id, resource_type, resource_id, role)
        if existing is not None:
            return existing
        grant = Grant(
            user_id=user.id,
            resource_type=resource_type,
            resource_id=resource_id,
            role=role,
            granted_by=uuid.UUID(actor.id) if actor.type == "user" and actor.id else None,
        )
        self.session.add(grant)
        await self.session.flush()
        audit.record(
            self.session, actor, "grant.create", resource_type=resource_type, resource_id=resource_id,
            user_id=str(user.id), role=role,
        )  # fmt: skip
        return grant

    async def revoke_grant(self, user_id: uuid.UUID, grant_id: uuid.UUID, *, actor: Actor) -> None:
        grant = await repository.get_grant(self.session, grant_id)
        if grant is None or grant.user_id != user_id:
            raise CredentialNotFound("grant")
        await self.session.delete(grant)
        self._rights_changed(user_id)
        audit.record(
            self.session, actor, "grant.delete", resource_type=grant.resource_type,
            resource_id=grant.resource_id, user_id=str(user_id), role=grant.role,
        )  # fmt: skip

    async def list_grants(self, user_id: uuid.UUID) -> list[Grant]:
        await self.get_user(user_id)
        return await repository.list_grants(self.session, user_id)

    async def can(
        self, principal: Principal, permission: Permission, resource_type: str, resource_id: str
    ) -> bool:
        """Whether the principal holds `permission` globally or through a grant on this resource."""
        if principal.has(permission):
            return True
        if not principal.is_user:
            return False
        if principal.scopes is not None and permission.key not in principal.scopes:
            return False
        roles = await repository.list_resource_grant_roles(
            self.session, principal.id, resource_type, resource_id
        )
        registry = self.platform.permissions
        return any(
            permission.key in registry.resource_role_permissions(resource_type, role) for role in roles
        )

    async def authorize(
        self, principal: Principal, permission: Permission, resource_type: str, resource_id: str
    ) -> None:
        if not await self.can(principal, permission, resource_type, resource_id):
            raise PermissionDenied()

    # ---------------------------------------------------------------- login

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
        self._rights_changed(user.id)
        audit.record(
            self.session, actor, "auth.reverify", resource_type="session", resource_id=principal.session_id
        )
        return dataclasses.replace(principal, verified_at=now)

    def verified_until(self, principal: Principal) -> datetime | None:
        if principal.verified_at is None:
            return None
        return principal.verified_at + timedelta(seconds=self.settings.reverify_after)

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

    # ------------------------------------------------------- authentication

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

    # -------------------------------------------------------------- passwords

    async def change_password(self, principal: Principal, current: str, new: str, actor: Actor) -> None:
        """A new password; every other session ends. API keys stay (they are credentials of their own,
        listed with their last use on the account page); a password *reset* revokes them too."""
        user = await self.get_user(principal.id)
        await self._check_current_password(user, current, actor)
        self._check_password(new, user.email)
        user.password_hash = await passwords.hash_password(new)
        await self._revoke_sessions(
            user.id, now=utcnow(), reason="password_changed", keep=principal.session_id
        )
        audit.record(self.session, actor, "auth.password_change", resource_type="user", resource_id=user.id)

    async def request_password_reset(self, email: str, actor: Actor) -> None:
        """E-mail a single-use reset link; answers the same whether or not the account exists."""
        email = normalise_email(email)
        await self.platform.limiter.enforce(
            self.platform.settings.ratelimit.login_per_address,
            "reset-address",
            address_subject(actor.ip_address or "-"),
        )
        await self.platform.limiter.enforce(
            self.platform.settings.ratelimit.login_per_account, "reset-account", email
        )
        user = await repository.get_user_by_email(self.session, email)
        if user is None or not user.is_active:
            return
        link = await self.new_password_reset_link(user, actor)
        # Queued in this transaction: the mail goes out only if the token is stored, and is retried.
        await enqueue_mail(
            self.session,
            self.platform.keyring,
            "password_reset",
            to=user.email,
            link=link,
            minutes=self.settings.password_reset_ttl // 60,
        )

    async def new_password_reset_link(self, user: User, actor: Actor) -> str:
        """A single-use reset link (older ones stop working). The API mails it; `pentad user reset-link`
        hands it to an operator when no mail relay is set up."""
        now = utcnow()
        await repository.expire_reset_tokens(self.session, user.id, now)
        token = tok.new_token(tok.PASSWORD_RESET, uuid.uuid4())
        self.session.add(
            PasswordResetToken(
                id=token.id,
                user_id=user.id,
                token_hash=token.secret_hash,
                expires_at=now + timedelta(seconds=self.settings.password_reset_ttl),
            )
        )
        audit.record(
            self.session, actor, "auth.password_reset_request", resource_type="user", resource_id=user.id
        )
        return f"{self.platform.settings.server.base_url.rstrip('/')}/reset-password?token={token}"

    async def reset_password(self, raw_token: str, new_password: str, actor: Actor) -> None:
        token = tok.parse_token(raw_token, tok.PASSWORD_RESET)
        stored = await repository.get_reset_token(self.session, token.id) if token else None
        now = utcnow()
        if (
            token is None
            or stored is None
            or not tok.secret_matches(token.secret, stored.token_hash)
            or stored.used_at is not None
            or stored.expires_at <= now
        ):
            raise InvalidToken("This reset link is invalid, expired or already used; ask for a new one.")
        user = await self.get_user(stored.user_id)
        self._check_password(new_password, user.email)
        stored.used_at = now
        user.password_hash = await passwords.hash_password(new_password)
        await self._revoke_sessions(user.id, now=now, reason="password_reset")
        # A reset is how a taken-over account is recovered: keys minted by whoever held it end too.
        keys = await repository.revoke_api_keys(self.session, user.id, now)
        audit.record(
            self.session, actor, "auth.password_reset", resource_type="user", resource_id=user.id,
            api_keys_revoked=keys,
        )  # fmt: skip

    # ----------------------------------------------------------- two-factor

    def _decrypt_totp(self, user: User) -> str:
        assert user.totp_secret is not None
        return self.platform.keyring.decrypt(
            user.totp_secret, context=column_context("users", "totp_secret", user.id)
        )

    async def begin_totp_setup(self, principal: Principal) -> TotpSetup:
        self.require_recent_verification(principal)
        user = await self.get_user(principal.id)
        if user.totp_enabled:
            raise TwoFactorState("Two-factor authentication is already on; turn it off first.")
        secret = totp.new_secret()
        user.totp_secret = self.platform.keyring.encrypt(
            secret, context=column_context("users", "totp_secret", user.id)
        )
        uri = totp.provisioning_uri(secret, account=user.email, issuer=self.settings.mfa_issuer)
        return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))

    async def enable_totp(self, principal: Principal, code: str, actor: Actor) -> list[str]:
        """Confirm the authenticator with a code; returns the recovery codes, shown once."""
        self.require_recent_verification(principal)
        user = await self.get_user(principal.id)
        if user.totp_enabled:
            raise TwoFactorState("Two-factor authentication is already on.")
        if not user.totp_secret:
            raise TwoFactorState("Start the set-up first.")
        await self._spend_account_budget(user, actor)
        step = totp.matching_step(self._decrypt_totp(user), code)
        if step is None:
            raise InvalidSecondFactor()
        user.totp_enabled_at = utcnow()
        user.totp_last_step = step
        codes = await self._replace_recovery_codes(user)
        self._rights_changed(user.id)
        audit.record(self.session, actor, "auth.2fa_enable", resource_type="user", resource_id=user.id)
        return codes

    async def disable_totp(self, principal: Principal, password: str, code: str, actor: Actor) -> None:
        """Turning the second factor off needs both factors: the password and a current code."""
        user = await self.get_user(principal.id)
        if not user.totp_enabled:
            raise TwoFactorState("Two-factor authentication is not on.")
        await self._check_current_password(user, password, actor)
        await self.verify_second_factor(user, code, actor)
        user.totp_secret = None
        user.totp_enabled_at = None
        user.totp_last_step = None
        await repository.delete_recovery_codes(self.session, user.id)
        self._rights_changed(user.id)
        audit.record(self.session, actor, "auth.2fa_disable", resource_type="user", resource_id=user.id)

    async def regenerate_recovery_codes(self, principal: Principal, code: str, actor: Actor) -> list[str]:
        user = await self.get_user(principal.id)
        if not user.totp_enabled:
            raise TwoFactorState("Two-factor authentication is not on.")
        await self.verify_second_factor(user, code, actor)
        codes = await self._replace_recovery_codes(user)
        audit.record(
            self.session, actor, "auth.recovery_codes_regenerate", resource_type="user", resource_id=user.id
        )
        return codes

    async def _replace_recovery_codes(self, user: User) -> list[str]:
        await repository.delete_recovery_codes(self.session, user.id)
        codes = totp.new_recovery_codes()
        for code in codes:
            self.session.add(RecoveryCode(user_id=user.id, code_hash=tok.hash_secret(code)))
        await self.session.flush()
        return codes

    async def unused_recovery_code_count(self, user_id: uuid.UUID) -> int:
        return len(await repository.list_unused_recovery_codes(self.session, user_id))

    # -------------------------------------------------------------- API keys

    def _check_scopes(self, scopes: Iterable[str], allowed: frozenset[str] | None) -> list[str]:
        try:
            checked = self.platform.permissions.check_scopes(scopes)
        except UnknownPermission as exc:
            raise InvalidScope(f"Unknown permission {exc}.") from None
        if allowed is not None:
            beyond = [s for s in checked if s != ALL_SCOPES and s not in allowed]
            if beyond:
                raise InvalidScope(f"You cannot grant {beyond[0]!r}: you do not hold it yourself.")
        return checked

    async def create_api_key(
        self,
        user: User,
        *,
        name: str,
        scopes: Sequence[str],
        expires_in_days: int | None,
        actor: Actor,
        creator: Principal | None = None,
    ) -> tuple[ApiKey, str]:
        if creator is not None:
            self.require_recent_verification(creator)
        if creator is not None and creator.scopes is not None and ALL_SCOPES in scopes:
            raise InvalidScope("A scoped credential cannot create an unscoped API key.")
        allowed = creator.permissions if creator is not None else self.permissions_of(user)
        checked = self._check_scopes(scopes, allowed)
        token = tok.new_token(tok.API_KEY, uuid.uuid4())
        expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        key = ApiKey(
            id=token.id,
            user_id=user.id,
            name=name,
            hint=token.hint,
            secret_hash=token.secret_hash,
            scopes=checked,
            expires_at=expires_at,
        )
        self.session.add(key)
        await self.session.flush()
        audit.record(
            self.session, actor, "api_key.create", resource_type="api_key", resource_id=key.id,
            user_id=str(user.id), name=name, scopes=checked,
        )  # fmt: skip
        return key, str(token)

    async def list_api_keys(self, user_id: uuid.UUID | None = None) -> list[ApiKey]:
        return await repository.list_api_keys(self.session, user_id)

    async def revoke_api_key(
        self, key_id: uuid.UUID, actor: Actor, *, owner_id: uuid.UUID | None = None
    ) -> ApiKey:
        key = await repository.get_api_key(self.session, key_id)
        if key is None or (owner_id is not None and key.user_id != owner_id):
            raise CredentialNotFound("API key")
        if key.revoked_at is None:
            self._rights_changed(key.user_id)
            key.revoked_at = utcnow()
            audit.record(self.session, actor, "api_key.revoke", resource_type="api_key", resource_id=key.id)
        return key

    # --------------------------------------------------------- service tokens

    async def create_service_token(
        self, *, name: str, scopes: Sequence[str], expires_in_days: int | None, actor: Actor
    ) -> tuple[ServiceToken, str]:
        checked = [s for s in self._check_scopes(scopes, None) if s != ALL_SCOPES]
        if await repository.get_service_token_by_name(self.session, name) is not None:
            raise NameTaken(f"A service token named {name!r} already exists.")
        token = tok.new_token(tok.SERVICE_TOKEN, uuid.uuid4())
        stored = ServiceToken(
            id=token.id,
            name=name,
            hint=token.hint,
            secret_hash=token.secret_hash,
            scopes=checked,
            created_by=uuid.UUID(actor.id) if actor.type == "user" and actor.id else None,
            expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        self.session.add(stored)
        await self.session.flush()
        audit.record(
            self.session, actor, "service_token.create", resource_type="service_token", resource_id=stored.id,
            name=name, scopes=checked,
        )  # fmt: skip
        return stored, str(token)

    async def list_service_tokens(self) -> list[ServiceToken]:
        return await repository.list_service_tokens(self.session)

    async def revoke_service_token(self, token_id: uuid.UUID, actor: Actor) -> None:
        stored = await repository.get_service_token(self.session, token_id)
        if stored is None:
            raise CredentialNotFound("service token")
        if stored.revoked_at is None:
            self._rights_changed(stored.id)
            stored.revoked_at = utcnow()
            audit.record(
                self.session,
                actor,
                "service_token.revoke",
                resource_type="service_token",
                resource_id=stored.id,
            )

    # ------------------------------------------------------------------ CSRF

    def csrf_token(self, session_id: uuid.UUID) -> str:
        return csrf_token(self.platform.signing_secret, session_id)


def csrf_token(signing_secret: bytes, session_id: uuid.UUID) -> str:
    """Synchronizer token bound to the browser session (ASVS 4.2.2)."""
    return hmac.new(signing_secret, b"csrf:" + session_id.bytes, hashlib.sha256).hexdigest()


def csrf_matches(signing_secret: bytes, session_id: uuid.UUID, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(signing_secret, session_id), presented or "")


def _last_login_marker(user: User) -> str:
    return user.last_login_at.isoformat() if user.last_login_at else "never"
