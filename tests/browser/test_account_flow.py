"""A person's first visit, in headless Chromium against a real `pentad serve`: sign in, turn on two-factor
authentication, sign in again with a code, create an API key and use it; the API docs render offline.

Screenshots of the sign-in and account pages, on a desktop and a phone viewport, go to /tmp for review.
Run it alone with `pytest tests/browser -m browser`.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    StorageState,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_EMAIL = "first.admin@example.com"
SCREENSHOTS = Path("/tmp")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def admin_password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_password: str) -> Iterator[str]:
    """`pentad serve` on a free loopback port with its own data directory and SQLite database."""
    data_dir = tmp_path_factory.mktemp("browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_ADMIN__EMAIL": ADMIN_EMAIL,
        "PENTAD_ADMIN__PASSWORD": admin_password,
        "PENTAD_LOG__LEVEL": "WARNING",
    }
    pentad = str(VENV_BIN / "pentad")
    # From the data directory, so a developer's ./.env cannot change the server under test.
    subprocess.run([pentad, "migrate"], env=env, cwd=data_dir, check=True, capture_output=True, timeout=60)
    with serving(env, data_dir, free_port(), data_dir / "server.log") as base_url:
        yield base_url


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("PENTAD_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is required (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


async def _screenshots(
    browser: Browser, base_url: str, path: str, name: str, state: StorageState | None = None
) -> None:
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = await browser.new_context(viewport=viewport, base_url=base_url, storage_state=state)
        page = await context.new_page()
        await page.goto(path)
        await page.screenshot(path=SCREENSHOTS / f"pentad-{name}-{label}.png", full_page=True)
        await context.close()


async def _sign_in(page: Page, email: str, password: str) -> None:
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_sign_in_two_factor_and_api_key(server: str, admin_password: str) -> None:
    _chromium_or_skip()
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport=DESKTOP, base_url=server)
        page = await context.new_page()
        page.on("console", watch)

        await page.goto("/account")
        await expect(page).to_have_url(f"{server}/login?next=%2Faccount")
        await _screenshots(browser, server, "/login", "login")
        await _sign_in(page, ADMIN_EMAIL, admin_password)
        await expect(page).to_have_url(f"{server}/account")
        await expect(page.get_by_role("heading", name="Your account")).to_be_visible()

        await page.get_by_role("button", name="Set up two-factor authentication").click()
        await expect(page.get_by_role("img", name="QR code")).to_be_visible()
        secret = (await page.locator("#totp-secret").inner_text()).strip()
        totp = pyotp.TOTP(secret)
        await page.get_by_label("Code from the app").fill(totp.now())
        await page.get_by_role("button", name="Turn two-factor on").click()
        await expect(page.get_by_role("heading", name="Two-factor authentication is on")).to_be_visible()
        await expect(page.locator("#recovery-codes li")).to_have_count(10)
        await expect(page.get_by_role("button", name="Copy the codes")).to_be_visible()

        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{server}/login?notice=signed-out")
        await _sign_in(page, ADMIN_EMAIL, admin_password)
        await expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
        # The code that turned 2FA on used up its time step; the next step's code is within the window.
        await page.get_by_label("Code").fill(totp.at(time.time() + totp.interval))
        await page.get_by_role("button", name="Continue").click()
        await expect(page).to_have_url(f"{server}/")

        await page.get_by_role("link", name="Account", exact=True).first.click()
        await page.get_by_label("Name").fill("browser test")
        await page.get_by_role("button", name="Create an API key").click()
        key_field = page.get_by_label("Your API key")
        await expect(key_field).to_have_value(re.compile(r"^pak_"))
        token = await key_field.input_value()
        await expect(page.get_by_role("button", name="Copy the key")).to_be_visible()
        async with httpx.AsyncClient(base_url=server, timeout=10) as api:
            me = await api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["email"] == ADMIN_EMAIL
        assert me.json()["two_factor_enabled"] is True

        await _screenshots(browser, server, "/account", "account", await context.storage_state())

        await page.goto("/api/docs")
        await expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
        # Swagger UI renders only the operations near the viewport of a document this large (166
        # operations): the page shows the first tags' operations, the document lists them all.
        assert await page.locator(".opblock").count() >= 5
        async with httpx.AsyncClient(base_url=server, timeout=10) as api:
            document = (await api.get("/openapi.json")).json()
        assert sum(len(operations) for operations in document["paths"].values()) >= 25
        await page.screenshot(path=SCREENSHOTS / "pentad-api-docs-desktop.png")

        await browser.close()
    assert problems == []
