"""Small typed factories for tests: users, credentials, logins, TOTP codes, running due jobs."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pyotp
from sqlalchemy import update

from pentad.core import audit
from pentad.core.auth.models import AuthSession, User
from pentad.core.auth.service import AuthService
from pentad.core.db.base import utcnow
from pentad.core.jobs.worker import Worker
from pentad.core.platform import Platform

TEST_SECRET_KEY = "pentad-test-signing-secret-0123456789abcdef"
TEST_CRYPTO_KEYS = "ktest1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
DEFAULT_PASSWORD = "correct horse battery staple"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


async def create_user(
    platform: Platform,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    roles: Sequence[str] = ("member",),
    display_name: str | None = None,
) -> User:
    async with platform.database.transaction() as session:
        return await AuthService(session, platform).create_user(
            email=email or unique_email(), password=password, roles=roles, display_name=display_name,
            actor=audit.SYSTEM,
        )  # fmt: skip


async def create_admin(platform: Platform, **kwargs: Any) -> User:
    return await create_user(platform, roles=("admin", "member"), **kwargs)


async def issue_api_key(platform: Platform, user: User, scopes: Sequence[str] = ("*",)) -> str:
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        owner = await service.get_user(user.id)
        _, token = await service.create_api_key(
            owner, name="test", scopes=list(scopes), expires_in_days=None, actor=audit.SYSTEM
        )
        return token


async def issue_service_token(platform: Platform, scopes: Sequence[str] = ()) -> str:
    async with platform.database.transaction() as session:
        _, token = await AuthService(session, platform).create_service_token(
            name=f"svc-{uuid.uuid4().hex[:8]}", scopes=list(scopes), expires_in_days=None, actor=audit.SYSTEM
        )
        return token


@dataclass
class Account:
    """A user with the headers of an API key of theirs (what the app tests act as)."""

    user: User
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.user.id)

    @property
    def email(self) -> str:
        return self.user.email


async def account(
    platform: Platform, *, admin: bool = False, roles: tuple[str, ...] = ("member",)
) -> Account:
    """A new user (an admin, or with `roles`) and an API key of theirs."""
    user = await (create_admin(platform) if admin else create_user(platform, roles=roles))
    return Account(user, bearer(await issue_api_key(platform, user)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def access_token(client: httpx.AsyncClient, user: User) -> str:
    return str((await login(client, user.email))["access_token"])


def totp_now(secret: str, steps_ahead: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return str(totp.at(int(time.time()) + steps_ahead * totp.interval))


async def enable_totp(client: httpx.AsyncClient, token: str) -> tuple[str, list[str]]:
    """Turn two-factor sign-in on through the API: the TOTP secret and the recovery codes."""
    setup = await client.post("/api/me/2fa/setup", headers=bearer(token))
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    assert setup.json()["qr_svg"].startswith("<svg")
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    enabled = await client.post("/api/me/2fa/enable", json={"code": totp_now(secret)}, headers=bearer(token))
    assert enabled.status_code == 200, enabled.text
    return secret, enabled.json()["recovery_codes"]


async def age_sign_in(platform: Platform, user_id: uuid.UUID) -> None:
    """Make every session of the user look signed in long ago (beyond PENTAD_AUTH__REVERIFY_AFTER)."""
    async with platform.database.transaction() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id)
            .values(verified_at=utcnow() - timedelta(days=1))
        )
    platform.principals.clear()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


JOBS_TIMEOUT = 30.0


async def run_due_jobs(platform: Platform) -> None:
    """Run every job that is due, one at a time, until none is left (bounded by JOBS_TIMEOUT).

    One at a time because the test's database sessions share one connection."""
    await asyncio.wait_for(Worker(platform, concurrency=1).run(until_idle=True), JOBS_TIMEOUT)
