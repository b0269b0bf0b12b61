"""Request and response models of the accounts API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pentad.core.auth.passwords import MAX_PASSWORD_LENGTH
from pentad.core.emails import Email

Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=32)]
Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
Scope = Annotated[str, StringConstraints(min_length=1, max_length=100)]
ResourceKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    email: Email
    password: Password


class MfaRequest(Strict):
    mfa_token: Token
    code: Code = Field(description="A 6-digit authenticator code or a recovery code.")


class RefreshRequest(Strict):
    refresh_token: Token


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Single use: every refresh returns a new one.")
    refresh_expires_in: int


class SessionToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires; ask again before then.")


class MfaChallenge(BaseModel):
    mfa_required: bool = True
    mfa_token: str = Field(description="Send it with a code to POST /api/auth/mfa within 5 minutes.")


class PasswordResetRequest(Strict):
    email: Email


class PasswordResetAccepted(BaseModel):
    detail: str = "If the address belongs to an account, a reset link is on its way."


class PasswordResetConfirm(Strict):
    token: Token
    new_password: Password


class PasswordChange(Strict):
    current_password: Password
    new_password: Password


class Me(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="`user` or `service`.")
    email: str | None
    display_name: str
    roles: list[str]
    permissions: list[str]
    via: str = Field(description="How this request authenticated.")
    two_factor_enabled: bool


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    roles: list[str]
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    totp_enabled: bool


class UserPage(BaseModel):
    items: list[UserRead]
    total: int


class UserCreate(Strict):
    email: Email
    password: Password
    display_name: DisplayName | None = None
    roles: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default_factory=lambda: ["member"])


class UserUpdate(Strict):
    display_name: DisplayName | None = None
    is_active: bool | None = None
    roles: list[Annotated[str, StringConstraints(max_length=64)]] | None = None


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool = False


class TotpSetupResponse(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpCode(Strict):
    code: Code


class TotpDisable(Strict):
    password: Password
    code: Code = Field(description="A current authenticator code or an unused recovery code.")


class VerifyRequest(Strict):
    password: Password
    code: Code | None = Field(None, description="Needed when two-factor authentication is on.")


class Verified(BaseModel):
    verified_until: datetime = Field(
        description="Until then this session may set up two-factor authentication and create API keys."
    )


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once in place of a code.")


class ApiKeyCreate(Strict):
    name: Name
    scopes: list[Scope] = Field(
        default_factory=lambda: ["*"],
        description="Permission keys the key may use; `*` = all of yours.",
        max_length=100,
    )
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    hint: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    token: str = Field(description="The key itself. Shown only now; store it safely.")


class ServiceTokenCreate(Strict):
    name: Name
    scopes: list[Scope] = Field(max_length=100)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class ServiceTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    hint: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ServiceTokenCreated(ServiceTokenRead):
    token: str = Field(description="The token itself. Shown only now; store it safely.")


class GrantCreate(Strict):
    resource_type: ResourceKey
    resource_id: ResourceKey
    role: ResourceKey


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    resource_type: str
    resource_id: str
    role: str
    created_at: datetime


class PermissionRead(BaseModel):
    key: str
    description: str


class RolesRead(BaseModel):
    permissions: list[PermissionRead]
    roles: dict[str, list[str]]
    resource_roles: dict[str, dict[str, list[str]]]


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    actor_type: str
    actor_id: str | None
    actor_label: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    ip_address: str | None
    request_id: str | None
    details: dict[str, object]


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    next_before: uuid.UUID | None = Field(description="Pass as `before` to get the next (older) page.")
