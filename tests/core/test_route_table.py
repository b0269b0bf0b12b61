"""Walks every operation of the API description: each operation not declared public (core/policy.py)
names an Authenticator, answers 401 without credentials and 403 to a principal holding no permission, so
a new route cannot forget its guard; the declared public ones are compared with a reviewed list."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from pentad.core.policy import RoutePolicies, unguarded_operations
from tests.apps.chat.factories import create_tenant
from tests.conftest import ALL_APPS, make_settings
from tests.factories import access_token, bearer, create_user, issue_api_key, issue_service_token

# The route table's guards do not depend on the database engine: they run on one.
pytestmark = pytest.mark.one_engine

# The reviewed list of operations anyone may call. Routes declare themselves public next to their
# definition (`@route_policy(public="why")`, core/policy.py); this copy makes every addition or removal
# show up in review, and test_the_public_operations_are_the_reviewed_ones fails until it is updated.
REVIEWED_PUBLIC = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("POST", "/api/auth/login"): "the credentials are the body",
    ("POST", "/api/auth/mfa"): "the MFA token is the credential",
    ("POST", "/api/auth/refresh"): "the refresh token is the credential",
    ("POST", "/api/auth/password-reset"): "answers the same for every address",
    ("POST", "/api/auth/password-reset/confirm"): "the reset token is the credential",
    ("POST", "/api/chat/hooks/{hook_id}/{secret}"): "the secret in the URL is the credential",
    ("POST", "/api/panel/agent/enrol"): "the one-time enrolment token in the body is the credential",
    ("POST", "/api/analytics/event"): "the tracker on any visitor's browser posts events anonymously",
    ("GET", "/api/ads/decide"): "the loader on any visitor's page asks anonymously for an ad",
    ("POST", "/api/ads/v"): "the loader posts the signed impression token it was given",
}

# Account security (docs/security.md): a signed-in person's own password, second factor and sessions.
# Interactive credentials may; API keys only when their scopes name core.account.security; nothing else.
ACCOUNT_SECURITY = {
    ("POST", "/api/me/password"),
    ("POST", "/api/me/verify"),
    ("GET", "/api/me/sessions"),
    ("DELETE", "/api/me/sessions/{session_id}"),
    ("POST", "/api/me/2fa/setup"),
    ("POST", "/api/me/2fa/enable"),
    ("POST", "/api/me/2fa/disable"),
    ("POST", "/api/me/2fa/recovery-codes"),
    ("POST", "/api/auth/logout-all"),
}

# Endpoints every signed-in user may call: they act on the caller's own account only.
OWN_ACCOUNT = ACCOUNT_SECURITY | {
    ("GET", "/api/me"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/session-token"),
}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Rate limits out of the way: these tests call every operation of every app from one address."""
    return make_settings(
        tmp_path, database_url, ratelimit={"per_address": "100000/minute", "per_principal": "100000/minute"}
    )


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    """Every installed app's routes, not only the core's."""
    return create_app(settings, database=database, apps=ALL_APPS)


def _declared_public(app: FastAPI) -> set[tuple[str, str]]:
    """The operations the API describes that their routes declare public."""
    policies: RoutePolicies = app.state.route_policies
    served = set(_operations(app))
    return {operation for operation in policies.public_operations() if operation in served}


@pytest.fixture
def public(app: FastAPI) -> set[tuple[str, str]]:
    return _declared_public(app)


def test_the_public_operations_are_the_reviewed_ones(app: FastAPI) -> None:
    policies: RoutePolicies = app.state.route_policies
    declared = {op: why for op, why in policies.public_operations().items() if op in set(_operations(app))}
    print("\n".join(f"public: {method} {path}  ({why})" for (method, path), why in sorted(declared.items())))
    assert declared == REVIEWED_PUBLIC


def test_every_operation_is_public_or_names_its_authenticator(app: FastAPI) -> None:
    """Statically: each operation's dependencies include an Authenticator unless it is declared public."""
    assert unguarded_operations(app, app.state.route_policies) == []


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def test_lists_name_only_served_operations(app: FastAPI) -> None:
    served = set(_operations(app))
    assert (set(REVIEWED_PUBLIC) | OWN_ACCOUNT) - served == set()
    for spec in ALL_APPS:
        prefixes = {router.prefix for router in spec.api_routers() if router.prefix.startswith("/api/")}
        assert any(path.startswith(tuple(prefixes)) for _, path in served), spec.name


async def test_every_non_public_operation_needs_credentials(
    app: FastAPI, client: httpx.AsyncClient, public: set[tuple[str, str]]
) -> None:
    operations = [op for op in _operations(app) if op not in public]
    assert len(operations) >= 25
    failures = []
    for method, path in operations:
        response = await client.request(method, _concrete(path))
        if response.status_code != 401:
            failures.append((method, path, response.status_code))
    assert failures == []


async def test_every_permissioned_operation_denies_a_principal_without_it(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, public: set[tuple[str, str]]
) -> None:
    user = await create_user(platform)
    powerless = await issue_api_key(platform, user, scopes=[])
    failures = []
    operations = [op for op in _operations(app) if op not in public | OWN_ACCOUNT]
    for method, path in operations:
        response = await client.request(method, _concrete(path), headers=bearer(powerless))
        if response.status_code != 403:
            failures.append((method, path, response.status_code))
    assert failures == []


async def test_garbage_credentials_are_refused_everywhere(
    app: FastAPI, client: httpx.AsyncClient, public: set[tuple[str, str]]
) -> None:
    tokens = ("pak_nonsense", "pst_" + "0" * 32 + "_x", "eyJhbGciOiJub25lIn0.e30.", "x" * 600)
    for method, path in _operations(app):
        if (method, path) in public:
            continue
        for token in tokens:
            response = await client.request(method, _concrete(path), headers=bearer(token))
            assert response.status_code == 401, (method, path, token[:20])


# ------------------------------------------------------------ every kind of credential

WHO_AM_I = ("GET", "/api/me")
# Logout answers an API key 400 no_session ("revoke the key instead"): not a permission matter.
ANY_USER_KEY = {WHO_AM_I, ("POST", "/api/auth/logout")}
USERS_READ_OPERATIONS = {
    *ANY_USER_KEY,
    ("GET", "/api/users"),
    ("GET", "/api/users/{user_id}"),
    ("GET", "/api/users/{user_id}/grants"),
    ("GET", "/api/roles"),
}
OWN_KEYS_OPERATIONS = {
    *ANY_USER_KEY,
    ("GET", "/api/me/api-keys"),
    ("POST", "/api/me/api-keys"),
    ("DELETE", "/api/me/api-keys/{key_id}"),
}


def _is_chat_client_operation(operation: tuple[str, str]) -> bool:
    path = operation[1]
    return path.startswith("/api/chat/") and not path.startswith(
        ("/api/chat/server/", "/api/chat/tenants", "/api/chat/session-token")
    )


def _is_chat_server_operation(operation: tuple[str, str]) -> bool:
    return operation[1].startswith("/api/chat/server/")


async def _refusals_outside(
    client: httpx.AsyncClient, app: FastAPI, token: str, allowed: object
) -> list[tuple[str, str, int]]:
    """Every operation not public and not `allowed` (a set, or a predicate) must answer 403 to `token`."""
    failures = []
    public = _declared_public(app)
    for operation in _operations(app):
        permitted = allowed(operation) if callable(allowed) else operation in allowed  # type: ignore[operator]
        if operation in public or permitted:
            continue
        method, path = operation
        response = await client.request(method, _concrete(path), headers=bearer(token))
        if response.status_code != 403:
            failures.append((method, path, response.status_code))
    return failures


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["core.users.read"], USERS_READ_OPERATIONS),
        (["core.api_keys.own"], OWN_KEYS_OPERATIONS),
        (["core.api_keys.own", "core.users.read"], USERS_READ_OPERATIONS | OWN_KEYS_OPERATIONS),
    ],
)
async def test_narrow_api_keys_reach_only_their_scopes(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, scopes: list[str], allowed: set[object]
) -> None:
    """An admin's key, narrowed: nothing beyond its scopes, account security included."""
    from tests.factories import create_admin

    admin = await create_admin(platform)
    key = await issue_api_key(platform, admin, scopes=scopes)
    assert await _refusals_outside(client, app, key, allowed) == []


async def test_a_star_api_key_does_not_reach_account_security(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user, scopes=["*"])
    failures = []
    for method, path in sorted(ACCOUNT_SECURITY):
        response = await client.request(method, _concrete(path), headers=bearer(key))
        if response.status_code != 403:
            failures.append((method, path, response.status_code))
    assert failures == []


async def test_a_service_token_is_no_user(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform
) -> None:
    token = await issue_service_token(platform, scopes=["core.account.security"])
    assert await _refusals_outside(client, app, token, {WHO_AM_I}) == []


async def test_chat_tokens_reach_only_chat(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform
) -> None:
    tenant = await create_tenant(platform, client, slug="route-table")
    user = await tenant.user()
    allowed_user = lambda op: op == WHO_AM_I or _is_chat_client_operation(op)  # noqa: E731
    assert await _refusals_outside(client, app, user.token, allowed_user) == []
    allowed_server = lambda op: op == WHO_AM_I or _is_chat_server_operation(op)  # noqa: E731
    assert await _refusals_outside(client, app, tenant.key, allowed_server) == []


async def test_interactive_credentials_reach_account_security(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform
) -> None:
    """A login access token and a browser session (cookie + CSRF header) pass the guard of every
    account-security operation (what follows — a missing body, an unknown session — is not a refusal)."""
    user = await create_user(platform)
    token = await access_token(client, user)
    signed_in = await client.post(
        "/login", data={"email": user.email, "password": "correct horse battery staple"}
    )
    assert signed_in.status_code == 303
    account = await client.get("/account")
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', account.text)
    assert csrf
    cookie_headers = {"X-CSRF-Token": csrf.group(1)}
    operations = sorted(ACCOUNT_SECURITY - {("POST", "/api/auth/logout-all")})
    failures = []
    for headers in (bearer(token), cookie_headers):
        for method, path in operations:
            response = await client.request(method, _concrete(path), headers=headers)
            if response.status_code in (401, 403):
                failures.append((method, path, response.status_code, response.text[:120]))
    assert failures == []
    ended = await client.post("/api/auth/logout-all", headers=bearer(token))
    assert ended.status_code == 204
