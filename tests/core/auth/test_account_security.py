"""The account-security policy (docs/security.md): who may change a password, the second factor and
sessions; the budgets on every password and code check; recent verification; single-use sign-in steps;
no caching of responses that carry secrets."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from pentad.core.audit import AuditEvent
from pentad.core.platform import Platform
from tests.factories import (
    DEFAULT_PASSWORD,
    access_token,
    age_sign_in,
    bearer,
    create_admin,
    create_user,
    enable_totp,
    issue_api_key,
    issue_service_token,
    login,
    totp_now,
)

NEW_PASSWORD = "a brand new passphrase"


async def _actions(platform: Platform, action: str) -> int:
    async with platform.database.transaction() as session:
        rows = await session.scalars(select(AuditEvent.id).where(AuditEvent.action == action))
        return len(rows.all())


# ----------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/me/password", lambda guess: {"current_password": guess, "new_password": NEW_PASSWORD}),
        ("/api/me/verify", lambda guess: {"password": guess}),
    ],
)
async def test_current_password_guessing_is_budgeted_like_login_and_audited(
    client: httpx.AsyncClient, platform: Platform, path: str, body: object
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    make = body  # a function of the guessed password
    statuses = []
    for attempt in range(25):
        response = await client.post(path, json=make(f"guess number {attempt}"), headers=bearer(token))  # type: ignore[operator]
        statuses.append(response.status_code)
    # The login budget of the account (10 per 15 minutes): one attempt was spent by the login above.
    assert statuses[:9] == [401] * 9
    assert set(statuses[9:]) == {429}
    assert int(response.headers["retry-after"]) > 0
    assert await _actions(platform, "auth.password_check_failed") == 9
    # The right password is refused too until the window passes, so guessing cannot be finished.
    right = await client.post(path, json=make(DEFAULT_PASSWORD), headers=bearer(token))  # type: ignore[operator]
    assert right.status_code == 429
    assert (
        await client.post("/api/auth/login", json={"email": user.email, "password": "x"})
    ).status_code == 429


async def test_disable_two_factor_guessing_is_budgeted(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    await enable_totp(client, token)
    statuses = []
    for attempt in range(15):
        response = await client.post(
            "/api/me/2fa/disable",
            json={"password": f"guess number {attempt}", "code": "123456"},
            headers=bearer(token),
        )
        statuses.append(response.status_code)
    assert 401 in statuses
    assert statuses[-1] == 429
    assert (await client.get("/api/me", headers=bearer(token))).json()["two_factor_enabled"] is True


async def test_second_factor_guessing_is_budgeted_and_audited(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    await enable_totp(client, token)
    statuses = [
        (
            await client.post("/api/me/2fa/recovery-codes", json={"code": "000000"}, headers=bearer(token))
        ).status_code
        for _ in range(15)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429
    assert await _actions(platform, "auth.second_factor_failed") == statuses.count(401)


# --------------------------------------------------------- who may do it


ACCOUNT_SECURITY_CALLS = [
    ("POST", "/api/me/password", {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}),
    ("POST", "/api/me/verify", {"password": DEFAULT_PASSWORD}),
    ("GET", "/api/me/sessions", None),
    ("POST", "/api/me/2fa/setup", None),
    ("POST", "/api/me/2fa/enable", {"code": "123456"}),
    ("POST", "/api/me/2fa/disable", {"password": DEFAULT_PASSWORD, "code": "123456"}),
    ("POST", "/api/me/2fa/recovery-codes", {"code": "123456"}),
    ("POST", "/api/auth/logout-all", None),
]


@pytest.mark.parametrize(
    "scopes",
    [["core.api_keys.own"], ["core.users.read"], ["core.api_keys.own", "core.users.read"], ["*"], []],
)
async def test_api_keys_without_the_explicit_scope_cannot_touch_account_security(
    client: httpx.AsyncClient, platform: Platform, scopes: list[str]
) -> None:
    user = await create_admin(platform)
    key = await issue_api_key(platform, user, scopes=scopes)
    for method, path, body in ACCOUNT_SECURITY_CALLS:
        response = await client.request(method, path, json=body, headers=bearer(key))
        assert response.status_code == 403, (method, path, response.text)
    # Nothing changed: the password still works, no 2FA secret was set, sessions live on.
    tokens = await login(client, user.email)
    assert (await client.get("/api/me", headers=bearer(tokens["access_token"]))).json()[
        "two_factor_enabled"
    ] is False


async def test_service_tokens_cannot_touch_account_security(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    token = await issue_service_token(platform, scopes=["core.account.security", "core.users.read"])
    for method, path, body in ACCOUNT_SECURITY_CALLS:
        response = await client.request(method, path, json=body, headers=bearer(token))
        assert response.status_code == 403, (method, path)


async def test_a_key_naming_the_scope_may_manage_account_security(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user, scopes=["core.account.security"])
    assert (await client.get("/api/me/sessions", headers=bearer(key))).status_code == 200
    changed = await client.post(
        "/api/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(key),
    )
    assert changed.status_code == 204
    await login(client, user.email, NEW_PASSWORD)


async def test_a_star_key_cannot_mint_a_key_with_the_explicit_scope(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user, scopes=["*"])
    response = await client.post(
        "/api/me/api-keys",
        json={"name": "escalate", "scopes": ["core.account.security"]},
        headers=bearer(key),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_scope"


# ------------------------------------------------------------ recent verification


async def test_two_factor_setup_and_new_keys_need_a_recent_verification(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    await age_sign_in(platform, user.id)

    for method, path, body in [
        ("POST", "/api/me/2fa/setup", None),
        ("POST", "/api/me/api-keys", {"name": "late", "scopes": ["core.api_keys.own"]}),
    ]:
        response = await client.request(method, path, json=body, headers=bearer(token))
        assert response.status_code == 403, path
        assert response.json()["code"] == "reverification_required"

    wrong = await client.post("/api/me/verify", json={"password": "not it at all"}, headers=bearer(token))
    assert wrong.status_code == 401
    verified = await client.post("/api/me/verify", json={"password": DEFAULT_PASSWORD}, headers=bearer(token))
    assert verified.status_code == 200
    assert "verified_until" in verified.json()
    assert await _actions(platform, "auth.reverify") == 1
    created = await client.post(
        "/api/me/api-keys", json={"name": "now", "scopes": ["core.api_keys.own"]}, headers=bearer(token)
    )
    assert created.status_code == 201
    assert (await client.post("/api/me/2fa/setup", headers=bearer(token))).status_code == 200


async def test_verification_with_two_factor_on_needs_a_code(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    secret, _ = await enable_totp(client, token)
    await age_sign_in(platform, user.id)
    no_code = await client.post("/api/me/verify", json={"password": DEFAULT_PASSWORD}, headers=bearer(token))
    assert no_code.status_code == 401
    assert no_code.json()["code"] == "invalid_second_factor"
    ok = await client.post(
        "/api/me/verify",
        json={"password": DEFAULT_PASSWORD, "code": totp_now(secret, steps_ahead=1)},
        headers=bearer(token),
    )
    assert ok.status_code == 200


async def test_an_api_key_cannot_be_reverified(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user, scopes=["core.account.security"])
    response = await client.post("/api/me/verify", json={"password": DEFAULT_PASSWORD}, headers=bearer(key))
    assert response.status_code == 403
    assert response.json()["code"] == "session_required"


# ------------------------------------------------------------- keys and resets


async def test_a_password_reset_revokes_api_keys_a_change_keeps_them(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    from pentad.core import audit
    from pentad.core.auth.service import AuthService

    user = await create_user(platform)
    token = await access_token(client, user)
    key = await issue_api_key(platform, user, scopes=["core.api_keys.own"])
    changed = await client.post(
        "/api/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(token),
    )
    assert changed.status_code == 204
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 200

    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        link = await service.new_password_reset_link(await service.get_user(user.id), audit.SYSTEM)
    reset_token = link.split("token=", 1)[1]
    reset = await client.post(
        "/api/auth/password-reset/confirm", json={"token": reset_token, "new_password": "yet another phrase"}
    )
    assert reset.status_code == 204
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 401


# ------------------------------------------------------------------ caching


async def test_responses_that_carry_secrets_are_never_cached(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = await create_admin(platform)
    tokens = await login(client, admin.email)
    auth = bearer(tokens["access_token"])
    responses = {
        "login": await client.post(
            "/api/auth/login", json={"email": admin.email, "password": DEFAULT_PASSWORD}
        ),
        "refresh": await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        "api key": await client.post("/api/me/api-keys", json={"name": "k", "scopes": []}, headers=auth),
        "service token": await client.post(
            "/api/service-tokens", json={"name": "svc", "scopes": []}, headers=auth
        ),
        "2fa setup": await client.post("/api/me/2fa/setup", headers=auth),
        "refused": await client.get("/api/me"),
    }
    for name, response in responses.items():
        assert response.status_code < 500, name
        assert response.headers["cache-control"] == "no-store", name


async def test_star_plus_the_named_scope_holds_everything(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_admin(platform)
    key = await issue_api_key(platform, user, scopes=["*", "core.account.security"])
    assert (await client.get("/api/me/sessions", headers=bearer(key))).status_code == 200
    assert (await client.get("/api/users", headers=bearer(key))).status_code == 200
