"""TOTP set-up, confirmation and removal, and recovery codes."""

from __future__ import annotations

import uuid

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import repository, totp
from pentad.core.auth import tokens as tok
from pentad.core.auth.exceptions import InvalidSecondFactor, TwoFactorState
from pentad.core.auth.models import RecoveryCode, User
from pentad.core.auth.principal import Principal
from pentad.core.auth.service.base import AuthBase, TotpSetup
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow


class TwoFactor(AuthBase):
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
