"""Changing a password, and resetting a forgotten one by a single-use link."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import passwords, repository
from pentad.core.auth import tokens as tok
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.models import PasswordResetToken, User
from pentad.core.auth.principal import Principal
from pentad.core.auth.service.base import AuthBase
from pentad.core.db.base import utcnow
from pentad.core.emails import normalise_email
from pentad.core.mail import enqueue_mail
from pentad.core.ratelimit import address_subject


class PasswordChanges(AuthBase):
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
