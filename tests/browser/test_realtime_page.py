"""The browser client (/static/js/realtime.js) in headless Chromium, on a test page served by a real server:
events show live; when the server drops the socket or restarts, the page reconnects with a fresh token and
shows every event exactly once, in order, including those published while it was disconnected.

The page (tests/browser/realtime_page/) follows the topic named in its query string and renders each event
as a list item; the test publishes from the server side. Run alone with `pytest tests/browser -m browser`.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect

from pentad.core.db.migrate import upgrade_async
from pentad.core.realtime.hub import Hub
from pentad.core.realtime.protocol import CloseCode
from tests.browser.realtime_page_app import APP as PAGE_APP
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, _chromium_or_skip
from tests.core.realtime.conftest import (
    TEST_APP,
    WAIT,
    RedisProcess,
    access_token,
    live_server,
    realtime_settings,
    room_member,
    serve_environment,
)
from tests.core.realtime.realtime_app import Note
from tests.factories import free_port
from tests.servers import wait_until_ready

pytestmark = pytest.mark.browser

TOPIC = "test.room.r1"
EXPECT_TIMEOUT_MS = 30_000
"""Reconnection waits out a random backoff of up to a few seconds after a restart."""
REPOSITORY = Path(__file__).parents[2]
SOCKET_FAILED = re.compile(r"^WebSocket connection to 'ws://[^']+' failed")
"""Chromium's own console error for a refused connection: expected while the server is down."""


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file that several servers (and processes) use at once."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('realtime-page') / 'pentad.db'}"
    await upgrade_async(url)
    return url


@dataclass
class RealtimePage:
    page: Page
    problems: list[str] = field(default_factory=list)

    async def shows(self, texts: list[str]) -> None:
        """The page lists exactly these events, in order, with consecutive sequence numbers."""
        events = self.page.locator("#events li")
        await expect(events).to_have_text(texts, timeout=EXPECT_TIMEOUT_MS)
        seqs = [int(seq or 0) for seq in await events.evaluate_all("items => items.map(i => i.dataset.seq)")]
        assert seqs == list(range(seqs[0], seqs[0] + len(texts)))

    async def has(self, output: str, value: str | re.Pattern[str]) -> None:
        await expect(self.page.locator(f"#{output}")).to_have_text(value, timeout=EXPECT_TIMEOUT_MS)


@asynccontextmanager
async def open_page(
    base_url: str,
    token: str,
    expected: Callable[[str], bool] = lambda _: False,
    backoff_max_ms: int = 30_000,
) -> AsyncIterator[RealtimePage]:
    """The test page in a fresh headless Chromium, following TOPIC; console errors (but the `expected`
    ones) and uncaught exceptions are collected in `problems`."""
    _chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            opened = RealtimePage(page)

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error" and not expected(message.text):
                    opened.problems.append(message.text)

            page.on("console", on_console)
            page.on("pageerror", lambda error: opened.problems.append(f"uncaught: {error}"))
            query = urlencode({"token": token, "topic": TOPIC, "backoffMax": backoff_max_ms})
            await page.goto(f"{base_url}/static/rtpage/index.html?{query}")
            await opened.has("state", "connected")
            yield opened
        finally:
            await browser.close()


async def publish(hub: Hub, *texts: str) -> None:
    for text in texts:
        await hub.publish(TOPIC, Note(text=text))


def drop_every_socket(hub: Hub, code: CloseCode) -> None:
    """Close every socket with `code`, as the server does (1012 when it stops, 4003 at expiry, ...)."""
    for connection in list(hub.connections):
        connection.close(code, "test: dropped")


async def test_events_show_live_and_exactly_once_after_the_server_drops_the_socket(
    tmp_path: Path, database_url: str
) -> None:
    settings = realtime_settings(tmp_path, database_url, heartbeat_interval=0.5, idle_timeout=1.5)
    async with live_server(settings, apps=[TEST_APP, PAGE_APP]) as server:
        hub = server.platform.hub
        user = await room_member(server.platform, "r1")
        async with open_page(server.http_url, await access_token(server.platform, user)) as opened:
            await publish(hub, "live 1", "live 2", "live 3")
            await opened.shows(["live 1", "live 2", "live 3"])

            # Closed sockets get nothing more: these events reach the page only by resuming.
            drop_every_socket(hub, CloseCode.SERVICE_RESTART)
            missed = [f"missed {n}" for n in range(1, 21)]
            await publish(hub, *missed)
            await opened.has("connections", "2")
            await publish(hub, "after 1", "after 2")
            await opened.shows(["live 1", "live 2", "live 3", *missed, "after 1", "after 2"])
            await opened.has("tokens", "2")
            await opened.has("recovery-failures", "0")

            # The page answers the server's pings, so it outlives the idle timeout on the same socket.
            await asyncio.sleep(settings.realtime.idle_timeout + 1)
            await opened.has("connections", "2")

            # Acknowledgements are promises: the answer to presence and publish, or a RealtimeError.
            members = await opened.page.evaluate(f"() => window.realtime.presence({TOPIC!r})")
            assert members == [{"id": str(user.id), "kind": "user"}]
            published = await opened.page.evaluate(
                "() => window.realtime.publish('test.typing.r1', {typing: true})"
            )
            assert published == {"seq": 1, "epoch": published["epoch"]}
            refused = await opened.page.evaluate(
                f"() => window.realtime.publish({TOPIC!r}, {{text: 'x'}}).catch(e => [e.name, e.code])"
            )
            assert refused == ["RealtimeError", "publish_not_allowed"]
            forbidden = await opened.page.evaluate(
                """() => new Promise(resolve => window.realtime.subscribe(
                    'test.room.r2', () => {}, {onError: (topic, error) => resolve([topic, error.code])}))"""
            )
            assert forbidden == ["test.room.r2", "forbidden"]
            # Subscribe, unsubscribe and subscribe again at once (what React's StrictMode does to effects).
            again = await opened.page.evaluate(
                """() => new Promise(resolve => {
                    window.realtime.subscribe('test.typing.r1', () => resolve('first handler'))();
                    window.realtime.subscribe('test.typing.r1', event => resolve(event.data));
                    window.realtime.publish('test.typing.r1', {typing: 'again'});
                })"""
            )
            assert again == {"typing": "again"}

            # Calls answer the caller (and shout tells the room); refusals and failures are RealtimeErrors.
            answer = await opened.page.evaluate(
                f"() => window.realtime.call({TOPIC!r}, 'shout', {{text: 'hello'}})"
            )
            assert answer == {"text": "HELLO", "by": str(user.id)}
            failures = await opened.page.evaluate(
                """(topic) => Promise.all([
                    [topic, 'shout', {}], [topic, 'fail', {}], [topic, 'nope', {}],
                    ['test.room.r2', 'shout', {text: 'x'}],
                ].map(([t, method, data]) => window.realtime.call(t, method, data).then(
                    answer => ['answered', answer], e => [e.name, e.code, e.message])))""",
                TOPIC,
            )
            assert failures == [
                ["RealtimeError", "call_failed", "call_failed: Say something."],
                ["RealtimeError", "call_failed", "call_failed: The server failed to answer this call."],
                ["RealtimeError", "unknown_method", "unknown_method: This topic has no method 'nope'."],
                ["RealtimeError", "forbidden", "forbidden: You may not call on this topic."],
            ]
            # A call slower than its timeout rejects; the late answer is dropped and the socket goes on.
            timed_out = await opened.page.evaluate(
                f"""() => window.realtime.call({TOPIC!r}, 'dawdle', {{seconds: 1}}, {{timeout: 100}})
                    .then(answer => ['answered', answer], e => [e.name, e.message])"""
            )
            assert timed_out == ["RealtimeTimeoutError", "realtime: no answer to call within 100 ms"]
            await asyncio.sleep(1.2)
            patient = await opened.page.evaluate(
                f"() => window.realtime.call({TOPIC!r}, 'dawdle', {{seconds: 0}}, {{timeout: 5000}})"
            )
            assert patient == {"text": "late"}
            await opened.shows(["live 1", "live 2", "live 3", *missed, "after 1", "after 2", "HELLO"])
            await opened.has("connections", "2")
            assert await opened.page.locator("#errors li").count() == 0
        assert opened.problems == []


async def test_the_page_is_told_when_what_it_missed_is_no_longer_kept(
    tmp_path: Path, database_url: str
) -> None:
    settings = realtime_settings(tmp_path, database_url)
    async with live_server(settings, apps=[TEST_APP, PAGE_APP]) as server:
        hub = server.platform.hub
        user = await room_member(server.platform, "r1")
        async with open_page(server.http_url, await access_token(server.platform, user)) as opened:
            await publish(hub, "before")
            await opened.shows(["before"])
            drop_every_socket(hub, CloseCode.SLOW_CONSUMER)
            # One more than the topic's history keeps: resuming cannot replay them all.
            await publish(hub, *(f"lost {n}" for n in range(2001)))
            await opened.has("recovery-failures", "1")
            await publish(hub, "after")
            await opened.has("connections", "2")
            await expect(opened.page.locator("#events li")).to_have_text(["before", "after"])
        assert opened.problems == []


async def test_expired_credentials_mean_a_fresh_token_and_revoked_ones_the_end(
    tmp_path: Path, database_url: str
) -> None:
    settings = realtime_settings(tmp_path, database_url)
    async with live_server(settings, apps=[TEST_APP, PAGE_APP]) as server:
        hub = server.platform.hub
        user = await room_member(server.platform, "r1")
        async with open_page(server.http_url, await access_token(server.platform, user)) as opened:
            drop_every_socket(hub, CloseCode.CREDENTIALS_EXPIRED)
            await opened.has("connections", "2")
            await opened.has("tokens", "2")
            await publish(hub, "still here")
            await opened.shows(["still here"])

            drop_every_socket(hub, CloseCode.CREDENTIALS_REVOKED)
            await opened.has("state", "closed")
            await asyncio.sleep(1)
            assert (await opened.page.locator("#tokens").inner_text(), len(hub.connections)) == ("2", 0)
            refused = await opened.page.evaluate(
                "() => window.realtime.presence('test.room.r1').catch(e => [e.name, e.code])"
            )
            assert refused == ["RealtimeClosedError", CloseCode.CREDENTIALS_REVOKED]
        assert opened.problems == []


class PageServer:
    """`pentad serve` with the test page, in a subprocess that the test kills and starts again."""

    def __init__(self, environment: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.environment = {**environment, "PENTAD_SERVER__PORT": str(self.port)}
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "tests.browser.serve_realtime_page"),
                env=self.environment,
                cwd=REPOSITORY,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        failure = await wait_until_ready(
            f"{self.http_url}/healthz", self.process, self.log, name="pentad serve"
        )
        if failure is not None:
            pytest.fail(failure)

    async def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            async with asyncio.timeout(WAIT):
                await self.process.wait()
            self.process = None


async def test_the_page_resumes_across_a_server_restart(tmp_path: Path, database_url: str) -> None:
    """Two nodes on one Redis: the page's node is killed, events are published through the other one, and
    the page's node comes back on the same port; the page resumes from the history kept in Redis."""
    redis = RedisProcess(tmp_path)
    await redis.start()
    try:
        settings = realtime_settings(tmp_path, database_url, broker_url=redis.url)
        async with live_server(settings, apps=[TEST_APP, PAGE_APP]) as other_node:
            hub = other_node.platform.hub
            user = await room_member(other_node.platform, "r1")
            (tmp_path / "page-node").mkdir()
            environment = serve_environment(
                tmp_path / "page-node",
                database_url,
                PENTAD_APPS="rtest,rtpage",
                PENTAD_REALTIME__BROKER_URL=redis.url,
            )
            page_node = PageServer(environment, tmp_path / "page-node.log")
            await page_node.start()
            try:
                token = await access_token(other_node.platform, user)
                # A short backoff ceiling: the page retries often while the node starts again.
                page = open_page(page_node.http_url, token, SOCKET_FAILED.match, backoff_max_ms=1000)
                async with page as opened:
                    await publish(hub, "live 1", "live 2")
                    await opened.shows(["live 1", "live 2"])

                    await page_node.kill()
                    await opened.has("state", re.compile("^(disconnected|connecting)$"))
                    down = [f"while down {n}" for n in range(1, 11)]
                    await publish(hub, *down)
                    await page_node.start()
                    await opened.has("connections", "2")
                    await publish(hub, "after restart")
                    await opened.shows(["live 1", "live 2", *down, "after restart"])
                    await opened.has("recovery-failures", "0")
                assert opened.problems == []
            finally:
                await page_node.kill()
    finally:
        await redis.kill()
