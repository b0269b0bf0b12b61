"""Named permissions, global roles that bundle them, and per-resource roles used by grants.

Deny by default: a principal may do only what one of its global roles or one of its resource grants
names, further narrowed by an API key's scopes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Permission:
    """A named right. An `explicit` permission is never implied by an API key's `*` scope: the key holds
    it only when its scopes name it."""

    key: str
    description: str = field(default="", compare=False)
    explicit: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return self.key


USERS_READ = Permission("core.users.read", "List and view user accounts.")
USERS_MANAGE = Permission("core.users.manage", "Create and disable users, change their roles and grants.")
AUDIT_READ = Permission("core.audit.read", "Read the audit log.")
API_KEYS_OWN = Permission("core.api_keys.own", "Create, list and revoke one's own API keys.")
SERVICE_TOKENS_MANAGE = Permission("core.service_tokens.manage", "Issue and revoke service tokens.")
METRICS_READ = Permission("core.metrics.read", "Scrape Prometheus metrics.")
JOBS_MANAGE = Permission("core.jobs.manage", "See background jobs and retry dead ones.")
ACCOUNT_SECURITY = Permission(
    "core.account.security",
    "Change one's own password, two-factor authentication and sessions. Every signed-in user holds it; "
    "an API key only when its scopes name it (`*` does not).",
    explicit=True,
)

CORE_PERMISSIONS: tuple[Permission, ...] = (
    USERS_READ,
    USERS_MANAGE,
    AUDIT_READ,
    API_KEYS_OWN,
    SERVICE_TOKENS_MANAGE,
    METRICS_READ,
    JOBS_MANAGE,
    ACCOUNT_SECURITY,
)

INTERACTIVE = frozenset({"session", "access_token"})
"""Credentials a person obtained by signing in (browser session, login or session access token)."""

ADMIN = "admin"
MEMBER = "member"
GLOBAL_ROLES = (ADMIN, MEMBER)

ALL_SCOPES = "*"


class UnknownRole(ValueError):
    pass


class UnknownPermission(ValueError):
    pass


class PermissionRegistry:
    """Every permission and role the running platform knows, built from the core and the enabled apps."""

    def __init__(self) -> None:
        self._permissions: dict[str, Permission] = {}
        self._roles: dict[str, set[str]] = {ADMIN: set(), MEMBER: {API_KEYS_OWN.key}}
        self._resource_roles: dict[str, dict[str, frozenset[str]]] = {}
        self.add_permissions(CORE_PERMISSIONS)

    def add_permissions(self, permissions: Iterable[Permission]) -> None:
        for permission in permissions:
            self._permissions[permission.key] = permission
        # Asked on every API-key authentication: kept, not recomputed.
        self._explicit = frozenset(key for key, p in self._permissions.items() if p.explicit)

    def add_to_role(self, role: str, permissions: Iterable[Permission]) -> None:
        if role not in self._roles:
            raise UnknownRole(role)
        self._roles[role].update(p.key for p in permissions)

    def add_resource_roles(self, resource_type: str, roles: Mapping[str, Sequence[Permission]]) -> None:
        self._resource_roles[resource_type] = {
            role: frozenset(p.key for p in perms) for role, perms in roles.items()
        }

    @property
    def permissions(self) -> list[Permission]:
        return sorted(self._permissions.values())

    @property
    def explicit_scopes(self) -> frozenset[str]:
        """Permissions that an API key's `*` scope does not imply."""
        return self._explicit

    @property
    def roles(self) -> dict[str, frozenset[str]]:
        return {role: self.role_permissions(role) for role in self._roles}

    @property
    def resource_roles(self) -> dict[str, dict[str, frozenset[str]]]:
        return dict(self._resource_roles)

    def role_permissions(self, role: str) -> frozenset[str]:
        if role == ADMIN:
            return frozenset(self._permissions)
        return frozenset(self._roles.get(role, ()))

    def permissions_for_roles(self, roles: Iterable[str]) -> frozenset[str]:
        result: set[str] = set()
        for role in roles:
            result |= self.role_permissions(role)
        return frozenset(result)

    def check_role(self, role: str) -> str:
        if role not in self._roles:
            raise UnknownRole(role)
        return role

    def check_scopes(self, scopes: Iterable[str]) -> list[str]:
        checked = []
        for scope in scopes:
            if scope != ALL_SCOPES and scope not in self._permissions:
                raise UnknownPermission(scope)
            checked.append(scope)
        return sorted(set(checked))

    def resource_role_permissions(self, resource_type: str, role: str) -> frozenset[str]:
        return self._resource_roles.get(resource_type, {}).get(role, frozenset())

    def check_resource_role(self, resource_type: str, role: str) -> str:
        if role not in self._resource_roles.get(resource_type, {}):
            raise UnknownRole(f"{resource_type}:{role}")
        return role
