"""All SQL of accounts, sessions and credentials."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import String, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def list_users(
    session: AsyncSession, *, search: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[User], int]:
    query = select(User)
    if search:
        pattern = f"%{search.strip().lower()}%"
        query = query.where(or_(User.email.like(pattern), func.lower(User.display_name).like(pattern)))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    users = await session.scalars(query.order_by(User.email).limit(limit).offset(offset))
    return list(users.all()), total


async def has_active_user_with_role(
    session: AsyncSession, role: str, *, excluding: uuid.UUID | None = None
) -> bool:
    """Whether an active user (other than `excluding`) holds `role`: one indexed-free probe that stops at
    the first match, instead of loading every user. Roles are stored as a JSON list of plain names, so the
    quoted name matches exactly one element on every engine."""
    query = select(User.id).where(User.is_active.is_(True), cast(User.roles, String).like(f'%"{role}"%'))
    if excluding is not None:
        query = query.where(User.id != excluding)
    return (await session.scalar(query.limit(1))) is not None


async def get_session_with_user(
    session: AsyncSession, session_id: uuid.UUID
) -> tuple[AuthSession, User] | None:
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == session_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def list_active_sessions(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> list[AuthSession]:
    query = (
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
        .order_by(AuthSession.created_at.desc())
    )
    return list((await session.scalars(query)).all())


async def revoke_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    now: datetime,
    reason: str,
    session_id: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> int:
    statement = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )
    if session_id is not None:
        statement = statement.where(AuthSession.id == session_id)
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def get_refresh_token(session: AsyncSession, token_id: uuid.UUID) -> RefreshToken | None:
    return await session.get(RefreshToken, token_id)


async def mark_refresh_token_used(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> bool:
    """Atomically claim a refresh token; False when another request used it first."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def get_api_key_with_user(session: AsyncSession, key_id: uuid.UUID) -> tuple[ApiKey, User] | None:
    row = (
        await session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def list_api_keys(session: AsyncSession, user_id: uuid.UUID | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at.desc())
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list((await session.scalars(query)).all())


async def revoke_api_keys(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def mark_session_verified(session: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(verified_at=now))


async def touch_api_key(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


async def get_service_token(session: AsyncSession, token_id: uuid.UUID) -> ServiceToken | None:
    return await session.get(ServiceToken, token_id)


async def get_service_token_by_name(session: AsyncSession, name: str) -> ServiceToken | None:
    return await session.scalar(select(ServiceToken).where(ServiceToken.name == name))


async def list_service_tokens(session: AsyncSession) -> list[ServiceToken]:
    return list((await session.scalars(select(ServiceToken).order_by(ServiceToken.name))).all())


async def touch_service_token(session: AsyncSession, token_id: uuid.UUID, now: datetime) -> None:
    await session.execute(update(ServiceToken).where(ServiceToken.id == token_id).values(last_used_at=now))


async def get_reset_token(session: AsyncSession, token_id: uuid.UUID) -> PasswordResetToken | None:
    return await session.get(PasswordResetToken, token_id)


async def expire_reset_tokens(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )


async def list_unused_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> list[RecoveryCode]:
    query = select(RecoveryCode).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    return list((await session.scalars(query)).all())


async def delete_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> None:
    for code in (await session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user_id))).all():
        await session.delete(code)


async def list_grants(session: AsyncSession, user_id: uuid.UUID) -> list[Grant]:
    query = select(Grant).where(Grant.user_id == user_id).order_by(Grant.resource_type, Grant.resource_id)
    return list((await session.scalars(query)).all())


async def list_resource_grant_roles(
    session: AsyncSession, user_id: uuid.UUID, resource_type: str, resource_id: str
) -> list[str]:
    query = select(Grant.role).where(
        Grant.user_id == user_id, Grant.resource_type == resource_type, Grant.resource_id == resource_id
    )
    return list((await session.scalars(query)).all())


async def find_grant(
    session: AsyncSession, user_id: uuid.UUID, resource_type: str, resource_id: str, role: str
) -> Grant | None:
    return await session.scalar(
        select(Grant).where(
            Grant.user_id == user_id,
            Grant.resource_type == resource_type,
            Grant.resource_id == resource_id,
            Grant.role == role,
        )
    )


async def get_grant(session: AsyncSession, grant_id: uuid.UUID) -> Grant | None:
    return await session.get(Grant, grant_id)


async def list_granted_resource_ids(
    session: AsyncSession, user_id: uuid.UUID, resource_type: str, roles: Collection[str]
) -> list[str]:
    if not roles:
        return []
    query = (
        select(Grant.resource_id)
        .where(Grant.user_id == user_id, Grant.resource_type == resource_type, Grant.role.in_(sorted(roles)))
        .distinct()
        .order_by(Grant.resource_id)
    )
    return list((await session.scalars(query)).all())


async def list_user_resource_roles(
    session: AsyncSession, user_id: uuid.UUID, resource_type: str
) -> list[tuple[str, str]]:
    """(resource id, role) of every grant `user_id` holds on resources of `resource_type`."""
    query = select(Grant.resource_id, Grant.role).where(
        Grant.user_id == user_id, Grant.resource_type == resource_type
    )
    return [(resource_id, role) for resource_id, role in (await session.execute(query)).all()]


async def list_resource_grants(session: AsyncSession, resource_type: str, resource_id: str) -> list[Grant]:
    query = (
        select(Grant)
        .where(Grant.resource_type == resource_type, Grant.resource_id == resource_id)
        .order_by(Grant.created_at, Grant.id)
    )
    return list((await session.scalars(query)).all())
