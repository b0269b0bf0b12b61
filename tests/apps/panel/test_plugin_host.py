"""The plugin host with real plugin processes: capability deny side on every panel method, a crash, a hang,
a memory blow-up and garbage output (each: a clear status and reason, the plugin restarted or stopped, the
panel unharmed), and panel events reaching the webhook notifier example, which POSTs to a loopback listener.

The host works in transactions of its own, concurrently with the requests: this module has a migrated
database of its own that commits (not the shared per-test rollback)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import delete

from pentad.apps.panel.actions.plugins import dispatch_event
from pentad.apps.panel.events import SERVER_STATE_CHANGED, ServerStateChanged
from pentad.apps.panel.models import PanelPlugin, PanelTrustedPublisher
from pentad.apps.panel.plugins import sandbox
from pentad.apps.panel.plugins.host import PluginHost
from pentad.apps.panel.plugins.manifest import parse_manifest
from pentad.apps.panel.plugins.market import build_package, unpack
from pentad.core.config import DatabaseSettings, Settings
from pentad.core.db.base import utcnow, uuid7
from pentad.core.db.engine import Database
from pentad.core.db.migrate import upgrade_async
from pentad.core.events import Event
from pentad.core.metrics import Metrics
from pentad.core.platform import Platform
from pentad.core.services import ProcessSupervisor, ServiceContext, ServiceMetrics, ServiceSpec
from tests.apps.panel.link_support import panel_settings
from tests.apps.panel.plugin_support import EXAMPLES, Market, plugin_folder, static_host
from tests.apps.panel.support import make_allocations, make_node, rows, template_id
from tests.apps.panel.test_plugins import install, trust
from tests.conftest import ALL_APPS
from tests.databases import scratch_database, selected_databases
from tests.factories import Account

WAIT = 30.0


@pytest.fixture(scope="module")
async def own_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated database of this module's, on the first selected engine (the host's work does not depend
    on the engine)."""
    async with scratch_database(selected_databases()[0], tmp_path_factory.mktemp("host-db")) as url:
        await upgrade_async(url, ALL_APPS)
        yield url


@pytest.fixture
async def database(own_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(DatabaseSettings(url=own_url))
    yield database
    async with database.transaction() as session:  # the next test starts without plugins
        await session.execute(delete(PanelPlugin))
        await session.execute(delete(PanelTrustedPublisher))
    await database.engine.dispose()


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    folder = tmp_path / "market"
    folder.mkdir()
    with static_host(folder) as url:
        yield Market(folder, url)


@pytest.fixture
def settings(tmp_path: Path, own_url: str, market: Market) -> Settings:
    return panel_settings(
        tmp_path,
        own_url,
        market_sources=[market.source],
        market_trusted_keys=[market.index_public],
        plugin_call_timeout=2.0,
        plugin_ping_interval=0.5,
        plugin_garbage_limit=3,
        plugin_memory_mb=400,
    )


async def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ the host, with real plugin processes

PROBE = """
import asyncio, os, time
from pentad_panel_plugin import Plugin, Response, RpcError

plugin = Plugin()

@plugin.route("POST", "/probe")
async def probe(request, panel):
    outcomes = {}
    for method, params in request.json():
        try:
            await panel.call(method, params)
            outcomes[method] = "ok"
        except RpcError as exc:
            outcomes[method] = exc.code
    return Response(outcomes)

@plugin.route("POST", "/read")
async def read(request, panel):
    try:
        with open(request.json()) as file:
            return Response({"read": file.read()})
    except OSError as exc:
        return Response({"error": type(exc).__name__})

@plugin.route("POST", "/crash")
async def crash(request, panel):
    os._exit(3)

@plugin.route("POST", "/hang")
async def hang(request, panel):
    time.sleep(3600)

@plugin.route("POST", "/eat")
async def eat(request, panel):
    hoard = []
    while True:
        hoard.append(bytes(1 << 20))
"""

GARBAGE = """
import socket, sys, time
path = sys.argv[sys.argv.index("--socket") + 1]
connection = socket.socket(socket.AF_UNIX)
connection.connect(path)
while True:
    connection.sendall(b"this is not JSON-RPC\\n")
    time.sleep(0.05)
"""


async def _run_host(platform: Platform) -> AsyncIterator[PluginHost]:
    spec = ServiceSpec(
        "panel.plugin_host", lambda c: asyncio.sleep(0), stop_timeout=2, backoff_base=0.1, backoff_max=0.5
    )
    log = structlog.get_logger("test")
    processes = ProcessSupervisor(spec.name, spec, ServiceMetrics(Metrics()), log)
    host = PluginHost(ServiceContext(spec.name, platform, processes, log))
    task = asyncio.create_task(host.run())
    try:
        yield host
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await processes.stop_all()


async def _local_plugin(platform: Platform, folder: Path, granted: list[str]) -> None:
    """Install `folder` as the market would, approved for `granted`, enabled."""
    manifest = parse_manifest(json.loads((folder / "pentad-plugin.json").read_text()))
    target = Path(platform.settings.data_dir) / "panel" / "plugins" / manifest.id
    target.parent.mkdir(parents=True, exist_ok=True)
    unpack(build_package(folder), target, manifest)
    async with platform.database.transaction() as session:
        session.add(
            PanelPlugin(
                id=uuid7(),
                plugin_id=manifest.id,
                name=manifest.name,
                version=manifest.version,
                publisher=manifest.publisher,
                publisher_key="k",
                source="local",
                package_sha256="0" * 64,
                manifest=manifest.model_dump(mode="json"),
                requested=manifest.capabilities,
                granted=granted,
                enabled=True,
                status="stopped",
                restarts=0,
                approved_at=utcnow(),
            )
        )


async def _status(platform: Platform, plugin_id: str) -> dict[str, Any]:
    return next(row for row in await rows(platform, "panel_plugins") if row["plugin_id"] == plugin_id)


async def _running_after(platform: Platform, plugin_id: str, crashes: int) -> Callable[[], Any]:
    async def check() -> bool:
        row = await _status(platform, plugin_id)
        return bool(row["status"] == "running" and row["restarts"] >= crashes)

    return check


async def _status_events(platform: Platform, plugin_id: str) -> list[dict[str, Any]]:
    """The panel.plugin_status_changed events emitted (stored as the jobs of their subscribers)."""
    jobs = [
        job
        for job in await rows(platform, "jobs")
        if job["name"] == "panel.plugin_dispatch_plugin_status_changed"
    ]
    return [
        job["payload"]
        for job in sorted(jobs, key=lambda job: job["created_at"])
        if job["payload"]["payload"]["plugin_id"] == plugin_id
    ]


async def _status_is(platform: Platform, plugin_id: str, status: str) -> Callable[[], Any]:
    async def check() -> dict[str, Any] | None:
        row = await _status(platform, plugin_id)
        return row if row["status"] == status else None

    return check


async def test_host_enforces_capabilities_and_survives_crash_hang_memory_and_garbage(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, tmp_path: Path
) -> None:
    probe = plugin_folder(
        tmp_path,
        {
            "id": "probe",
            "version": "1.0.0",
            "entry": "probe:plugin",
            "capabilities": ["http.routes", "servers.read"],
        },
        {"probe.py": PROBE},
    )
    garbage = plugin_folder(
        tmp_path,
        {"id": "garbage", "version": "1.0.0", "entry": "garbage:plugin", "capabilities": []},
        {"garbage.py": GARBAGE},
    )
    await _local_plugin(platform, probe, ["http.routes", "servers.read"])
    await _local_plugin(platform, garbage, [])
    async for _host in _run_host(platform):
        await eventually(await _status_is(platform, "probe", "running"), "the probe runs")
        url = "/api/panel/plugins/probe/routes"

        # Deny side: every panel method it was not granted is refused, audited, and does nothing.
        calls = [
            ["servers.list", {}],
            ["servers.power", {"server_id": str(uuid7()), "action": "kill"}],
            ["console.send", {"server_id": str(uuid7()), "command": "stop"}],
            ["files.delete", {}],
        ]
        answer = await client.post(f"{url}/probe", json=calls, headers=member.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "servers.list": "ok",
            "servers.power": -32001,
            "console.send": -32001,
            "files.delete": -32601,
        }
        denied = [r for r in await rows(platform, "audit_events") if r["action"] == "panel.plugin.denied"]
        assert sorted(r["details"]["method"] for r in denied) == ["console.send", "servers.power"]
        assert (await client.post(f"{url}/probe", json=calls)).status_code == 401

        # In bubblewrap (where it runs), the panel's data folder is out of sight.
        secret = Path(platform.settings.data_dir) / "secret.txt"
        secret.write_text("the panel's")
        seen = (await client.post(f"{url}/read", json=str(secret), headers=member.headers)).json()
        if sandbox.bwrap_path() is not None:
            assert seen == {"error": "FileNotFoundError"}
        else:
            assert seen == {"read": "the panel's"}

        # Garbage on its socket: stopped as failed, with the reason, not restarted.
        failed = await eventually(await _status_is(platform, "garbage", "failed"), "garbage fails the plugin")
        assert "malformed JSON-RPC" in failed["status_reason"]

        # A crash: crashed with the exit status, restarted, running again.
        assert (await client.post(f"{url}/crash", headers=member.headers)).status_code == 503
        await eventually(await _running_after(platform, "probe", 1), "restarted after the crash")

        # A hang: the call times out, the plugin is killed and restarted.
        assert (await client.post(f"{url}/hang", headers=member.headers)).status_code == 503
        await eventually(await _running_after(platform, "probe", 2), "restarted after the hang")

        # Memory blow-up: killed by its rlimit, restarted.
        assert (await client.post(f"{url}/eat", headers=member.headers)).status_code == 503
        await eventually(await _running_after(platform, "probe", 3), "restarted after the memory blow-up")
        reasons = [
            e["payload"]["reason"]
            for e in await _status_events(platform, "probe")
            if e["payload"]["status"] == "crashed"
        ]
        assert reasons == [
            "exited with status 3",
            "did not answer http.request within 2 s",
            "killed by its memory limit",
        ]
        # The panel itself is fine.
        assert (await client.get("/api/panel/plugins", headers=admin.headers)).status_code == 200


class _Listener(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Listener.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FakeJob:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform


async def test_webhook_notifier_posts_on_server_events(
    client: httpx.AsyncClient, platform: Platform, admin: Account, market: Market
) -> None:
    listener = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        market.publish(EXAMPLES / "webhook_notifier")
        await trust(client, admin, market)
        plugin = (await install(client, admin, market, "webhook-notifier")).json()
        url = "/api/panel/plugins/webhook-notifier"
        settings = {"settings": {"url": f"http://127.0.0.1:{listener.server_address[1]}/hook"}}
        await client.put(f"{url}/settings", json=settings, headers=admin.headers)
        await client.post(f"{url}/approve", json={"capabilities": plugin["requested"]}, headers=admin.headers)
        await client.post(f"{url}/enabled", json={"enabled": True}, headers=admin.headers)
        server = await _server(client, admin)
        async for _host in _run_host(platform):
            await eventually(await _status_is(platform, "webhook-notifier", "running"), "the notifier runs")
            payload = ServerStateChanged(
                server_id=server["id"],
                node_id=server["node_id"],
                state="running",
                previous="starting",
                reason="",
            )
            event = Event(uuid7(), SERVER_STATE_CHANGED.name, utcnow(), payload)
            await dispatch_event(_FakeJob(platform), event)  # type: ignore[arg-type]

            async def posted() -> bool:
                return bool(_Listener.received)

            await eventually(posted, "the webhook was posted")
            assert _Listener.received == [{"content": "Server Hooked started."}]
            status = await client.get(f"{url}/routes/status", headers=admin.headers)
            assert status.json() == {"sent": 1, "failed": 0, "configured": True}
    finally:
        listener.shutdown()
        listener.server_close()


async def _server(client: httpx.AsyncClient, admin: Account) -> dict[str, Any]:
    node = await make_node(client, admin, name="plugin-node")
    allocation = (await make_allocations(client, admin, node["id"], "9400"))[0]
    body = {
        "name": "Hooked",
        "memory_mb": 64,
        "disk_mb": 64,
        "node_id": node["id"],
        "template_id": await template_id(client, admin, "generic"),
        "owner_id": admin.id,
        "allocation_id": allocation["id"],
    }
    response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    server: dict[str, Any] = response.json()
    return server
