"""The web shell driven like a browser without JavaScript: forms, cookies, redirects, CSRF, the API docs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from sqlalchemy import select

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import SESSION_COOKIE
from pentad.core.auth.models import ApiKey, AuthSession, User
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from pentad.core.web.pages.kit import safe_next
from pentad.core.web.pages.site import PUBLIC_PAGES, ROUTERS
from tests.factories import DEFAULT_PASSWORD, age_sign_in, bearer, create_admin, create_user, totp_now

# The web shell does not depend on the database engine: it runs on one (the rest of the suite covers each).
pytestmark = pytest.mark.one_engine

CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def _csrf(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"the page has no {name} field"
    return found.group(1)


async def _sign_in(client: httpx.AsyncClient, user: User, *, next_path: str = "") -> httpx.Response:
    response = await client.post(
        "/login", data={"email": user.email, "password": DEFAULT_PASSWORD, "next": next_path}
    )
    assert response.status_code == 303, response.text
    return response


async def _account_csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/account")
    assert page.status_code == 200
    return _csrf(page.text)


async def _api_keys(platform: Platform, user: User) -> list[ApiKey]:
    async with platform.database.transaction() as session:
        return list((await session.scalars(select(ApiKey).where(ApiKey.user_id == user.id))).all())


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


# ------------------------------------------------------------ access control


async def test_every_private_page_sends_anonymous_visitors_to_login(client: httpx.AsyncClient) -> None:
    routes = [
        r for pages in ROUTERS for r in pages.routes if isinstance(r, APIRoute) and r.path not in PUBLIC_PAGES
    ]
    assert len(routes) >= 15
    failures = []
    for route in routes:
        for method in route.methods:
            response = await client.request(method, _concrete(route.path))
            location = response.headers.get("location", "")
            if response.status_code != 303 or not location.startswith("/login"):
                failures.append((method, route.path, response.status_code, location))
    assert failures == []


async def test_pages_are_left_out_of_the_api_description(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert not [
        p for p in paths if not p.startswith("/api/") and p not in ("/healthz", "/readyz", "/metrics")
    ]
    assert "/api/docs" not in paths


async def test_a_member_gets_a_403_page_on_admin_pages(client: httpx.AsyncClient, platform: Platform) -> None:
    member = await create_user(platform)
    await _sign_in(client, member)
    for path in ("/admin/users", "/admin/audit"):
        response = await client.get(path)
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "Not allowed" in response.text
    home = await client.get("/")
    assert home.status_code == 200
    assert 'href="/admin/users"' not in home.text


async def test_api_credentials_do_not_open_pages(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    login = await client.post("/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    response = await client.get("/account", headers=bearer(login.json()["access_token"]))
    assert response.status_code == 303


# ------------------------------------------------------------------ sign-in


async def test_login_form_sets_a_hardened_session_cookie(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform, display_name="Ada")
    form = await client.get("/login")
    assert form.status_code == 200
    assert '<label for="email">' in form.text
    response = await _sign_in(client, user)
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert f"max-age={platform.settings.auth.refresh_token_ttl}" in cookie.lower()
    assert "secure" not in attributes  # cookie_secure is off in tests
    home = await client.get("/")
    assert home.status_code == 200
    assert user.email in home.text
    assert (await client.get("/login")).headers["location"] == "/"


async def test_cookie_is_secure_when_configured(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    platform.settings.auth.cookie_secure = True
    response = await _sign_in(client, user)
    assert "secure" in response.headers["set-cookie"].lower().split("; ")


async def test_wrong_password_rerenders_the_form(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    response = await client.post("/login", data={"email": user.email, "password": "not the password"})
    assert response.status_code == 401
    assert "Invalid e-mail or password." in response.text
    assert f'value="{user.email}"' in response.text
    assert "set-cookie" not in response.headers
    malformed = await client.post("/login", data={"email": "nobody", "password": ""})
    assert malformed.status_code == 400
    assert "E-mail:" in malformed.text


async def test_login_brute_force_shows_the_rate_limit(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    statuses = []
    for _ in range(11):
        response = await client.post("/login", data={"email": user.email, "password": "guess-guess-guess"})
        statuses.append(response.status_code)
    assert statuses[-1] == 429
    assert "Too many requests" in response.text
    assert int(response.headers["retry-after"]) > 0


async def test_cross_origin_login_is_refused(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    data = {"email": user.email, "password": DEFAULT_PASSWORD}
    refused = await client.post("/login", data=data, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers
    for origin in ("null", "http://testserver.evil.example", "http://evil.example/http://testserver"):
        reset = await client.post("/forgot-password", data={"email": user.email}, headers={"Origin": origin})
        assert reset.status_code == 403, origin
    same_site = await client.post("/login", data=data, headers={"Origin": "http://testserver"})
    assert same_site.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil",
        "/\t/evil.example",
    ],
)
def test_next_never_leaves_the_site(target: str) -> None:
    assert safe_next(target) == "/"


def test_next_keeps_local_paths() -> None:
    assert safe_next("/admin/audit?action=auth.login") == "/admin/audit?action=auth.login"


async def test_login_goes_back_to_a_local_next_only(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    anonymous = await client.get("/account")
    assert anonymous.headers["location"] == "/login?next=%2Faccount"
    form = await client.get("/login", params={"next": "https://evil.example"})
    assert _hidden(form.text, "next") == "/"
    response = await _sign_in(client, user, next_path="https://evil.example")
    assert response.headers["location"] == "/"
    client.cookies.clear()
    response = await _sign_in(client, user, next_path="/account")
    assert response.headers["location"] == "/account"


async def test_logout_ends_the_session(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    csrf = await _account_csrf(client)
    cookie = client.cookies[SESSION_COOKIE]
    response = await client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?notice=signed-out"
    assert SESSION_COOKIE not in client.cookies
    client.cookies.set(SESSION_COOKIE, cookie)
    assert (await client.get("/account")).status_code == 303


async def test_two_factor_sign_in_through_the_pages(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    setup = await client.post("/account/2fa/setup", data={"csrf_token": await _account_csrf(client)})
    assert setup.status_code == 200
    assert 'src="data:image/svg+xml' in setup.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert secret
    wrong = await client.post("/account/2fa/enable", data={"csrf_token": _csrf(setup.text), "code": "000000"})
    assert wrong.status_code == 401
    enabled = await client.post(
        "/account/2fa/enable", data={"csrf_token": _csrf(setup.text), "code": totp_now(secret.group(1))}
    )
    assert enabled.status_code == 200
    assert len(re.findall(r"<li><code>[0-9a-f]{8}-[0-9a-f]{8}</code></li>", enabled.text)) == 10
    await client.post("/logout", data={"csrf_token": _csrf(enabled.text)})

    challenge = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert challenge.status_code == 200
    assert "set-cookie" not in challenge.headers
    mfa_token = _hidden(challenge.text, "mfa_token")
    used = await client.post("/login/2fa", data={"mfa_token": mfa_token, "code": totp_now(secret.group(1))})
    assert used.status_code == 401  # the step that turned 2FA on cannot sign in again
    assert _hidden(used.text, "mfa_token") == mfa_token
    done = await client.post(
        "/login/2fa", data={"mfa_token": mfa_token, "code": totp_now(secret.group(1), steps_ahead=1)}
    )
    assert done.status_code == 303
    assert SESSION_COOKIE in done.headers["set-cookie"]
    async with platform.database.transaction() as session:
        sessions = (await session.scalars(select(AuthSession).where(AuthSession.user_id == user.id))).all()
    assert [s.mfa for s in sessions if s.revoked_at is None] == [True]


async def test_expired_sign_in_step_goes_back_to_the_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/login/2fa", data={"mfa_token": "x" * 40, "code": "123456"})
    assert response.status_code == 401
    assert '<h1 id="login-title">Sign in</h1>' in response.text


async def test_reset_password_page_refuses_a_bad_token(client: httpx.AsyncClient) -> None:
    page = await client.get("/reset-password", params={"token": "prt_nonsense"})
    assert page.status_code == 200
    assert _hidden(page.text, "token") == "prt_nonsense"
    response = await client.post(
        "/reset-password",
        data={
            "token": "prt_nonsense",
            "new_password": "a long new password",
            "confirm_password": "a long new password",
        },
    )
    assert response.status_code == 401
    assert "reset link is invalid" in response.text


async def test_forgot_password_answers_the_same_for_unknown_addresses(client: httpx.AsyncClient) -> None:
    response = await client.post("/forgot-password", data={"email": "nobody@example.com"})
    assert response.status_code == 200
    assert "If an account with the address" in response.text


# -------------------------------------------------------------------- CSRF


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
async def test_a_post_without_the_right_csrf_token_changes_nothing(
    client: httpx.AsyncClient, platform: Platform, csrf: str | None
) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    data = {"name": "stolen"} | ({"csrf_token": csrf} if csrf is not None else {})
    response = await client.post("/account/api-keys", data=data)
    assert response.status_code == 403
    assert "form has expired" in response.text
    assert await _api_keys(platform, user) == []
    logout = await client.post("/logout", data={k: v for k, v in data.items() if k == "csrf_token"})
    assert logout.status_code == 403
    assert (await client.get("/account")).status_code == 200


async def test_the_csrf_token_of_another_session_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    other_csrf = await _account_csrf(client)
    client.cookies.clear()
    await _sign_in(client, user)
    response = await client.post("/account/api-keys", data={"name": "k", "csrf_token": other_csrf})
    assert response.status_code == 403
    assert await _api_keys(platform, user) == []


# ------------------------------------------------------------------ account


async def test_api_key_is_shown_once_and_works(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    created = await client.post(
        "/account/api-keys",
        data={"name": "backup", "expires_in_days": "30", "csrf_token": await _account_csrf(client)},
    )
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    token = re.search(r'id="api-key"[^>]*value="(pak_[^"]+)"', created.text)
    assert token
    me = await client.get("/api/me", headers=bearer(token.group(1)))
    assert me.json()["email"] == user.email
    account = await client.get("/account")
    assert token.group(1) not in account.text
    assert "backup" in account.text
    (key,) = await _api_keys(platform, user)
    revoked = await client.post(
        f"/account/api-keys/{key.id}/revoke", data={"csrf_token": _csrf(account.text)}
    )
    assert revoked.status_code == 303
    assert (await client.get("/api/me", headers=bearer(token.group(1)))).status_code == 401


async def test_bad_api_key_name_is_a_form_error(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    response = await client.post(
        "/account/api-keys", data={"name": "x" * 101, "csrf_token": await _account_csrf(client)}
    )
    assert response.status_code == 400
    assert "Name:" in response.text
    assert await _api_keys(platform, user) == []


async def test_change_password_keeps_this_session(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    csrf = await _account_csrf(client)
    fields = {
        "current_password": DEFAULT_PASSWORD,
        "new_password": "another fine password",
        "csrf_token": csrf,
    }
    mismatch = await client.post("/account/password", data=fields | {"confirm_password": "different"})
    assert mismatch.status_code == 400
    assert "differ" in mismatch.text
    changed = await client.post(
        "/account/password", data=fields | {"confirm_password": "another fine password"}
    )
    assert changed.headers["location"] == "/account?notice=password-changed"
    page = await client.get(changed.headers["location"])
    assert "Your password was changed" in page.text


async def test_ending_another_session(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    other = await client.post("/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    await _sign_in(client, user)
    page = await client.get("/account")
    assert page.text.count("/end") == 2
    async with platform.database.transaction() as session:
        api_session = await session.scalar(
            select(AuthSession).where(AuthSession.user_id == user.id, AuthSession.kind == "api")
        )
    assert api_session is not None
    ended = await client.post(
        f"/account/sessions/{api_session.id}/end", data={"csrf_token": _csrf(page.text)}
    )
    assert ended.status_code == 303
    refresh = await client.post("/api/auth/refresh", json={"refresh_token": other.json()["refresh_token"]})
    assert refresh.status_code == 401


async def test_ending_this_session_signs_out(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    page = await client.get("/account")
    (session_id,) = re.findall(r'action="/account/sessions/([0-9a-f-]+)/end"', page.text)
    ended = await client.post(f"/account/sessions/{session_id}/end", data={"csrf_token": _csrf(page.text)})
    assert ended.headers["location"] == "/login?notice=signed-out"
    assert SESSION_COOKIE not in client.cookies
    assert "You are signed out." in (await client.get(ended.headers["location"])).text


# -------------------------------------------------------------------- admin


async def test_admin_creates_searches_and_disables_users(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = await create_admin(platform)
    await _sign_in(client, admin)
    page = await client.get("/admin/users")
    assert page.status_code == 200
    csrf = _csrf(page.text)
    created = await client.post(
        "/admin/users",
        data={
            "email": "new.person@example.com",
            "password": "a long enough password",
            "roles": ["member"],
            "csrf_token": csrf,
        },
    )
    assert created.status_code == 303
    listing = await client.get(created.headers["location"])
    assert "new.person@example.com" in listing.text
    assert "The user was created." in listing.text
    duplicate = await client.post(
        "/admin/users",
        data={"email": "new.person@example.com", "password": "a long enough password", "csrf_token": csrf},
    )
    assert duplicate.status_code == 409
    async with platform.database.transaction() as session:
        person = await session.scalar(select(User).where(User.email == "new.person@example.com"))
    assert person is not None
    disabled = await client.post(
        f"/admin/users/{person.id}/active", data={"active": "false", "q": "new.person", "csrf_token": csrf}
    )
    assert disabled.headers["location"] == "/admin/users?q=new.person&notice=user-updated"
    roles = await client.post(
        f"/admin/users/{person.id}/roles", data={"roles": ["admin", "member"], "csrf_token": csrf}
    )
    assert roles.status_code == 303
    async with platform.database.transaction() as session:
        person = await session.get(User, person.id)
    assert person is not None
    assert person.is_active is False
    assert sorted(person.roles) == ["admin", "member"]
    last_admin = await client.post(
        f"/admin/users/{admin.id}/roles", data={"roles": ["member"], "csrf_token": csrf}
    )
    assert last_admin.status_code == 409
    assert "last active admin" in last_admin.text


async def test_audit_log_filters_and_pages(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await create_admin(platform)
    await _sign_in(client, admin)
    page = await client.get("/admin/audit")
    assert page.status_code == 200
    assert "auth.login" in page.text
    filtered = await client.get("/admin/audit", params={"action": "user.create", "since": "2000-01-01"})
    assert filtered.status_code == 200
    assert "<code>auth.login</code>" not in filtered.text
    assert "<code>user.create</code>" in filtered.text
    broken = await client.get("/admin/audit", params={"since": "yesterday", "before": "x"})
    assert broken.status_code == 400
    assert "YYYY-MM-DD" in broken.text


# ----------------------------------------------------------------- API docs


async def test_api_docs_work_offline(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert [r for r in app.routes if getattr(r, "path", None) == "/docs/oauth2-redirect"] == []
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text
    assert "<script>" not in docs.text
    assert "'unsafe-inline'" not in docs.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text)
    assert len(assets) == 4
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
    assert 'data-openapi-url="/openapi.json"' in docs.text
    assert (await client.get("/static/vendor/swagger-ui-dist/package.json")).status_code == 404
    assert (await client.get("/static/vendor/../../pyproject.toml")).status_code == 404


# --------------------------------------------------------------------- apps


async def test_enabled_apps_get_their_pages_static_files_and_a_tile(
    tmp_path: Path, settings: Settings, database: Database
) -> None:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/demo")
    async def demo_home() -> PlainTextResponse:
        return PlainTextResponse("demo home")

    (tmp_path / "demo.css").write_text("body {}")
    spec = AppSpec(
        name="demo",
        title="Demo",
        description="Shows the wiring.",
        pages=[pages],
        home_path="/demo",
        static_dir=tmp_path,
    )
    app = create_app(settings, database=database, apps=[spec])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/demo")).text == "demo home"
        assert (await client.get("/static/demo/demo.css")).text == "body {}"
        assert (await client.get("/static/css/pentad.css")).status_code == 200
        user = await create_user(app.state.platform)
        await _sign_in(client, user)
        home = await client.get("/")
    assert 'href="/demo">Demo</a>' in home.text
    assert "Shows the wiring." in home.text


async def test_a_signed_in_page_can_get_a_token_for_its_scripts(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    page = await client.get("/account")
    meta = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert meta, "pages carry the CSRF token for their scripts"
    refused = await client.post("/api/auth/session-token")
    assert refused.status_code == 403
    minted = await client.post("/api/auth/session-token", headers={"X-CSRF-Token": meta.group(1)})
    assert minted.status_code == 200
    token = minted.json()["access_token"]
    client.cookies.clear()
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    # The token is bound to the browser session: ending it ends the token too.
    api_session = await client.post(
        "/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    await client.post(
        "/api/auth/logout-all", headers={"Authorization": f"Bearer {api_session.json()['access_token']}"}
    )
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    # API credentials cannot mint one.
    key = await client.post("/api/auth/session-token", headers={"Authorization": f"Bearer {token}"})
    assert key.status_code == 401


async def test_an_old_sign_in_confirms_the_password_before_two_factor_set_up(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    fresh = await client.get("/account")
    assert 'id="setup-password"' not in fresh.text
    await age_sign_in(platform, user.id)
    account = await client.get("/account")
    assert 'id="setup-password"' in account.text
    assert 'id="key-password"' in account.text

    refused = await client.post("/account/2fa/setup", data={"csrf_token": _csrf(account.text)})
    assert "Confirm it is you first" in refused.text
    assert 'id="totp-secret"' not in refused.text
    wrong = await client.post(
        "/account/2fa/setup", data={"csrf_token": _csrf(account.text), "password": "not my password"}
    )
    assert 'id="totp-secret"' not in wrong.text
    setup = await client.post(
        "/account/2fa/setup", data={"csrf_token": _csrf(account.text), "password": DEFAULT_PASSWORD}
    )
    assert setup.status_code == 200
    assert 'id="totp-secret"' in setup.text
    assert 'id="setup-password"' not in (await client.get("/account")).text


async def test_turning_two_factor_off_on_the_page_needs_a_code(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    user = await create_user(platform)
    await _sign_in(client, user)
    setup = await client.post("/account/2fa/setup", data={"csrf_token": await _account_csrf(client)})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert secret
    enabled = await client.post(
        "/account/2fa/enable", data={"csrf_token": _csrf(setup.text), "code": totp_now(secret.group(1))}
    )
    assert enabled.status_code == 200
    csrf = await _account_csrf(client)
    without_code = await client.post(
        "/account/2fa/disable", data={"csrf_token": csrf, "password": DEFAULT_PASSWORD}
    )
    assert without_code.status_code == 400  # the form says which field is missing
    with_code = await client.post(
        "/account/2fa/disable",
        data={
            "csrf_token": csrf,
            "password": DEFAULT_PASSWORD,
            "code": totp_now(secret.group(1), steps_ahead=1),
        },
    )
    assert with_code.status_code == 303
    assert with_code.headers["location"] == "/account?notice=2fa-off"
