"""Tenants ("chat apps"), their server keys, their users and the user tokens clients connect with.

Two bearer-token kinds belong to the chat app (core CredentialScheme):
- `pck_<id>_<secret>`: a tenant's server key, for the embedding product's backend (server API);
- `pcu_<JWT>`: a user token minted by the server API (or for a signed-in Pentad account), for clients.
Pentad's own accounts chat in the default tenant (PENTAD_CHAT__DEFAULT_TENANT) as a chat user linked to
their account, created on first use.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import ChatActor
from pentad.apps.chat.exceptions import ChatUserNotFound, TenantNotFound
from pentad.apps.chat.models import ChatRestriction, ChatServerKey, ChatTenant, ChatUser
from pentad.apps.chat.permissions import CHANNEL_MODERATE, CHAT_ADMIN, CHAT_SERVER, CHAT_USE
from pentad.apps.chat.settings import ChatSettings
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import tokens
from pentad.core.auth.cache import forget_on_commit
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemes import CredentialScheme
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.errors import Conflict, NotFound, PermissionDenied
from pentad.core.platform import Platform
from pentad.core.realtime.publish import recheck

SERVER_KEY = "pck"
USER_TOKEN = "pcu"  # noqa: S105 - a token prefix, not a secret
USER_TOKEN_AUDIENCE = "pentad:chat.user"  # noqa: S105
TENANT_PRINCIPAL = "chat_tenant"
USER_PRINCIPAL = "chat_user"
SERVER_KEY_CHECK_SECONDS = 60
ACTOR_ROWS = "chat.actor"
"""The principal cache's attachment (PrincipalCache.attach) holding a user token's chat user and tenant, so a
request with a cached credential reads neither: every change to either forgets the user (forget_on_commit;
the tenant's: everyone), which drops it with the principal, in every process."""
_HANDLE_CHARS = re.compile(r"[^a-z0-9_.\-]+")
ISSUED_CLAIM = "iat_us"
"""When a user token was minted, in microseconds since the epoch: `iat` counts whole seconds, too coarse to
tell a token minted just before a revocation from one minted just after (which must work at once)."""


# ---------------------------------------------------------------- credential schemes


async def _authenticate_server_key(
    session: AsyncSession, platform: AppContext, raw: str
) -> tuple[Principal, datetime]:
    token = tokens.parse_token(raw, SERVER_KEY)
    if token is None:
        raise InvalidToken()
    key = await repository.get_server_key(session, token.id)
    if key is None or key.revoked_at is not None or not tokens.secret_matches(token.secret, key.secret_hash):
        raise InvalidToken()
    tenant = await repository.get_tenant(session, key.tenant_id)
    if tenant is None or tenant.disabled_at is not None:
        raise InvalidToken()
    principal = Principal(
        kind=TENANT_PRINCIPAL,
        id=tenant.id,
        label=f"chat tenant {tenant.slug} ({key.name})",
        roles=frozenset(),
        permissions=frozenset({CHAT_SERVER.key}),
        via="chat_server_key",
        credential_id=key.id,
        display_name=tenant.name,
    )
    return principal, utcnow() + timedelta(seconds=SERVER_KEY_CHECK_SECONDS)


def _user_token_claims(platform: AppContext, raw: str) -> dict[str, object] | None:
    if not raw.startswith(USER_TOKEN + "_"):
        return None
    return tokens.read_jwt(
        platform.signing_secret,
        raw[len(USER_TOKEN) + 1 :],
        issuer=platform.token_issuer,
        audience=USER_TOKEN_AUDIENCE,
    )


async def _authenticate_user_token(
    session: AsyncSession, platform: AppContext, raw: str
) -> tuple[Principal, datetime]:
    claims = _user_token_claims(platform, raw)
    if claims is None:
        raise InvalidToken()
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise InvalidToken() from None
    user = await repository.get_user(session, user_id)
    if user is None or user.deactivated_at is not None or str(user.tenant_id) != claims.get("tid"):
        raise InvalidToken()
    issued = int(str(claims.get(ISSUED_CLAIM, int(str(claims["iat"])) * 1_000_000)))
    if user.tokens_valid_after is not None and issued < _microseconds(user.tokens_valid_after):
        raise InvalidToken()
    tenant = await repository.get_tenant(session, user.tenant_id)
    if tenant is None or tenant.disabled_at is not None:
        raise InvalidToken()
    principal = Principal(
        kind=USER_PRINCIPAL,
        id=user.id,
        label=f"{tenant.slug}:{user.external_id}",
        roles=frozenset(),
        permissions=frozenset({CHAT_USE.key}),
        via="chat_user_token",
        credential_id=user.id,
        display_name=user.name,
    )
    return principal, datetime.fromtimestamp(int(str(claims["exp"])), UTC)


def _user_token_expiry(platform: AppContext, raw: str) -> float | None:
    claims = _user_token_claims(platform, raw)
    return float(str(claims["exp"])) if claims else None


CREDENTIAL_SCHEMES = (
    CredentialScheme(SERVER_KEY, _authenticate_server_key),
    CredentialScheme(USER_TOKEN, _authenticate_user_token, _user_token_expiry),
)


def _microseconds(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def mint_user_token(platform: AppContext, user: ChatUser, ttl: int | None = None) -> schemas.UserToken:
    lifetime = ttl or platform.app_settings(ChatSettings).user_token_ttl
    jwt, expires = tokens.issue_jwt(
        platform.signing_secret,
        issuer=platform.token_issuer,
        audience=USER_TOKEN_AUDIENCE,
        subject=str(user.id),
        ttl=lifetime,
        tid=str(user.tenant_id),
        **{ISSUED_CLAIM: _microseconds(utcnow())},
    )
    return schemas.UserToken(
        token=f"{USER_TOKEN}_{jwt}", expires_at=expires, user=schemas.ChatUser.model_validate(user)
    )


# ---------------------------------------------------------------- tenants


class TenantService:
    """Tenant administration (Pentad admins) and the server API (a tenant's own backend)."""

    def __init__(self, session: AsyncSession, platform: Platform, actor: Actor) -> None:
        self.session = session
        self.platform = platform
        self.actor = actor

    async def create_tenant(self, data: schemas.TenantCreate) -> ChatTenant:
        if await repository.get_tenant_by_slug(self.session, data.slug) is not None:
            raise Conflict("A tenant with this slug exists.", code="tenant_exists")
        tenant = ChatTenant(slug=data.slug, name=data.name, blocked_words=[])
        self.session.add(tenant)
        await self.session.flush()
        audit.record(
            self.session,
            self.actor,
            "chat.tenant_created",
            resource_type="chat.tenant",
            resource_id=tenant.id,
        )
        return tenant

    async def get_tenant(self, tenant_id: uuid.UUID) -> ChatTenant:
        tenant = await repository.get_tenant(self.session, tenant_id)
        if tenant is None:
            raise TenantNotFound()
        return tenant

    async def update_tenant(self, tenant_id: uuid.UUID, data: schemas.TenantUpdate) -> ChatTenant:
        tenant = await self.get_tenant(tenant_id)
        if data.name is not None:
            tenant.name = data.name
        if data.blocked_words is not None:
            tenant.blocked_words = sorted({w.strip().lower() for w in data.blocked_words if w.strip()})
        if data.disabled is not None:
            tenant.disabled_at = utcnow() if data.disabled else None
        # Every cached chat actor of the tenant holds the tenant as it was (ACTOR_ROWS).
        forget_on_commit(self.session, self.platform.principals, None)
        await self.session.flush()
        audit.record(
            self.session,
            self.actor,
            "chat.tenant_updated",
            resource_type="chat.tenant",
            resource_id=tenant.id,
            changes=data.model_dump(exclude_none=True),
        )
        return tenant

    async def create_server_key(self, tenant_id: uuid.UUID, name: str) -> schemas.ServerKeyCreated:
        tenant = await self.get_tenant(tenant_id)
        key_id = uuid.uuid4()
        token = tokens.new_token(SERVER_KEY, key_id)
        created_by = uuid.UUID(self.actor.id) if self.actor.type == "user" and self.actor.id else None
        key = ChatServerKey(
            id=key_id,
            tenant_id=tenant.id,
            name=name,
            secret_hash=token.secret_hash,
            hint=token.hint,
            created_by=created_by,
        )
        self.session.add(key)
        await self.session.flush()
        audit.record(
            self.session,
            self.actor,
            "chat.server_key_created",
            resource_type="chat.tenant",
            resource_id=tenant.id,
            key_id=str(key.id),
            name=name,
        )
        return schemas.ServerKeyCreated(**schemas.ServerKey.model_validate(key).model_dump(), key=str(token))

    async def revoke_server_key(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
        key = await repository.get_server_key(self.session, key_id)
        if key is None or key.tenant_id != tenant_id:
            raise TenantNotFound()
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.session.flush()
            forget_on_commit(self.session, self.platform.principals, tenant_id)
            audit.record(
                self.session,
                self.actor,
                "chat.server_key_revoked",
                resource_type="chat.tenant",
                resource_id=tenant_id,
                key_id=str(key.id),
            )

    # ------------------------------------------------------------ users (server API)

    async def upsert_user(
        self, tenant: ChatTenant, external_id: str, data: schemas.UserUpsert
    ) -> tuple[ChatUser, bool]:
        user = await repository.get_user_by_external_id(self.session, tenant.id, external_id)
        created = user is None
        handle = (data.handle or (user.handle if user else None) or _handle_from(external_id)).lower()
        if await repository.handle_taken(self.session, tenant.id, handle, user.id if user else None):
            if data.handle:
                raise Conflict("Another user of this tenant has that handle.", code="handle_taken")
            handle = f"{handle[:50]}-{uuid.uuid4().hex[:6]}"
        if user is None:
            user = ChatUser(tenant_id=tenant.id, external_id=external_id, data={})
            self.session.add(user)
        user.name, user.handle, user.image_url, user.email = data.name, handle, data.image_url, data.email
        user.role, user.data = data.role, data.data
        await self.session.flush()
        if not created:
            forget_on_commit(self.session, self.platform.principals, user.id)
        return user, created

    async def get_user(self, tenant: ChatTenant, external_id: str) -> ChatUser:
        user = await repository.get_user_by_external_id(self.session, tenant.id, external_id)
        if user is None:
            raise ChatUserNotFound()
        return user

    async def set_user_active(self, tenant: ChatTenant, external_id: str, *, active: bool) -> ChatUser:
        user = await self.get_user(tenant, external_id)
        user.deactivated_at = None if active else utcnow()
        await self.session.flush()
        forget_on_commit(self.session, self.platform.principals, user.id)
        audit.record(
            self.session,
            self.actor,
            "chat.user_reactivated" if active else "chat.user_deactivated",
            resource_type="chat.user",
            resource_id=user.id,
        )
        return user

    async def revoke_user_tokens(self, tenant: ChatTenant, external_id: str) -> None:
        user = await self.get_user(tenant, external_id)
        user.tokens_valid_after = utcnow()
        await self.session.flush()
        forget_on_commit(self.session, self.platform.principals, user.id)
        audit.record(
            self.session,
            self.actor,
            "chat.user_tokens_revoked",
            resource_type="chat.user",
            resource_id=user.id,
        )

    # ------------------------------------------------------------ tenant-wide moderation (server API)

    async def restrict_tenant_wide(
        self, tenant: ChatTenant, external_id: str, kind: str, *, reason: str, duration: int | None
    ) -> ChatRestriction:
        user = await self.get_user(tenant, external_id)
        restriction = ChatRestriction(
            tenant_id=tenant.id,
            channel_id=None,
            user_id=user.id,
            kind=kind,
            reason=reason,
            expires_at=restriction_expiry(duration),
        )
        self.session.add(restriction)
        await self.session.flush()
        if kind == "ban":
            forget_on_commit(self.session, self.platform.principals, user.id)
            recheck(self.session, (user.id, user.pentad_user_id))
        audit.record(
            self.session,
            self.actor,
            f"chat.tenant_{kind}",
            resource_type="chat.user",
            resource_id=user.id,
            reason=reason,
        )
        return restriction

    async def lift_tenant_restriction(self, tenant: ChatTenant, restriction_id: uuid.UUID) -> None:
        restriction = await repository.get_restriction(self.session, restriction_id)
        if restriction is None or restriction.tenant_id != tenant.id or restriction.channel_id is not None:
            raise NotFound("No such tenant-wide restriction.", code="restriction_not_found")
        await self.session.delete(restriction)
        audit.record(
            self.session,
            self.actor,
            f"chat.tenant_{restriction.kind}_lifted",
            resource_type="chat.user",
            resource_id=restriction.user_id,
        )


def restriction_expiry(duration: int | None) -> datetime | None:
    """When a ban or mute of `duration` seconds given now ends; None: until lifted."""
    return utcnow() + timedelta(seconds=duration) if duration else None


def _handle_from(text: str) -> str:
    handle = _HANDLE_CHARS.sub("-", text.lower()).strip("-.") or "user"
    return handle[:60]


async def default_tenant(session: AsyncSession, platform: AppContext) -> ChatTenant:
    """The tenant Pentad's own accounts chat in, created on first use."""
    slug = platform.app_settings(ChatSettings).default_tenant
    tenant = await repository.get_tenant_by_slug(session, slug)
    if tenant is not None:
        return tenant
    try:
        async with session.begin_nested():
            tenant = ChatTenant(slug=slug, name="Pentad", blocked_words=[])
            session.add(tenant)
    except IntegrityError:
        found = await repository.get_tenant_by_slug(session, slug)
        assert found is not None
        return found
    return tenant


async def actor_for(session: AsyncSession, platform: AppContext, principal: Principal) -> ChatActor:
    """The chat user a request acts as: a user token's user, or a Pentad account's default-tenant user."""
    if principal.kind == USER_PRINCIPAL:
        principals = platform.principals
        cached = principals.attachment(principal, ACTOR_ROWS)
        if isinstance(cached, tuple):
            user, tenant = cached
            return ChatActor(repository.adopt(session, user), repository.adopt(session, tenant), principal)
        generation = principals.generation
        found = await repository.get_user_with_tenant(session, principal.id)
        if found is None or found[0].deactivated_at is not None:
            raise PermissionDenied("This chat user is deactivated.", code="chat_user_deactivated")
        user, tenant = found
        if tenant.disabled_at is not None:
            raise PermissionDenied("This chat tenant is disabled.", code="tenant_disabled")
        snapshot = (repository.detached_copy(user), repository.detached_copy(tenant))
        principals.attach(principal, ACTOR_ROWS, snapshot, generation=generation)
        return ChatActor(user, tenant, principal)
    if not principal.is_user:
        raise PermissionDenied(
            "Chat needs a user: a user token or a Pentad account.", code="chat_user_required"
        )
    tenant = await default_tenant(session, platform)
    linked = await repository.get_user_by_pentad_user(session, principal.id)
    if linked is None:
        linked = await _link_account(session, tenant, principal)
    elif linked.name != (principal.display_name or linked.name):
        linked.name = principal.display_name
    # The account's global chat rights become its tenant role, so they hold with the user token its pages
    # use too: chat admins administer every channel of the default tenant, global moderators moderate.
    role = (
        "admin" if principal.has(CHAT_ADMIN) else "moderator" if principal.has(CHANNEL_MODERATE) else "user"
    )
    if linked.role != role:
        linked.role = role
    return ChatActor(linked, tenant, principal)


async def _link_account(session: AsyncSession, tenant: ChatTenant, principal: Principal) -> ChatUser:
    handle = _handle_from(principal.label.split("@")[0])
    if await repository.handle_taken(session, tenant.id, handle, None):
        handle = f"{handle[:50]}-{principal.id.hex[:6]}"
    user = ChatUser(
        tenant_id=tenant.id,
        external_id=f"pentad:{principal.id}",
        handle=handle,
        name=principal.display_name or principal.label,
        email=principal.label if "@" in principal.label else None,
        pentad_user_id=principal.id,
        data={},
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        found = await repository.get_user_by_pentad_user(session, principal.id)
        if found is None:
            raise
        return found
    return user
