"""The accounts API as its clients use it: login, tokens, sessions, 2FA, API keys, admin."""

from __future__ import annotations

import httpx
import pyotp
import pytest
from sqlalchemy import select

from pentad.core.audit import AuditEvent
from pentad.core.auth import repository
from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.factories import (
    DEFAULT_PASSWORD,
    access_token,
    bearer,
    create_admin,
    create_user,
    enable_totp,
    issue_api_key,
    issue_service_token,
    login,
    totp_now,
    unique_email,
)


async def _audit_actions(platform: Platform) -> list[str]:
    async with platform.database.transaction() as session:
        return list((await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all())


# ------------------------------------------------------------------ login


async def test_login_returns_tokens_that_identify_the_user(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform, display_name="Ada")
    tokens = await login(client, user.email)
    assert tokens["token_type"] == "bearer"
    assert 0 < tokens["expires_in"] <= platform.settings.auth.access_token_ttl
    me = await client.get("/api/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert me.json()["display_name"] == "Ada"
    assert me.json()["via"] == "access_token"


async def test_login_is_case_insensitive_on_email(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await login(client, user.email.upper())


@pytest.mark.parametrize("wrong", ["password", "email"])
async def test_wrong_credentials_get_the_same_answer(
    client: httpx.AsyncClient, platform: Platform, wrong: str
) -> None:
    user = await create_user(platform)
    email = unique_email() if wrong == "email" else user.email
    password = "not the password at all" if wrong == "password" else DEFAULT_PASSWORD
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_credentials"
    assert "auth.login_failed" in await _audit_actions(platform)


async def test_disabled_user_cannot_log_in(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    user = await create_user(platform)
    admin_token = await access_token(client, admin)
    response = await client.patch(
        f"/api/users/{user.id}", json={"is_active": False}, headers=bearer(admin_token)
    )
    assert response.status_code == 200
    response = await client.post("/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 401


async def test_login_brute_force_is_rate_limited(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    statuses = []
    for _ in range(12):
        response = await client.post(
            "/api/auth/login", json={"email": user.email, "password": "guess-guess-guess"}
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "rate_limited"
    # The limit is per account: the right password is refused too until the window passes.
    response = await client.post("/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 429


async def test_malformed_login_is_a_clear_4xx(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    response = await client.post("/api/auth/login", json={"email": "not-an-email", "password": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "email"]


# --------------------------------------------------------------- refresh


async def test_refresh_rotates_the_token(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    first = await login(client, user.email)
    response = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/api/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200


async def test_refresh_token_reuse_revokes_the_whole_family(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    first = await login(client, user.email)
    rotated = (await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()

    # An attacker replays the stolen, already-rotated token.
    replay = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"

    # The legitimate holder's newer tokens die with the family.
    legit = await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert legit.status_code == 401
    me = await client.get("/api/me", headers=bearer(rotated["access_token"]))
    assert me.status_code == 401
    assert "auth.refresh_reuse_detected" in await _audit_actions(platform)

    # Other sessions of the same user are untouched.
    other = await login(client, user.email)
    assert (await client.get("/api/me", headers=bearer(other["access_token"]))).status_code == 200


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "prt_" + "0" * 32 + "_secret", "pak_" + "0" * 32 + "_secret"],
)
async def test_refresh_rejects_bad_tokens(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post("/api/auth/refresh", json={"refresh_token": token})
    assert response.status_code in (401, 422)


# ---------------------------------------------------------------- logout


async def test_logout_ends_only_the_current_session(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    phone = await login(client, user.email)
    laptop = await login(client, user.email)
    assert (await client.post("/api/auth/logout", headers=bearer(phone["access_token"]))).status_code == 204
    assert (await client.get("/api/me", headers=bearer(phone["access_token"]))).status_code == 401
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await client.get("/api/me", headers=bearer(laptop["access_token"]))).status_code == 200


async def test_logout_everywhere_ends_every_session(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    sessions = [await login(client, user.email) for _ in range(3)]
    response = await client.post("/api/auth/logout-all", headers=bearer(sessions[0]["access_token"]))
    assert response.status_code == 204
    for tokens in sessions:
        assert (await client.get("/api/me", headers=bearer(tokens["access_token"]))).status_code == 401


async def test_sessions_are_listed_and_revocable(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    mine = await login(client, user.email)
    other = await login(client, user.email)
    listed = (await client.get("/api/me/sessions", headers=bearer(mine["access_token"]))).json()
    assert len(listed) == 2
    assert sum(1 for s in listed if s["current"]) == 1
    target = next(s for s in listed if not s["current"])
    response = await client.delete(f"/api/me/sessions/{target['id']}", headers=bearer(mine["access_token"]))
    assert response.status_code == 204
    assert (await client.get("/api/me", headers=bearer(other["access_token"]))).status_code == 401


# ------------------------------------------------------------ passwords


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    response = await client.post(
        "/api/me/password",
        json={"current_password": "wrong wrong wrong", "new_password": "a brand new passphrase"},
        headers=bearer(token),
    )
    assert response.status_code == 401
    response = await client.post(
        "/api/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        headers=bearer(token),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "weak_password"
    response = await client.post(
        "/api/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(token),
    )
    assert response.status_code == 204
    await login(client, user.email, "a brand new passphrase")


# ------------------------------------------------------------ two-factor


async def test_two_factor_login_flow(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    secret, codes = await enable_totp(client, await access_token(client, user))
    assert len(codes) == 10

    challenge = await login(client, user.email)
    assert challenge["mfa_required"] is True
    assert "access_token" not in challenge
    wrong = await client.post("/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": "000000"})
    assert wrong.status_code == 401
    # Use the next time step: the current one was spent enabling 2FA and cannot be replayed.
    code = totp_now(secret, steps_ahead=1)
    done = await client.post("/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": code})
    assert done.status_code == 200
    assert (await client.get("/api/me", headers=bearer(done.json()["access_token"]))).json()[
        "two_factor_enabled"
    ]

    # The sign-in step is spent: neither the same code nor a fresh one opens a second session with it.
    for replay_code in (code, totp_now(secret, steps_ahead=2)):
        replay = await client.post(
            "/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": replay_code}
        )
        assert replay.status_code == 401
        assert replay.json()["code"] == "invalid_token"
    sessions = await client.get("/api/me/sessions", headers=bearer(done.json()["access_token"]))
    assert len(sessions.json()) == 2  # the one that enabled 2FA, and this sign-in

    # A used TOTP step cannot complete a new sign-in either.
    challenge = await login(client, user.email)
    reused = await client.post("/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": code})
    assert reused.status_code == 401
    assert reused.json()["code"] == "invalid_second_factor"


async def test_recovery_codes_work_once(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    _, codes = await enable_totp(client, await access_token(client, user))
    challenge = await login(client, user.email)
    ok = await client.post("/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": codes[0]})
    assert ok.status_code == 200
    challenge = await login(client, user.email)
    again = await client.post("/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": codes[0]})
    assert again.status_code == 401


async def test_totp_secret_is_encrypted_at_rest(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    secret, _ = await enable_totp(client, await access_token(client, user))
    async with platform.database.transaction() as session:
        stored = await session.scalar(select(User.totp_secret).where(User.id == user.id))
    assert stored is not None
    assert secret not in stored
    assert stored.startswith("v1.ktest1.")


async def test_mfa_token_is_not_an_access_token(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await enable_totp(client, await access_token(client, user))
    challenge = await login(client, user.email)
    assert (await client.get("/api/me", headers=bearer(challenge["mfa_token"]))).status_code == 401


async def test_disable_two_factor_needs_the_password_and_a_code(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    secret, codes = await enable_totp(client, token)
    password_only = await client.post(
        "/api/me/2fa/disable", json={"password": DEFAULT_PASSWORD}, headers=bearer(token)
    )
    assert password_only.status_code == 422
    wrong_password = await client.post(
        "/api/me/2fa/disable",
        json={"password": "not my password", "code": totp_now(secret, steps_ahead=1)},
        headers=bearer(token),
    )
    assert wrong_password.status_code == 401
    wrong_code = await client.post(
        "/api/me/2fa/disable", json={"password": DEFAULT_PASSWORD, "code": "000000"}, headers=bearer(token)
    )
    assert wrong_code.status_code == 401
    assert wrong_code.json()["code"] == "invalid_second_factor"
    assert (await client.get("/api/me", headers=bearer(token))).json()["two_factor_enabled"]
    ok = await client.post(
        "/api/me/2fa/disable", json={"password": DEFAULT_PASSWORD, "code": codes[0]}, headers=bearer(token)
    )
    assert ok.status_code == 204
    assert "access_token" in await login(client, user.email)


# --------------------------------------------------------------- API keys


async def test_api_key_is_shown_once_and_authenticates(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    created = await client.post("/api/me/api-keys", json={"name": "ci"}, headers=bearer(token))
    assert created.status_code == 201
    key = created.json()["token"]
    assert key.startswith("pak_")
    listed = (await client.get("/api/me/api-keys", headers=bearer(token))).json()
    assert [k["name"] for k in listed] == ["ci"]
    assert "token" not in listed[0]
    assert key not in str(listed)
    me = await client.get("/api/me", headers=bearer(key))
    assert me.json()["via"] == "api_key"
    listed = (await client.get("/api/me/api-keys", headers=bearer(token))).json()
    assert listed[0]["last_used_at"] is not None


async def test_revoked_and_tampered_api_keys_are_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    created = (await client.post("/api/me/api-keys", json={"name": "x"}, headers=bearer(token))).json()
    tampered = created["token"][:-2] + ("AA" if not created["token"].endswith("AA") else "BB")
    assert (await client.get("/api/me", headers=bearer(tampered))).status_code == 401
    revoke = await client.delete(f"/api/me/api-keys/{created['id']}", headers=bearer(token))
    assert revoke.status_code == 204
    assert (await client.get("/api/me", headers=bearer(created["token"]))).status_code == 401


async def test_api_key_scopes_narrow_permissions(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    narrow = await issue_api_key(platform, admin, scopes=["core.audit.read"])
    assert (await client.get("/api/audit", headers=bearer(narrow))).status_code == 200
    assert (await client.get("/api/users", headers=bearer(narrow))).status_code == 403
    # A scoped key cannot mint itself a broader key.
    escalate = await client.post("/api/me/api-keys", json={"name": "more"}, headers=bearer(narrow))
    assert escalate.status_code == 403


async def test_member_cannot_grant_a_key_permissions_they_lack(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    member = await create_user(platform)
    token = await access_token(client, member)
    response = await client.post(
        "/api/me/api-keys", json={"name": "x", "scopes": ["core.users.manage"]}, headers=bearer(token)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_scope"


async def test_users_cannot_touch_each_others_keys(client: httpx.AsyncClient, platform: Platform) -> None:
    alice = await create_user(platform)
    bob = await create_user(platform)
    alice_token = await access_token(client, alice)
    key = (await client.post("/api/me/api-keys", json={"name": "a"}, headers=bearer(alice_token))).json()
    bob_token = await access_token(client, bob)
    response = await client.delete(f"/api/me/api-keys/{key['id']}", headers=bearer(bob_token))
    assert response.status_code == 404
    assert (await client.get("/api/me", headers=bearer(key["token"]))).status_code == 200


# --------------------------------------------------------- service tokens


async def test_service_tokens_carry_only_their_scopes(client: httpx.AsyncClient, platform: Platform) -> None:
    token = await issue_service_token(platform, scopes=["core.users.read"])
    me = await client.get("/api/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["kind"] == "service"
    assert (await client.get("/api/users", headers=bearer(token))).status_code == 200
    assert (await client.get("/api/audit", headers=bearer(token))).status_code == 403
    # Services have no sessions or keys of their own.
    assert (await client.post("/api/auth/logout-all", headers=bearer(token))).status_code == 403


async def test_admin_issues_and_revokes_service_tokens(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    headers = bearer(await access_token(client, admin))
    created = await client.post(
        "/api/service-tokens", json={"name": "agent-1", "scopes": ["core.metrics.read"]}, headers=headers
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("pst_")
    duplicate = await client.post(
        "/api/service-tokens", json={"name": "agent-1", "scopes": []}, headers=headers
    )
    assert duplicate.status_code == 409
    assert (await client.get("/api/me", headers=bearer(token))).status_code == 200
    revoked = await client.delete(f"/api/service-tokens/{created.json()['id']}", headers=headers)
    assert revoked.status_code == 204
    assert (await client.get("/api/me", headers=bearer(token))).status_code == 401


# -------------------------------------------------------------- user admin


async def test_admin_manages_users(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    headers = bearer(await access_token(client, admin))
    email = unique_email("new")
    created = await client.post(
        "/api/users", json={"email": email, "password": "a long enough password"}, headers=headers
    )
    assert created.status_code == 201
    assert created.json()["roles"] == ["member"]
    duplicate = await client.post(
        "/api/users", json={"email": email.upper(), "password": "a long enough password"}, headers=headers
    )
    assert duplicate.status_code == 409
    listed = await client.get("/api/users", params={"q": email.split("@")[0]}, headers=headers)
    assert [u["email"] for u in listed.json()["items"]] == [email]
    promoted = await client.patch(
        f"/api/users/{created.json()['id']}", json={"roles": ["admin", "member"]}, headers=headers
    )
    assert promoted.json()["roles"] == ["admin", "member"]
    unknown_role = await client.patch(
        f"/api/users/{created.json()['id']}", json={"roles": ["emperor"]}, headers=headers
    )
    assert unknown_role.status_code == 400


async def test_the_last_admin_cannot_be_demoted(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    headers = bearer(await access_token(client, admin))
    # Other admins may exist in a shared database; demote every other one first.
    users = (await client.get("/api/users", params={"limit": 200}, headers=headers)).json()["items"]
    for other in users:
        if other["id"] != str(admin.id) and "admin" in other["roles"] and other["is_active"]:
            await client.patch(f"/api/users/{other['id']}", json={"roles": ["member"]}, headers=headers)
    response = await client.patch(f"/api/users/{admin.id}", json={"is_active": False}, headers=headers)
    assert response.status_code == 409
    assert response.json()["code"] == "last_admin"


async def test_only_an_active_admin_counts_as_another_admin(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = await create_admin(platform)
    headers = bearer(await access_token(client, admin))
    users = (await client.get("/api/users", params={"limit": 200}, headers=headers)).json()["items"]
    for other in users:
        if other["id"] != str(admin.id) and "admin" in other["roles"] and other["is_active"]:
            await client.patch(f"/api/users/{other['id']}", json={"roles": ["member"]}, headers=headers)
    member = await create_user(platform)
    disabled = await create_admin(platform)
    await client.patch(f"/api/users/{disabled.id}", json={"is_active": False}, headers=headers)

    async def another_admin() -> bool:
        async with platform.database.transaction(writes=False) as session:
            return await repository.has_active_user_with_role(session, "admin", excluding=admin.id)

    assert not await another_admin()
    # A member and a disabled admin are no other admin: the last one still cannot step down.
    response = await client.patch(f"/api/users/{admin.id}", json={"roles": ["member"]}, headers=headers)
    assert response.status_code == 409
    await client.patch(f"/api/users/{member.id}", json={"roles": ["admin", "member"]}, headers=headers)
    assert await another_admin()
    response = await client.patch(f"/api/users/{admin.id}", json={"roles": ["member"]}, headers=headers)
    assert response.status_code == 200


async def test_disabling_a_user_ends_their_sessions_and_keys(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = await create_admin(platform)
    user = await create_user(platform)
    user_tokens = await login(client, user.email)
    key = await issue_api_key(platform, user)
    headers = bearer(await access_token(client, admin))
    await client.patch(f"/api/users/{user.id}", json={"is_active": False}, headers=headers)
    assert (await client.get("/api/me", headers=bearer(user_tokens["access_token"]))).status_code == 401
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 401


async def test_audit_log_records_who_did_what(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    headers = bearer(await access_token(client, admin))
    await client.post(
        "/api/users", json={"email": unique_email(), "password": "a long enough password"}, headers=headers
    )
    events = (
        await client.get(
            "/api/audit", params={"action": "user.create", "actor_id": str(admin.id)}, headers=headers
        )
    ).json()
    assert len(events["items"]) == 1
    event = events["items"][0]
    assert event["actor_label"] == admin.email
    assert event["ip_address"] == "127.0.0.1"
    assert event["resource_type"] == "user"
    naive = await client.get("/api/audit", params={"since": "2024-01-01T00:00:00"}, headers=headers)
    assert naive.status_code == 422


async def test_bearer_scheme_must_be_bearer(client: httpx.AsyncClient, platform: Platform) -> None:
    response = await client.get("/api/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json()["code"] == "bad_authorization"
    assert "Bearer" in response.headers["www-authenticate"]


async def test_totp_codes_are_six_digits(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    setup = (await client.post("/api/me/2fa/setup", headers=bearer(token))).json()
    wrong = pyotp.TOTP(setup["secret"]).now()[::-1] + "9"
    response = await client.post("/api/me/2fa/enable", json={"code": wrong}, headers=bearer(token))
    assert response.status_code == 401
