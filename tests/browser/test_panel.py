"""Chromium drives the panel's pages against a served panel and a real `pentad agent` process running the
"any command" template (its default command prints `ready` and echoes every line it reads as `got: …`):
the servers list shows the server with its state and node; on the server page the Start button starts it,
the console (xterm.js, fed by the hub's console topic) shows its output, a command typed in the page comes
back in the console, the CPU and memory charts (uPlot) fill from the state topic, a reload shows the
console's history read from the node, Kill stops it; an owner shares the server with another account
through the subusers form and the activity log lists it; the nodes page shows the node online and makes
an enrolment token shown once.

Runs once (SQLite: this is about the browser, the agent and the hub, not the database)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from pentad.core.db.migrate import upgrade_async
from tests.agent.conftest import nft_reason, require_bwrap
from tests.apps.panel.link_support import (
    ServedPanel,
    enrolment_token,
    eventually,
    node_row,
    panel_settings,
    served_panel,
    server_row,
)
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, _chromium_or_skip, _sign_in
from tests.conftest import ALL_APPS
from tests.factories import (
    DEFAULT_PASSWORD,
    bearer,
    create_admin,
    create_user,
    free_port,
    issue_api_key,
    run_due_jobs,
)

pytestmark = pytest.mark.browser

VENV_BIN = Path(sys.executable).parent
WAIT_MS = 30_000
CONNECTED = "() => document.getElementById('panel-server').dataset.link === 'connected'"


@dataclass
class Stage:
    panel: ServedPanel
    admin_email: str
    friend_email: str
    server_id: str
    node_id: str
    folder: Path  # the server's folder on the node


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """Outside pytest's 0700 temporary folders: game uids pass through every folder above theirs."""
    require_bwrap()
    _chromium_or_skip()
    folder = Path(tempfile.mkdtemp(prefix="pentad-panel-browser-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _run(*argv: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


@pytest.fixture(scope="module")
async def stage(home: Path) -> AsyncIterator[Stage]:
    url = f"sqlite+aiosqlite:///{home / 'panel.db'}"
    await upgrade_async(url, ALL_APPS)
    port = free_port()
    settings = panel_settings(home / "panel", url, agent_command_timeout=15.0)
    settings.server.base_url = f"http://127.0.0.1:{port}"  # backup download links point here
    async with served_panel(settings, port) as panel:
        admin = await create_admin(panel.platform)
        friend = await create_user(panel.platform, display_name="Friend")
        headers = bearer(await issue_api_key(panel.platform, admin))
        env = {
            **os.environ,
            "PENTAD_AGENT__DATA_DIR": str(home / "agent"),
            "PENTAD_AGENT__STOP_TIMEOUT": "5",
            "PENTAD_AGENT__KILL_TIMEOUT": "5",
            "PENTAD_AGENT__STATS_INTERVAL": "0.5",
            "PENTAD_AGENT__CGROUP_ROOT": str(home / "no-cgroup"),
            "PENTAD_AGENT__NFT_TABLE": "pentad_agent_test",  # never the host's own agent table
        }
        token = await enrolment_token(panel.platform, "browser-node")
        await _run(str(VENV_BIN / "pentad"), "agent", "enrol", panel.url, token, env=env)
        node_id = json.loads((home / "agent" / "credential").read_text())["node_id"]
        log = home / "agent.log"
        with log.open("wb") as sink:
            agent = await asyncio.create_subprocess_exec(
                str(VENV_BIN / "pentad"), "agent", "run", env=env, stdout=sink, stderr=sink
            )
        try:

            async def online() -> bool:
                assert agent.returncode is None, log.read_text()
                return (await node_row(panel.platform, node_id)).status == "online"

            await eventually(online, "the agent online")
            async with httpx.AsyncClient(base_url=panel.url, headers=headers, timeout=30) as http:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                made = await http.post(
                    f"/api/panel/nodes/{node_id}/allocations", json={"ip": "127.0.0.1", "ports": [str(port)]}
                )
                assert made.status_code == 201, made.text
                templates = (await http.get("/api/panel/templates")).json()
                generic = next(t["id"] for t in templates if t["slug"] == "generic")
                created = await http.post(
                    "/api/panel/servers",
                    json={"name": "Echo box", "node_id": node_id, "template_id": generic,
                          "memory_mb": 256, "disk_mb": 256},
                )  # fmt: skip
                assert created.status_code == 201, created.text
                server_id = created.json()["id"]
                assert (
                    await http.post(f"/api/panel/servers/{server_id}/install", json={})
                ).status_code == 202

                async def installed() -> bool:
                    row = await server_row(panel.platform, server_id)
                    assert row.status != "install_failed", log.read_text()[-3000:]
                    return row.status == "installed" and row.state == "offline"

                await eventually(installed, "the server installed")
            folder = home / "agent" / "servers" / server_id
            yield Stage(panel, admin.email, friend.email, server_id, node_id, folder)
        finally:
            with contextlib.suppress(ProcessLookupError):
                agent.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await agent.wait()
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
            for state_file in (home / "agent" / "run").glob("*/state.json"):  # games outlive the agent
                with contextlib.suppress(
                    ValueError, KeyError, TypeError, ProcessLookupError, PermissionError
                ):
                    os.kill(int(json.loads(state_file.read_text())["shim_pid"]), signal.SIGKILL)


CONSOLE_HAS = "(text) => (document.querySelector('#console .xterm-rows')?.innerText || '').includes(text)"


async def _console_shows(page: Page, text: str) -> None:
    await page.wait_for_function(CONSOLE_HAS, arg=text, timeout=WAIT_MS)


async def test_the_panel_pages_in_chromium(stage: Stage) -> None:
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error" and ".map" not in message.text:
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=stage.panel.url)
            page = await context.new_page()
            page.on("console", watch)
            page.on("pageerror", lambda error: problems.append(str(error)))

            await page.goto("/panel")
            assert "/login" in page.url
            await _sign_in(page, stage.admin_email, DEFAULT_PASSWORD)
            await page.wait_for_url("**/panel")
            row = page.locator(f'tr[data-server="{stage.server_id}"]')
            assert "Echo box" in await row.inner_text()
            assert "offline" in await row.inner_text()
            assert "browser-node" in await row.inner_text()

            await row.get_by_role("link", name="Echo box").click()
            await page.wait_for_url(f"**/panel/servers/{stage.server_id}")
            await page.wait_for_function(
                "() => document.getElementById('panel-server').dataset.link === 'connected'"
            )
            await page.get_by_role("button", name="Start", exact=True).click()
            await _console_shows(page, "ready")
            await page.wait_for_function(
                "() => document.getElementById('server-state').textContent === 'running'", timeout=WAIT_MS
            )
            await page.get_by_label("Command", exact=True).fill("hello from chromium")
            await page.get_by_label("Command", exact=True).press("Enter")
            await _console_shows(page, "got: hello from chromium")
            await page.wait_for_function(
                "() => Number(document.getElementById('cpu-chart').dataset.points) >= 2"
                " && Number(document.getElementById('memory-chart').dataset.points) >= 2",
                timeout=WAIT_MS,
            )
            assert (await page.locator("#cpu-chart canvas").count()) == 1
            assert "MiB" in await page.get_by_test_id("stats").inner_text()
            if nft_reason() is None:  # the agent counts the allocation's traffic: totals, then in/out rates
                await page.wait_for_function(
                    "() => Number(document.getElementById('net-chart').dataset.points) >= 1", timeout=WAIT_MS
                )
                assert "packets" in await page.get_by_test_id("stat-net").inner_text()
                assert "KiB/s" in await page.get_by_test_id("stat-net-rate").inner_text()
            else:
                assert "nft" in await page.get_by_test_id("stat-net").inner_text()
            await page.screenshot(path=str(SCREENSHOTS / "panel-server.png"), full_page=True)

            # A new page (a reconnect) shows what was said before, read from the node's history.
            await page.reload()
            await _console_shows(page, "got: hello from chromium")

            # A schedule made in the page, run now: its command reaches the game; its history shows.
            await page.get_by_label("Schedule name").fill("Greeter")
            await page.get_by_label("Cron (minute hour day month weekday, UTC)").fill("0 4 * * *")
            await page.locator("#schedule-tasks").fill("command scheduled hello")
            await page.get_by_role("button", name="Add schedule").click()
            await page.wait_for_url(f"**/panel/servers/{stage.server_id}#schedules")
            # the page is at …#schedules already: wait for the form's answer, not for the URL
            async with page.expect_navigation():
                await page.get_by_role("button", name="Run now").click()
            # The run is a job, and its command reaches the game through the agent: run what is due until the
            # console shows it (one pass can come before the run is due on a loaded machine).
            deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
            while True:
                await run_due_jobs(stage.panel.platform)
                await page.reload()
                try:
                    await page.wait_for_function(CONSOLE_HAS, arg="got: scheduled hello", timeout=3_000)
                    break
                except PlaywrightTimeout:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
            runs = page.get_by_test_id("schedules").locator(".panel-runs")
            assert "ok" in await runs.inner_text()

            await page.get_by_role("button", name="Kill", exact=True).click()
            await page.wait_for_function(
                "() => document.getElementById('server-state').textContent === 'offline'", timeout=WAIT_MS
            )

            # Subusers: share the server with the friend, with two keys; the activity log tells.
            await page.get_by_label("Share with (an account's email)").fill(stage.friend_email)
            form = page.locator("#add-subuser")
            await form.get_by_label("control.console", exact=True).check()
            await form.get_by_label("websocket.connect", exact=True).check()
            await form.get_by_role("button", name="Add subuser").click()
            await page.wait_for_url(f"**/panel/servers/{stage.server_id}#subusers")
            friend_row = page.get_by_test_id("subusers").locator("tr", has_text=stage.friend_email)
            assert await friend_row.get_by_label("control.console", exact=True).is_checked()
            assert not await friend_row.get_by_label("file.read", exact=True).is_checked()
            activity = await page.get_by_test_id("activity").inner_text()
            assert "panel.server.subuser_create" in activity
            assert "panel.server.power.kill" in activity
            assert "panel.schedule.run" in activity

            await page.goto("/panel/nodes")
            node = page.locator(f'tr[data-node="{stage.node_id}"]')
            assert "online" in await node.inner_text()
            await page.get_by_label("New node's name").fill("second-node")
            await page.get_by_role("button", name="Make an enrolment token").click()
            token = await page.get_by_test_id("enrolment-token").inner_text()
            assert token.startswith("pne_")
            await page.screenshot(path=str(SCREENSHOTS / "panel-nodes.png"), full_page=True)
        finally:
            await browser.close()
    assert problems == []
    friend = await server_row(stage.panel.platform, stage.server_id)
    assert friend.state == "offline"


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


async def _files_shown(page: Page, path: str, *, present: bool = True) -> None:
    selector = f'#files-rows tr[data-path="{path}"]'
    await page.wait_for_selector(selector, state="attached" if present else "detached", timeout=WAIT_MS)


async def test_the_files_and_backups_pages_in_chromium(stage: Stage) -> None:
    """The file manager: a folder made, a file uploaded into it, opened and edited, renamed, downloaded,
    archived, deleted and extracted back; the backups page: a backup made (the job runs), downloaded,
    restored over a changed file, deleted. Each step is checked in the server's folder on the node."""
    problems: list[str] = []
    folder = stage.folder
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=stage.panel.url, accept_downloads=True)
            page = await context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.goto("/panel")
            await _sign_in(page, stage.admin_email, DEFAULT_PASSWORD)
            await page.wait_for_url("**/panel")
            await page.goto(f"/panel/servers/{stage.server_id}")
            await page.get_by_role("link", name="Files", exact=True).click()
            await page.wait_for_url(f"**/panel/servers/{stage.server_id}/files")
            message = page.get_by_test_id("files-message")

            await page.get_by_label("New folder").fill("configs")
            await page.get_by_role("button", name="Make folder").click()
            await _files_shown(page, "configs")
            assert (folder / "configs").is_dir()
            await page.get_by_role("link", name="configs/").click()
            await page.wait_for_function(
                "() => document.getElementById('files-path').textContent === '/configs'", timeout=WAIT_MS
            )
            await page.set_input_files(
                "#upload", files=[{"name": "motd.txt", "mimeType": "text/plain", "buffer": b"welcome\n"}]
            )
            await _files_shown(page, "configs/motd.txt")
            assert (folder / "configs" / "motd.txt").read_bytes() == b"welcome\n"

            await page.get_by_role("link", name="motd.txt", exact=True).click()
            editor = page.get_by_label("File content")
            await page.wait_for_function(
                "() => document.getElementById('editor-content').value === 'welcome\\n'", timeout=WAIT_MS
            )
            await editor.fill("welcome back\n")
            await page.get_by_role("button", name="Save", exact=True).click()
            await page.wait_for_function(
                "() => document.getElementById('files-message').textContent.startsWith('Saved')",
                timeout=WAIT_MS,
            )
            assert (folder / "configs" / "motd.txt").read_text() == "welcome back\n"

            await page.get_by_role("button", name="Rename motd.txt").click()
            await page.get_by_label("New name for").fill("configs/motd-old.txt")
            await page.get_by_role("button", name="Rename", exact=True).click()
            await _files_shown(page, "configs/motd-old.txt")
            await _files_shown(page, "configs/motd.txt", present=False)

            async with page.expect_download() as downloading:
                await (
                    page.locator('tr[data-path="configs/motd-old.txt"]')
                    .get_by_role("link", name="Download")
                    .click()
                )
            download = await downloading.value
            assert _bytes(await download.path()) == b"welcome back\n"

            await page.get_by_label("Select motd-old.txt").check()
            await page.get_by_role("button", name="Archive selected").click()
            await page.wait_for_function(
                "() => document.getElementById('files-message').textContent.startsWith('Archived 1 files')",
                timeout=WAIT_MS,
            )
            archive = (await message.inner_text()).rsplit("/", 1)[-1]
            await _files_shown(page, f"configs/{archive}")
            await page.get_by_label("Select motd-old.txt").check()
            await page.get_by_role("button", name="Delete selected").click()
            await _files_shown(page, "configs/motd-old.txt", present=False)
            assert not (folder / "configs" / "motd-old.txt").exists()
            await page.get_by_role("button", name=f"Extract {archive}").click()
            await page.wait_for_function(
                "() => document.getElementById('files-message').textContent.startsWith('Extracted')",
                timeout=WAIT_MS,
            )
            await _files_shown(page, "configs/motd-old.txt")
            assert (folder / "configs" / "motd-old.txt").read_text() == "welcome back\n"
            await page.screenshot(path=str(SCREENSHOTS / "panel-files.png"), full_page=True)

            await page.goto(f"/panel/servers/{stage.server_id}/backups")
            await page.get_by_label("Backup name").fill("nightly")
            await page.get_by_role("button", name="Make a backup").click()
            await page.wait_for_selector("#backup-rows tr[data-status]", timeout=WAIT_MS)
            await run_due_jobs(stage.panel.platform)  # the backup job: archive, store, verify
            await page.wait_for_selector('#backup-rows tr[data-status="ok"]', timeout=WAIT_MS)

            async with page.expect_download() as downloading:
                await page.get_by_role("button", name="Download nightly").click()
            download = await downloading.value
            assert _bytes(await download.path())[:2] == b"\x1f\x8b"  # the tar.gz

            (folder / "configs" / "motd-old.txt").write_text("griefed\n")
            await page.get_by_role("button", name="Restore nightly").click()
            await page.wait_for_function(
                "() => document.getElementById('backups-message').textContent.startsWith('Restoring')",
                timeout=WAIT_MS,
            )
            await run_due_jobs(stage.panel.platform)  # the restore job
            assert (folder / "configs" / "motd-old.txt").read_text() == "welcome back\n"
            await page.screenshot(path=str(SCREENSHOTS / "panel-backups.png"), full_page=True)

            await page.get_by_role("button", name="Delete nightly").click()
            await page.wait_for_selector("#backup-rows tr", state="detached", timeout=WAIT_MS)
        finally:
            await browser.close()
    assert [problem for problem in problems if ".map" not in problem] == []
