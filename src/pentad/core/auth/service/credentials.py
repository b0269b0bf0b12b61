"""API keys of users and service tokens of machines: created with checked scopes, listed, revoked."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import repository
from pentad.core.auth import tokens as tok
from pentad.core.auth.exceptions import CredentialNotFound, InvalidScope, NameTaken
from pentad.core.auth.models import ApiKey, ServiceToken, User
from pentad.core.auth.permissions import ALL_SCOPES, UnknownPermission
from pentad.core.auth.principal import Principal
from pentad.core.auth.service.base import AuthBase
from pentad.core.db.base import utcnow


class Credentials(AuthBase):
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
