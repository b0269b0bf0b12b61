"""Two people chat on /chat, each in their own headless Chromium context, against a real `pentad serve`:
a direct message shows as unread in the other's channel list, then live; typing shows; reading it sends
a receipt back; a thread reply and a reaction reach the other side.

Screenshots of the page (desktop and phone) go to /tmp for review.
Run it alone with `pytest tests/browser/test_chat.py -m browser`.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, async_playwright, expect

from tests.browser.test_account_flow import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    _chromium_or_skip,
    _sign_in,
)
from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = pytest.mark.browser

LIVE_MS = 10_000
"""How long a change may take to reach the other browser (it takes milliseconds)."""


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    password: str


@pytest.fixture(scope="module")
def people() -> tuple[Person, Person]:
    return (
        Person("ada@example.com", "Ada Lovelace", secrets.token_urlsafe(18)),
        Person("bob@example.com", "Bob Builder", secrets.token_urlsafe(18)),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, people: tuple[Person, Person]) -> Iterator[str]:
    """`pentad serve` with its own SQLite database and two member accounts."""
    data_dir = tmp_path_factory.mktemp("chat-browser")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
    }
    port = free_port()
    # Signed file links (attachments) point at the server itself: the page's CSP allows only its own origin.
    env["PENTAD_SERVER__BASE_URL"] = f"http://127.0.0.1:{port}"
    pentad = str(VENV_BIN / "pentad")
    subprocess.run([pentad, "migrate"], env=env, cwd=data_dir, check=True, capture_output=True, timeout=60)
    for person in people:
        subprocess.run(
            [pentad, "user", "create", "--email", person.email, "--password", person.password,
             "--name", person.name],
            env=env, cwd=data_dir, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    with serving(env, data_dir, port, data_dir / "server.log") as base_url:
        yield base_url


async def _open_chat(browser: Browser, server: str, person: Person, problems: list[str]) -> Page:
    context = await browser.new_context(viewport=DESKTOP, base_url=server)
    page = await context.new_page()

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{person.name}: {message.text}")

    page.on("console", watch)
    page.on("pageerror", lambda error: problems.append(f"{person.name}: {error}"))
    await page.goto("/chat")
    await expect(page).to_have_url(f"{server}/login?next=%2Fchat")
    await _sign_in(page, person.email, person.password)
    await expect(page).to_have_url(f"{server}/chat")
    await expect(page.locator("#connection")).to_have_text("Connected", timeout=LIVE_MS)
    return page


def _message(page: Page, text: str) -> Locator:
    return page.locator("#messages > li.msg", has=page.locator(".msg__body", has_text=text))


async def test_two_people_chat_live(server: str, people: tuple[Person, Person]) -> None:
    _chromium_or_skip()
    ada, bob = people
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ada_page = await _open_chat(browser, server, ada, problems)
        bob_page = await _open_chat(browser, server, bob, problems)

        # Bob reads a channel of his own: the direct message arrives somewhere he is not looking.
        await bob_page.get_by_role("button", name="New channel").click()
        await bob_page.get_by_label("Name", exact=True).fill("general")
        await bob_page.get_by_role("button", name="Create channel").click()
        await expect(bob_page.get_by_role("heading", name="# general")).to_be_visible()

        await ada_page.get_by_role("button", name="New direct message").click()
        await ada_page.get_by_label("Find a person").fill("bob")
        await ada_page.get_by_role("button", name=re.compile(r"^Bob Builder \(@bob\)")).click()
        await expect(ada_page.get_by_role("heading", name="Bob Builder")).to_be_visible()
        ada_composer = ada_page.get_by_label("Message", exact=True)
        await ada_composer.fill("Hello Bob")
        await ada_page.get_by_role("button", name="Send", exact=True).click()
        await expect(ada_page.locator("#messages .msg__body")).to_have_text(["Hello Bob"])
        await expect(ada_page.locator("#receipts")).to_have_text("")

        # The unread badge, live, on the conversation Bob is not viewing.
        direct = bob_page.locator("#channel-list a", has_text="Ada Lovelace")
        unread = direct.locator(".chat-badge--unread")
        await expect(unread).to_have_text("1", timeout=LIVE_MS)
        await expect(unread).to_have_attribute("aria-label", "1 unread message")

        # Bob opens it: he reads the message, his badge goes, Ada sees the receipt come back.
        await direct.click()
        await expect(bob_page).to_have_url(re.compile(r"/chat\?channel="))
        await expect(bob_page.locator("#messages .msg__body")).to_have_text(["Hello Bob"])
        await expect(direct.locator(".chat-badge")).to_have_count(0)
        await expect(ada_page.locator("#receipts")).to_have_text("Seen by Bob Builder", timeout=LIVE_MS)

        # Ada types: Bob sees it; she sends: Bob sees the message live and the indicator goes.
        await ada_composer.press_sequentially("How are you?")
        await expect(bob_page.locator("#typing")).to_have_text("Ada Lovelace is typing…", timeout=LIVE_MS)
        await ada_composer.press("Enter")
        await expect(bob_page.locator("#messages .msg__body")).to_have_text(
            ["Hello Bob", "How are you?"], timeout=LIVE_MS
        )
        await expect(bob_page.locator("#typing")).to_have_text("")

        # Bob answers in the thread of that message; Ada sees the reply count, and the reply.
        await _message(bob_page, "How are you?").get_by_role("button", name="Reply in thread").click()
        await expect(bob_page.locator("#thread-parent .msg__body")).to_have_text("How are you?")
        await bob_page.get_by_label("Reply", exact=True).fill("Fine, thanks!")
        await bob_page.get_by_role("button", name="Send reply").click()
        await expect(bob_page.locator("#thread-replies .msg__body")).to_have_text(["Fine, thanks!"])
        ada_thread = _message(ada_page, "How are you?").get_by_role("button", name="1 reply")
        await expect(ada_thread).to_be_visible(timeout=LIVE_MS)
        await ada_thread.click()
        await expect(ada_page.locator("#thread-replies .msg__body")).to_have_text(["Fine, thanks!"])

        # Ada reacts to the first message; Bob sees the reaction.
        first = _message(ada_page, "Hello Bob")
        await first.get_by_text("Add reaction").click()
        await first.get_by_role("button", name="React with 👍").click()
        await expect(first.locator(".reaction[aria-pressed='true']")).to_have_text("👍 1")
        bob_reaction = _message(bob_page, "Hello Bob").locator(".reaction").first
        await expect(bob_reaction).to_have_text("👍 1", timeout=LIVE_MS)
        await expect(bob_reaction).to_have_attribute("aria-pressed", "false")

        await ada_page.screenshot(path=SCREENSHOTS / "pentad-chat-desktop.png")
        await ada_page.set_viewport_size(PHONE)
        await ada_page.get_by_role("button", name="Close thread").click()
        await ada_page.screenshot(path=SCREENSHOTS / "pentad-chat-phone.png")
        await browser.close()
    assert problems == []


SDK_SCENARIO = """
async () => {
  const { ChatClient } = await import("/static/chat/chat-sdk.js");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const getToken = async () => {
    const headers = { "X-CSRF-Token": csrf };
    return (await fetch("/api/chat/session-token", { method: "POST", headers })).json();
  };
  const until = async (check, what) => {
    for (const started = Date.now(); !check(); ) {
      if (Date.now() - started > 10000) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const writer = new ChatClient({ getToken });
  const channel = await writer.createChannel({ kind: "public", name: "sdk" });
  const one = await writer.send(channel.id, { text: "one" });
  await writer.send(channel.id, { text: "two" });
  await writer.react(one.id, "👍");

  // A reader whose state reflects seq 1 only, connecting while a new message is being sent.
  const reader = new ChatClient({ getToken });
  const seen = [];
  reader.on("*", (event) => {
    if (event.seq !== undefined) seen.push([event.type, event.seq, event.message.text]);
  });
  reader.watch(channel.id, { since: 1 });
  const connected = reader.connect();
  await writer.send(channel.id, { text: "three" });
  await connected;
  await until(() => seen.some(([, seq]) => seq === 4), "seq 4");

  // Sends while offline wait in the queue; the first retry reaches the server but its answer is lost.
  let network = "down";
  const flaky = async (url, init) => {
    if (init?.method === "POST" && String(url).endsWith("/messages")) {
      if (network === "down") throw new TypeError("Failed to fetch");
      if (network === "answer lost") {
        network = "up";
        await fetch(url, init);
        throw new TypeError("Failed to fetch");
      }
    }
    return fetch(url, init);
  };
  const sender = new ChatClient({ getToken, fetch: flaky, retryInitial: 20, retryMax: 100 });
  const sends = [sender.send(channel.id, { text: "four" }), sender.send(channel.id, { text: "five" })];
  await until(() => sender.pending()[0]?.attempts >= 2, "two failed attempts");
  const offline = sender.pending().map((entry) => [entry.body.text, entry.state]);
  network = "answer lost";
  const [four, five] = await Promise.all(sends);
  await until(() => seen.some(([, seq]) => seq === 6), "seq 6");
  const history = await sender.messages(channel.id);
  for (const client of [writer, reader, sender]) client.close();
  return {
    seen,
    offline,
    pendingAfter: sender.pending().length,
    acknowledged: [four.text, five.text, four.client_id !== null],
    history: history.messages.map((message) => [message.text, message.seq]),
  };
}
"""


async def test_the_sdk_fills_gaps_and_sends_exactly_once(server: str, people: tuple[Person, Person]) -> None:
    """Resume from a seq (the sync fills in what came before, live events are not repeated) and the
    offline queue (sends wait, keep their order, and a retry whose first answer was lost stores once)."""
    _chromium_or_skip()
    ada, _ = people
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await _open_chat(browser, server, ada, problems)
        result = await page.evaluate(SDK_SCENARIO)
        await browser.close()
    assert result["seen"] == [
        ["message.new", 2, "two"],
        ["message.updated", 3, "one"],
        ["message.new", 4, "three"],
        ["message.new", 5, "four"],
        ["message.new", 6, "five"],
    ]
    assert result["offline"] == [["four", "waiting"], ["five", "queued"]]
    assert result["pendingAfter"] == 0
    assert result["acknowledged"] == ["four", "five", True]
    assert result["history"] == [["one", 1], ["two", 2], ["three", 4], ["four", 5], ["five", 6]]
    assert problems == []


def _png(width: int = 8, height: int = 6) -> bytes:
    """A small valid PNG (solid blue), for an image attachment."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\x40\xd0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


async def test_attachments_search_and_moderation(server: str, people: tuple[Person, Person]) -> None:
    """The rest of the page: an image upload, search, and a channel owner's tools (slow mode, mute, the
    reports queue) against a member."""
    _chromium_or_skip()
    ada, bob = people
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ada_page = await _open_chat(browser, server, ada, problems)
        bob_page = await _open_chat(browser, server, bob, problems)
        for page in (ada_page, bob_page):
            page.on("dialog", lambda dialog: dialog.accept("Spam" if dialog.type == "prompt" else None))

        await bob_page.get_by_role("button", name="New channel").click()
        await bob_page.get_by_label("Name", exact=True).fill("moderated")
        await bob_page.get_by_label("Topic").fill("Where rules apply")
        await bob_page.get_by_role("button", name="Create channel").click()
        await expect(bob_page.get_by_role("heading", name="# moderated")).to_be_visible()
        await bob_page.get_by_label("Message", exact=True).fill("Welcome, read the rules")
        await bob_page.get_by_label("Message", exact=True).press("Enter")
        await expect(_message(bob_page, "Welcome")).to_be_visible()

        # Ada follows a link to the public channel: she joins it and sees its history.
        await ada_page.goto(bob_page.url)
        await expect(ada_page.get_by_role("heading", name="# moderated")).to_be_visible()
        await expect(_message(ada_page, "Welcome")).to_be_visible()

        # An image, uploaded then sent with text: Bob sees its thumbnail.
        await ada_page.get_by_label("Attach a file").set_input_files(
            {"name": "chart.png", "mimeType": "image/png", "buffer": _png()}
        )
        await expect(ada_page.locator("#composer-uploads")).to_contain_text("chart.png")
        await ada_page.get_by_label("Message", exact=True).fill("Quarterly figures attached")
        await ada_page.get_by_role("button", name="Send", exact=True).click()
        image = _message(bob_page, "Quarterly figures").get_by_role("img", name="chart.png")
        await expect(image).to_be_visible(timeout=LIVE_MS)
        await expect(image).to_have_js_property("complete", True)
        assert await image.evaluate("img => img.naturalWidth") > 0

        # Search finds it and opens its channel.
        await bob_page.get_by_label("Search messages").fill("quarterly")
        await bob_page.get_by_role("button", name="Search", exact=True).click()
        results = bob_page.locator("#search-list li")
        await expect(results).to_have_count(1)
        await expect(results.first).to_contain_text("Quarterly figures attached")
        await results.first.get_by_role("button").click()
        await expect(bob_page.locator("#search-results")).to_be_hidden()

        # Ada reports Bob's welcome; Bob, the owner, dismisses the report, sets slow mode and mutes Ada.
        welcome = _message(ada_page, "Welcome")
        await welcome.get_by_text("More", exact=True).click()
        await welcome.get_by_role("button", name="Report").click()
        await expect(ada_page.locator("#composer-notice")).to_have_text(re.compile("moderators will look"))
        await bob_page.get_by_role("button", name="Moderation").click()
        report = bob_page.locator("#report-list li")
        await expect(report).to_contain_text("Reason: Spam")
        await report.get_by_role("button", name="Dismiss").click()
        await expect(bob_page.locator("#report-list")).to_have_text("No open reports.")
        await bob_page.get_by_label("Slow mode").select_option("30")
        await bob_page.get_by_role("button", name="Set slow mode").click()
        await expect(bob_page.locator("#moderation-error")).to_have_text("Slow mode saved.")
        await bob_page.get_by_role("button", name="Close", exact=True).click()
        await expect(ada_page.locator("#channel-slow")).to_have_text(
            "Slow mode: one message every 30 s", timeout=LIVE_MS
        )

        figures = _message(bob_page, "Quarterly figures")
        await figures.get_by_text("More", exact=True).click()
        await figures.get_by_role("button", name="Mute Ada Lovelace").click()
        await expect(bob_page.locator("#composer-notice")).to_have_text("Ada Lovelace is muted here.")
        await ada_page.get_by_label("Message", exact=True).fill("Can I still talk?")
        await ada_page.get_by_role("button", name="Send", exact=True).click()
        await expect(ada_page.locator("#composer-error")).to_contain_text("muted")
        await expect(ada_page.get_by_label("Message", exact=True)).to_have_value("Can I still talk?")
        await bob_page.get_by_role("button", name="Moderation").click()
        await expect(bob_page.locator("#restriction-list")).to_contain_text("Muted: Ada Lovelace")
        await bob_page.screenshot(path=SCREENSHOTS / "pentad-chat-moderation.png")
        await browser.close()
    # The refused send is the only error the console saw (Chromium reports failed requests itself).
    assert [p for p in problems if "403" not in p] == []
