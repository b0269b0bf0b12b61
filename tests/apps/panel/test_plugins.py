"""Plugins: a real signed marketplace on a loopback static host; browse, install, approve, enable, update,
remove over the API (audited), and the refusals (an index signed by an untrusted key, a tampered package, an
unknown publisher, a bad package signature, enabling before approval, an update asking for more, non-admins,
bad input: 4xx problem+json, nothing changed); manifests' JSON pointers; the publisher tools (keygen,
publish, sign-index) making a market the panel verifies; the SDK harness on the auto-restart example.
(The host with real plugin processes: test_plugin_host.py.)"""

from __future__ import annotations

import importlib.util
import io
import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pentad.apps.panel.cli import panel
from pentad.apps.panel.plugins.manifest import InvalidManifest, parse_manifest
from pentad.apps.panel.plugins.market import IndexSignatureInvalid, PackageRefused, fetch_index, unpack
from pentad.apps.panel.plugins.signing import keygen
from pentad.core.config import Settings
from pentad.core.platform import Platform
from pentad_panel_plugin import RpcError
from pentad_panel_plugin.testing import Harness
from tests.apps.panel.link_support import panel_settings
from tests.apps.panel.plugin_support import EXAMPLES, Market, plugin_folder, static_host
from tests.apps.panel.support import rows, snapshot
from tests.apps.panel.test_pages import _csrf, _sign_in
from tests.factories import Account


@pytest.fixture(scope="module")
def market_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("market")
    with static_host(folder) as url:
        yield folder, url


@pytest.fixture
def market(market_folder: tuple[Path, str]) -> Market:
    folder, url = market_folder
    for path in folder.rglob("*"):
        if path.is_file():
            path.unlink()
    return Market(folder, url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, market: Market) -> Settings:
    return panel_settings(
        tmp_path,
        database_url,
        market_sources=[market.source],
        market_trusted_keys=[market.index_public],
        plugin_call_timeout=2.0,
        plugin_ping_interval=0.5,
        plugin_garbage_limit=3,
        plugin_memory_mb=400,
    )


async def trust(client: httpx.AsyncClient, admin: Account, market: Market) -> None:
    body = {"publisher": "pentad-examples", "public_key": market.publisher_public}
    response = await client.post("/api/panel/plugins/publishers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text


async def install(
    client: httpx.AsyncClient, admin: Account, market: Market, plugin_id: str
) -> httpx.Response:
    body = {"source": market.source, "plugin_id": plugin_id}
    return await client.post("/api/panel/plugins", json=body, headers=admin.headers)


async def audit_actions(platform: Platform) -> list[str]:
    return [
        row["action"]
        for row in await rows(platform, "audit_events")
        if row["action"].startswith("panel.plugin")
    ]


# ------------------------------------------------------------------ marketplace and API


async def test_browse_install_approve_enable_update_remove(
    client: httpx.AsyncClient, platform: Platform, admin: Account, market: Market, tmp_path: Path
) -> None:
    market.publish(EXAMPLES / "webhook_notifier")
    market.publish(EXAMPLES / "auto_restart")
    broken = {
        **market.entries[0],
        "manifest": {**market.entries[0]["manifest"], "capabilities": ["root.shell"]},
    }
    market.entries.append(broken)
    market.sign()
    listing = (await client.get("/api/panel/plugins/market", headers=admin.headers)).json()
    assert [error["message"].split(":")[0] for error in listing["errors"]] == [
        "/plugins/2/manifest/capabilities"
    ]
    assert {p["manifest"]["id"] for p in listing["plugins"]} == {"webhook-notifier", "auto-restart"}

    await trust(client, admin, market)
    response = await install(client, admin, market, "webhook-notifier")
    assert response.status_code == 201, response.text
    plugin = response.json()
    assert plugin["enabled"] is False
    assert plugin["granted"] == []
    assert plugin["needs_approval"] == ["events.subscribe", "http.routes", "servers.read", "ui.panel"]
    folder = Path(platform.settings.data_dir) / "panel" / "plugins" / "webhook-notifier"
    assert (folder / "notifier.py").is_file()
    again = await install(client, admin, market, "webhook-notifier")
    assert again.status_code == 409

    # Not before approval; approval is of exactly what it asks for.
    url = "/api/panel/plugins/webhook-notifier"
    refused = await client.post(f"{url}/enabled", json={"enabled": True}, headers=admin.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "plugin_approval_required"
    partial = await client.post(
        f"{url}/approve", json={"capabilities": ["servers.read"]}, headers=admin.headers
    )
    assert partial.status_code == 422
    approved = await client.post(
        f"{url}/approve", json={"capabilities": plugin["requested"]}, headers=admin.headers
    )
    assert approved.status_code == 200
    assert approved.json()["needs_approval"] == []
    enabled = await client.post(f"{url}/enabled", json={"enabled": True}, headers=admin.headers)
    assert enabled.json()["enabled"] is True

    # An update that asks for more capabilities waits for approval again.
    newer = plugin_folder(
        tmp_path,
        {
            "id": "webhook-notifier",
            "version": "1.1.0",
            "entry": "notifier:plugin",
            "capabilities": ["events.subscribe", "http.routes", "power.write", "servers.read", "ui.panel"],
            "ui": "ui/index.html",
        },
        {
            "notifier.py": (EXAMPLES / "webhook_notifier" / "notifier.py").read_text(),
            "ui/index.html": "<p>new</p>",
        },
    )
    market.publish(newer)
    updated = (await client.post(f"{url}/update", headers=admin.headers)).json()
    assert updated["version"] == "1.1.0"
    assert updated["needs_approval"] == ["power.write"]
    assert "awaiting approval" in updated["status_reason"]

    # The UI page: only with ui.panel granted, served sandboxed.
    page = await client.get(f"{url}/ui", headers=admin.headers)
    assert page.status_code == 200
    assert "sandbox allow-scripts" in page.headers["content-security-policy"]

    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert not folder.exists()
    assert await audit_actions(platform) == [
        "panel.plugin.trust_publisher",
        "panel.plugin.install",
        "panel.plugin.approve",
        "panel.plugin.enable",
        "panel.plugin.update",
        "panel.plugin.remove",
    ]


async def test_untrusted_index_tampered_package_unknown_publisher_bad_signature_are_refused(
    client: httpx.AsyncClient, platform: Platform, admin: Account, market: Market
) -> None:
    package = market.publish(EXAMPLES / "auto_restart")
    await trust(client, admin, market)
    before = await snapshot(platform)

    # The index signed by a key the panel does not trust: nothing offered, install refused.
    other_private, _ = keygen()
    market.sign(other_private)
    listing = (await client.get("/api/panel/plugins/market", headers=admin.headers)).json()
    assert listing["plugins"] == []
    assert listing["errors"][0]["code"] == "index_signature_invalid"
    response = await install(client, admin, market, "auto-restart")
    assert response.status_code == 422
    assert response.json()["code"] == "index_signature_invalid"
    market.sign()

    # The package changed after signing: its SHA-256 is not the index's.
    (market.folder / "packages" / "auto-restart-1.0.0.zip").write_bytes(package + b"\0")
    response = await install(client, admin, market, "auto-restart")
    assert response.status_code == 422
    assert response.json()["reason"] == "tampered"

    # Signed by a publisher key nobody trusts.
    stranger_private, stranger_public = keygen()
    market.publish(EXAMPLES / "auto_restart", private_key=stranger_private, public_key=stranger_public)
    response = await install(client, admin, market, "auto-restart")
    assert response.status_code == 422
    assert response.json()["reason"] == "unknown_publisher"

    # The trusted publisher's key, but a signature it did not make.
    market.publish(
        EXAMPLES / "auto_restart", private_key=stranger_private, public_key=market.publisher_public
    )
    response = await install(client, admin, market, "auto-restart")
    assert response.status_code == 422
    assert response.json()["reason"] == "bad_signature"

    assert await snapshot(platform) == before


async def test_non_admins_are_refused_and_bad_input_is_4xx(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, market: Market
) -> None:
    market.publish(EXAMPLES / "auto_restart")
    before = await snapshot(platform)
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/api/panel/plugins", None),
        ("GET", "/api/panel/plugins/market", None),
        ("POST", "/api/panel/plugins", {"source": market.source, "plugin_id": "auto-restart"}),
        (
            "POST",
            "/api/panel/plugins/publishers",
            {"publisher": "x-y", "public_key": market.publisher_public},
        ),
        ("POST", "/api/panel/plugins/auto-restart/approve", {"capabilities": []}),
        ("POST", "/api/panel/plugins/auto-restart/enabled", {"enabled": True}),
        ("POST", "/api/panel/plugins/auto-restart/update", None),
        ("PUT", "/api/panel/plugins/auto-restart/settings", {"settings": {}}),
        ("DELETE", "/api/panel/plugins/auto-restart", None),
        ("GET", "/api/panel/plugins/auto-restart", None),
        ("GET", "/api/panel/plugins/publishers", None),
        ("POST", "/api/panel/plugins/publishers/remove", {"publisher": "x-y", "public_key": "k"}),
        ("GET", "/api/panel/plugins/auto-restart/ui", None),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=member.headers)
        assert response.status_code == 403, (method, url, response.text)
        assert (await client.request(method, url, json=body)).status_code == 401, (method, url)
    bad: list[tuple[str, str, Any, int]] = [
        (
            "POST",
            "/api/panel/plugins",
            {"source": "http://elsewhere/index.json", "plugin_id": "auto-restart"},
            400,
        ),
        ("POST", "/api/panel/plugins", {"plugin_id": "auto-restart"}, 422),
        ("POST", "/api/panel/plugins/publishers", {"publisher": "x-y", "public_key": "not a key"}, 400),
        ("POST", "/api/panel/plugins/nope/approve", {"capabilities": []}, 404),
        ("POST", "/api/panel/plugins/Bad..Id/enabled", {"enabled": True}, 422),
    ]
    for method, url, body, status in bad:
        response = await client.request(method, url, json=body, headers=admin.headers)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await snapshot(platform) == before


@pytest.mark.one_engine
def test_manifest_errors_carry_json_pointers() -> None:

    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(
            {
                "id": "X",
                "name": "n",
                "version": "1",
                "publisher": "p-q",
                "entry": "m:plugin",
                "capabilities": ["servers.read", "root.shell"],
                "ui": "../x.html",
            }
        )
    messages = sorted(issue["msg"].split(":")[0] for issue in caught.value.extra["errors"])
    assert messages == ["/capabilities", "/id", "/ui", "/version"]


@pytest.mark.one_engine
async def test_sdk_harness_runs_the_auto_restart_example() -> None:

    spec = importlib.util.spec_from_file_location(
        "auto_restart", EXAMPLES / "auto_restart" / "auto_restart.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    harness = Harness(module.plugin, settings={"servers": ["s1", "s2"]})
    server = {"node_id": "n", "status": "installed"}
    harness.answers["servers.list"] = [
        {"id": "s1", "name": "A", "state": "crashed", **server},
        {"id": "s2", "name": "B", "state": "running", **server},
        {"id": "s3", "name": "C", "state": "crashed", **server},
    ]
    await harness.run_schedule("restart-crashed")
    assert [call for call in harness.calls if call[0] == "servers.power"] == [
        ("servers.power", {"server_id": "s1", "action": "start"})
    ]
    harness.answers["servers.power"] = RpcError(-32001, "servers.power needs the capability power.write")
    await harness.run_schedule("restart-crashed")
    assert harness.calls[-1][0] == "log"
    assert harness.calls[-1][1]["fields"]["error"].startswith("servers.power")


async def test_publisher_tools_make_a_market_the_panel_verifies(tmp_path: Path) -> None:

    runner = CliRunner()
    keys = tmp_path / "keys"
    keys.mkdir()
    publisher = runner.invoke(panel, ["plugins", "keygen", "--out", str(keys / "publisher.key")])
    market_key = runner.invoke(panel, ["plugins", "keygen", "--out", str(keys / "market.key")])
    assert publisher.exit_code == 0, publisher.output
    assert (keys / "market.key").stat().st_mode & 0o777 == 0o600
    again = runner.invoke(panel, ["plugins", "keygen", "--out", str(keys / "market.key")])
    assert again.exit_code != 0
    folder = tmp_path / "market"
    for example in ("webhook_notifier", "auto_restart"):
        published = runner.invoke(
            panel,
            [
                "plugins",
                "publish",
                str(EXAMPLES / example),
                str(folder),
                "--key",
                str(keys / "publisher.key"),
            ],
        )
        assert published.exit_code == 0, published.output
    signed = runner.invoke(panel, ["plugins", "sign-index", str(folder), "--key", str(keys / "market.key")])
    assert signed.output.strip() == market_key.output.strip()
    with static_host(folder) as url:
        offers = await fetch_index(url + "index.json", [market_key.output.strip()])
        assert sorted(offer.manifest.id for offer in offers) == ["auto-restart", "webhook-notifier"]
        assert {offer.publisher_key for offer in offers} == {publisher.output.strip()}
        with pytest.raises(IndexSignatureInvalid):
            await fetch_index(url + "index.json", [publisher.output.strip()])


async def test_the_plugins_page_is_for_admins_and_its_forms_need_the_csrf_token(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, market: Market
) -> None:
    market.publish(EXAMPLES / "auto_restart")
    anonymous = await client.get("/panel/plugins")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
    await _sign_in(client, member.user)
    assert (await client.get("/panel/plugins")).status_code == 403
    await _sign_in(client, admin.user)
    page = await client.get("/panel/plugins")
    assert page.status_code == 200
    assert "Install Auto-restart crashed servers" in page.text
    before = await snapshot(platform)
    form = {"source": market.source, "plugin_id": "auto-restart"}
    assert (await client.post("/panel/plugins/install", data=form)).status_code == 403
    assert await snapshot(platform) == before
    await trust(client, admin, market)
    installed = await client.post("/panel/plugins/install", data={**form, "csrf_token": _csrf(page.text)})
    assert installed.status_code == 303
    assert "Approve 3 capabilities" in (await client.get("/panel/plugins")).text


def test_unpacking_refuses_escapes_links_and_a_manifest_other_than_the_index_s(tmp_path: Path) -> None:

    manifest_text = (EXAMPLES / "auto_restart" / "pentad-plugin.json").read_text()
    manifest = parse_manifest(json.loads(manifest_text))

    def package(name: str, data: str = "x", mode: int = 0o100644) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("pentad-plugin.json", manifest_text)
            entry = zipfile.ZipInfo(name)
            entry.external_attr = mode << 16
            archive.writestr(entry, data)
        return buffer.getvalue()

    target = tmp_path / "plugins" / "auto-restart"
    for bad in (
        package("../evil.py"),
        package("/etc/evil"),
        package("link", "/etc/passwd", stat.S_IFLNK | 0o777),
    ):
        with pytest.raises(PackageRefused):
            unpack(bad, target, manifest)
    other = parse_manifest({**json.loads(manifest_text), "capabilities": ["servers.read"]})
    with pytest.raises(PackageRefused):
        unpack(package("ok.py"), target, other)
    assert not (tmp_path / "evil.py").exists()
    assert not target.exists()
    unpack(package("ok.py"), target, manifest)
    assert (target / "ok.py").read_text() == "x"
