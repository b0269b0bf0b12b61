"""Walks every operation of the API description: each non-public endpoint answers 401 without credentials
and 403 to a principal holding no permission, so a new route cannot forget its guard."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import ALL_APPS
from tests.factories import bearer, create_user, issue_api_key

# Endpoints anyone may call, each for a reason.
PUBLIC = {
    ("GET", "/healthz"),  # liveness probe
    ("GET", "/readyz"),  # readiness probe
    ("POST", "/api/auth/login"),  # the credentials are the body
    ("POST", "/api/auth/mfa"),  # the mfa token is the credential
    ("POST", "/api/auth/refresh"),  # the refresh token is the credential
    ("POST", "/api/auth/password-reset"),  # answers the same for every address
    ("POST", "/api/auth/password-reset/confirm"),  # the reset token is the credential
    ("POST", "/api/chat/hooks/{hook_id}/{secret}"),  # the secret in the URL is the credential
}

# Endpoints every signed-in user may call: they act on the caller's own account only.
OWN_ACCOUNT = {
    ("GET", "/api/me"),
    ("POST", "/api/me/password"),
    ("GET", "/api/me/sessions"),
    ("DELETE", "/api/me/sessions/{session_id}"),
    ("POST", "/api/me/2fa/setup"),
    ("POST", "/api/me/2fa/enable"),
    ("POST", "/api/me/2fa/disable"),
    ("POST", "/api/me/2fa/recovery-codes"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/logout-all"),
    ("POST", "/api/auth/session-token"),
}


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    """Every installed app's routes, not only the core's."""
    return create_app(settings, database=database, apps=ALL_APPS)


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
    assert (PUBLIC | OWN_ACCOUNT) - served == set()
    for spec in ALL_APPS:
        prefixes = {router.prefix for router in spec.routers if router.prefix.startswith("/api/")}
        assert any(path.startswith(tuple(prefixes)) for _, path in served), spec.name


async def test_every_non_public_operation_needs_credentials(app: FastAPI, client: httpx.AsyncClient) -> None:
    operations = [op for op in _operations(app) if op not in PUBLIC]
    assert len(operations) >= 25
    failures = []
    for method, path in operations:
        response = await client.request(method, _concrete(path))
        if response.status_code != 401:
            failures.append((method, path, response.status_code))
    assert failures == []


async def test_every_permissioned_operation_denies_a_principal_without_it(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    powerless = await issue_api_key(platform, user, scopes=[])
    failures = []
    operations = [op for op in _operations(app) if op not in PUBLIC | OWN_ACCOUNT]
    for method, path in operations:
        response = await client.request(method, _concrete(path), headers=bearer(powerless))
        if response.status_code != 403:
            failures.append((method, path, response.status_code))
    assert failures == []


async def test_garbage_credentials_are_refused_everywhere(app: FastAPI, client: httpx.AsyncClient) -> None:
    tokens = ("pak_nonsense", "pst_" + "0" * 32 + "_x", "eyJhbGciOiJub25lIn0.e30.", "x" * 600)
    for method, path in _operations(app):
        if (method, path) in PUBLIC:
            continue
        for token in tokens:
            response = await client.request(method, _concrete(path), headers=bearer(token))
            assert response.status_code == 401, (method, path, token[:20])
