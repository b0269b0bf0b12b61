"""Templates over the API: the shipped ones are there, admins import eggs (new, replaced in place keeping
variable ids, refused when malformed or the slug is taken), members read them, deleting one in use is
refused; the deny side of every template route."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from pentad.core.platform import Platform
from tests.apps.panel.support import rows, snapshot
from tests.factories import Account

EGG: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "eggs" / "egg-python-generic.json").read_text()
)


async def _import(client: httpx.AsyncClient, admin: Account, **body: Any) -> httpx.Response:
    return await client.post("/api/panel/templates/import", json={"egg": EGG, **body}, headers=admin.headers)


async def test_the_shipped_templates_are_there_for_members(
    client: httpx.AsyncClient, member: Account
) -> None:
    response = await client.get("/api/panel/templates", headers=member.headers)
    assert response.status_code == 200
    shipped = {t["slug"]: t for t in response.json() if t["source"] == "builtin"}
    assert sorted(shipped) == ["generic", "minetest", "teeworlds"]
    teeworlds = shipped["teeworlds"]
    assert teeworlds["console_input"] == "econ"
    assert [v["env_name"] for v in teeworlds["variables"]][:2] == ["SERVER_NAME", "MAX_CLIENTS"]
    one = await client.get(f"/api/panel/templates/{teeworlds['id']}", headers=member.headers)
    assert one.json()["slug"] == "teeworlds"


async def test_an_admin_imports_an_egg_and_sees_its_warnings(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    response = await _import(client, admin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True
    assert body["template"]["slug"] == "python-generic"
    assert body["template"]["source"] == "egg"
    assert len(body["template"]["variables"]) == 7
    assert any("Docker image" in warning for warning in body["warnings"])
    assert body["template"]["warnings"] == body["warnings"]
    audit = [row for row in await rows(platform, "audit_events") if row["action"] == "panel.template.import"]
    assert len(audit) == 1


async def test_an_existing_slug_is_refused_unless_replaced_in_place(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    first = (await _import(client, admin)).json()["template"]
    before = await snapshot(platform)
    response = await _import(client, admin)
    assert (response.status_code, response.json()["code"]) == (409, "template_slug_taken")
    assert await snapshot(platform) == before

    changed = copy.deepcopy(EGG)
    changed["startup"] = "python3 {{PY_FILE}}"
    changed["variables"] = [v for v in changed["variables"] if v["env_variable"] != "BRANCH"]
    changed["variables"].append({**changed["variables"][0], "env_variable": "NEW_ONE", "name": "New"})
    ids = {v["env_name"]: v["id"] for v in await rows(platform, "panel_template_variables")
           if str(v["template_id"]).replace("-", "") == first["id"].replace("-", "")}  # fmt: skip
    response = await client.post(
        "/api/panel/templates/import", json={"egg": changed, "replace": True}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert (replaced["created"], replaced["template"]["id"]) == (False, first["id"])
    assert replaced["template"]["startup"] == "python3 {{PY_FILE}}"
    names = [v["env_name"] for v in replaced["template"]["variables"]]
    assert "BRANCH" not in names
    assert "NEW_ONE" in names
    after = {v["env_name"]: v["id"] for v in await rows(platform, "panel_template_variables")
             if str(v["template_id"]).replace("-", "") == first["id"].replace("-", "")}  # fmt: skip
    assert after["PY_FILE"] == ids["PY_FILE"]


async def test_a_slug_may_be_given(client: httpx.AsyncClient, admin: Account) -> None:
    response = await _import(client, admin, slug="my-bot")
    assert response.json()["template"]["slug"] == "my-bot"


async def test_a_malformed_egg_is_refused_with_pointers_and_changes_nothing(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    broken = copy.deepcopy(EGG)
    broken["variables"][1]["env_variable"] = "NOT VALID"
    broken["config"]["startup"] = "{oops"
    before = await snapshot(platform)
    response = await client.post("/api/panel/templates/import", json={"egg": broken}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_egg"
    messages = [error["msg"] for error in response.json()["errors"]]
    assert any(m.startswith("/variables/1/env_variable:") for m in messages), messages
    response = await client.post(
        "/api/panel/templates/import", json={"egg": {**broken, "variables": []}}, headers=admin.headers
    )
    assert any(e["msg"].startswith("/config/startup:") for e in response.json()["errors"])
    assert await snapshot(platform) == before


async def test_a_template_is_deleted_unless_a_server_uses_it(
    client: httpx.AsyncClient, admin: Account
) -> None:
    template = (await _import(client, admin)).json()["template"]
    response = await client.delete(f"/api/panel/templates/{template['id']}", headers=admin.headers)
    assert response.status_code == 204
    assert (
        await client.get(f"/api/panel/templates/{template['id']}", headers=admin.headers)
    ).status_code == 404


async def test_template_routes_deny_side(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    template = (await _import(client, admin)).json()["template"]
    before = await snapshot(platform)
    for method, path, body, member_status in (
        ("POST", "/api/panel/templates/import", {"egg": EGG, "slug": "other"}, 403),
        ("DELETE", f"/api/panel/templates/{template['id']}", None, 403),
        ("GET", "/api/panel/templates", None, 200),
        ("GET", f"/api/panel/templates/{template['id']}", None, 200),
    ):
        response = await client.request(method, path, json=body, headers=member.headers)
        assert response.status_code == member_status, (method, path, response.text)
        response = await client.request(method, path, json=body)
        assert response.status_code == 401
    outsider = await client.get("/api/panel/templates", headers={"Authorization": "Bearer pak_nonsense"})
    assert outsider.status_code == 401
    assert await snapshot(platform) == before


def test_the_cli_imports_an_egg_file(tmp_path: Path, monkeypatch: Any) -> None:
    """`pentad panel template import FILE` (against a fresh SQLite database of its own)."""
    from pentad.cli import main
    from pentad.core.crypto import generate_key

    monkeypatch.setenv("PENTAD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PENTAD_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PENTAD_APPS", "panel")
    monkeypatch.setenv("PENTAD_CRYPTO__KEYS", generate_key())
    monkeypatch.setenv("PENTAD_AUTH__SECRET_KEY", "x" * 40)
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    egg_file = tmp_path / "egg.json"
    egg_file.write_text(json.dumps(EGG))
    result = runner.invoke(main, ["panel", "template", "import", str(egg_file)])
    assert result.exit_code == 0, result.output
    assert "\tpython-generic\tcreated" in result.stdout
    assert "warning: the egg assumes a Docker image" in result.stderr
    listed = runner.invoke(main, ["panel", "templates"])
    assert sorted(line.split("\t")[1] for line in listed.stdout.splitlines()) == [
        "generic", "minetest", "python-generic", "teeworlds",
    ]  # fmt: skip
    egg_file.write_text('{"meta": {"version": "PTDL_v2"}}')
    result = runner.invoke(main, ["panel", "template", "import", str(egg_file)])
    assert result.exit_code == 1
    assert "/name:" in result.output
    token = runner.invoke(main, ["panel", "node-token", "node-cli"])
    assert token.exit_code == 0, token.output
    assert token.stdout.startswith("pne_")
    nodes = runner.invoke(main, ["panel", "nodes"])
    assert nodes.stdout == ""
