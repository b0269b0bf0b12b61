"""Accounts, global roles and per-resource grants, and the permission checks on them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy.exc import IntegrityError

from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import passwords, repository
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.exceptions import (
    CredentialNotFound,
    EmailTaken,
    InvalidEmailAddress,
    LastAdmin,
    UserNotFound,
)
from pentad.core.auth.models import Grant, User
from pentad.core.auth.permissions import ADMIN, MEMBER, Permission, UnknownRole
from pentad.core.auth.principal import Principal
from pentad.core.auth.service.base import AuthBase
from pentad.core.db.base import utcnow
from pentad.core.emails import InvalidEmail, check_email, normalise_email
from pentad.core.errors import BadRequest, PermissionDenied


class UserAdministration(AuthBase):
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
        if changes.keys() & {"roles", "is_active"}:
            self._rights_changed(user.id)
        elif changes:  # the name only: cached principals carry it, realtime rights are unchanged
            forget_on_commit(self.session, self.platform.principals, user.id)
        if changes:
            audit.record(
                self.session, actor, "user.update", resource_type="user", resource_id=user.id, **changes
            )
        return user

    async def _ensure_another_admin(self, user_id: uuid.UUID) -> None:
        if not await repository.has_active_user_with_role(self.session, ADMIN, excluding=user_id):
            raise LastAdmin()

    async def ensure_first_admin(self, email: str, password: str) -> User | None:
        """Create an admin when the platform has no active admin; None when one exists."""
        if await repository.has_active_user_with_role(self.session, ADMIN):
            return None
        return await self.create_user(
            email=email,
            password=password,
            roles=[ADMIN, MEMBER],
            display_name="Administrator",
            actor=audit.SYSTEM,
        )

    def _check_roles(self, roles: Iterable[str]) -> list[str]:
        try:
            return sorted({self.platform.permissions.check_role(role) for role in roles})
        except UnknownRole as exc:
            raise BadRequest(f"Unknown role {exc}.", code="unknown_role") from None

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
