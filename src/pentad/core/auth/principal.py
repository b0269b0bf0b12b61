"""Who is making a request, with what permissions, through which credential."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pentad.core.audit import Actor
from pentad.core.auth.permissions import Permission


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "service"
    id: uuid.UUID
    label: str
    roles: frozenset[str]
    permissions: frozenset[str]
    via: str  # "session", "access_token", "api_key", "service_token"
    credential_id: uuid.UUID
    session_id: uuid.UUID | None = None
    mfa: bool = False
    scopes: frozenset[str] | None = None  # an API key's or service token's limit; None = unscoped
    display_name: str = ""
    two_factor_enabled: bool = False
    verified_at: datetime | None = None  # a session's last password / second-factor proof

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    def has(self, permission: Permission) -> bool:
        return permission.key in self.permissions

    def actor(self, ip_address: str | None = None, request_id: str | None = None) -> Actor:
        return Actor(self.kind, str(self.id), self.label, ip_address, request_id)
