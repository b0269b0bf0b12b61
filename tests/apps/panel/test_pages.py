"""The panel pages without a browser: sign-in required, the deny side (a server not shared with you, the
nodes page for non-admins, forms without the session's CSRF token), the subusers form refusing keys one
does not hold, and an enrolment token shown once. (The live parts run in Chromium: tests/browser/
test_panel.py.)"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.apps.panel.support import make_allocations, make_node, snapshot, template_id
from tests.factories import DEFAULT_PASSWORD, Account, account


async def _sign_in(client: httpx.AsyncClient, user: User) -> None:
    client.cookies.clear()
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def _server(client: httpx.AsyncClient, admin: Account, owner: Account) -> dict[str, Any]:
    node = await make_node(client, admin)
    allocation = (await make_allocations(client, admin, node["id"], "9200"))[0]
    body = {
        "name": "Paged", "memory_mb": 64, "disk_mb": 64, "node_id": node["id"],
        "template_id": await template_id(client, admin, "generic"), "owner_id": owner.id,
        "allocation_id": allocation["id"],
    }  # fmt: skip
    response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    server: dict[str, Any] = response.json()
    return server


async def test_pages_need_a_session_and_show_only_what_is_shared(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    server = await _server(client, admin, member)
    for path in ("/panel", f"/panel/servers/{server['id']}", "/panel/nodes"):
        anonymous = await client.get(path)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login")
        assert (await client.get(path, headers=member.headers)).status_code == 303  # API keys open no page

    await _sign_in(client, member.user)
    listing = await client.get("/panel")
    assert listing.status_code == 200
    assert "Paged" in listing.text
    assert "node-a" in listing.text
    page = await client.get(f"/panel/servers/{server['id']}")
    assert page.status_code == 200
    assert "xterm" in page.text
    assert "style-src 'self' 'unsafe-inline'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await client.get("/panel/nodes")).status_code == 403

    await _sign_in(client, stranger.user)
    assert "Paged" not in (await client.get("/panel")).text
    assert (await client.get(f"/panel/servers/{server['id']}")).status_code == 404


async def test_the_subusers_form_keeps_the_api_s_rules(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    friend, helper = await account(platform), await account(platform)
    path = f"/panel/servers/{server['id']}"
    await _sign_in(client, member.user)
    csrf = _csrf((await client.get(path)).text)
    before = await snapshot(platform)
    forged = await client.post(
        f"{path}/users",
        data={"email": friend.user.email, "permissions": "control.console", "csrf_token": "0" * 64},
    )
    assert forged.status_code == 403
    nobody = await client.post(
        f"{path}/users", data={"email": "nobody@example.com", "permissions": "file.read", "csrf_token": csrf}
    )
    assert nobody.status_code == 404
    assert "Subusers" in nobody.text
    assert await snapshot(platform) == before
    added = await client.post(
        f"{path}/users",
        data={"email": friend.user.email, "permissions": ["user.create", "file.read"], "csrf_token": csrf},
    )
    assert added.status_code == 303, added.text
    assert friend.user.email in (await client.get(path)).text

    # the friend may share on, but only with keys it holds
    await _sign_in(client, friend.user)
    friend_page = (await client.get(path)).text
    assert 'id="add-subuser"' in friend_page  # user.create without user.read: the form, not the list
    assert helper.user.email not in friend_page
    csrf = _csrf(friend_page)
    before = await snapshot(platform)
    escalate = await client.post(
        f"{path}/users",
        data={"email": helper.user.email, "permissions": ["file.read", "file.delete"], "csrf_token": csrf},
    )
    assert escalate.status_code == 403
    assert "file.delete" in escalate.text
    assert await snapshot(platform) == before
    ok = await client.post(
        f"{path}/users", data={"email": helper.user.email, "permissions": "file.read", "csrf_token": csrf}
    )
    assert ok.status_code == 303, ok.text[-3000:]


async def test_an_admin_makes_an_enrolment_token_on_the_nodes_page(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    await make_node(client, admin, name="node-seen")
    await _sign_in(client, admin.user)
    page = await client.get("/panel/nodes")
    assert page.status_code == 200
    assert "node-seen" in page.text
    csrf = _csrf(page.text)
    bad = await client.post("/panel/nodes/tokens", data={"node_name": "no spaces", "csrf_token": csrf})
    assert bad.status_code == 400
    made = await client.post("/panel/nodes/tokens", data={"node_name": "node-new", "csrf_token": csrf})
    assert made.status_code == 200
    token = re.search(r'data-testid="enrolment-token">(pne_[^<]+)<', made.text)
    assert token is not None
    assert token.group(1) not in (await client.get("/panel/nodes")).text


async def test_the_schedules_form_adds_runs_and_deletes_a_schedule(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    path = f"/panel/servers/{server['id']}"
    await _sign_in(client, member.user)
    page = await client.get(path)
    assert "No schedules yet" in page.text
    csrf = _csrf(page.text)
    before = await snapshot(platform)
    for cron, tasks in (("every day", "command hi"), ("0 4 * * *", "soon; command hi"), ("0 4 * * *", "")):
        refused = await client.post(
            f"{path}/schedules", data={"name": "x", "cron": cron, "tasks": tasks, "csrf_token": csrf}
        )
        assert refused.status_code in (400, 422), (cron, tasks)
        assert 'role="alert"' in refused.text
    assert await snapshot(platform) == before
    made = await client.post(
        f"{path}/schedules",
        data={"name": "Nightly", "cron": "0 4 * * *", "only_when_online": "true",
              "tasks": "command say bye\nwait 5; power restart\n", "csrf_token": csrf},
    )  # fmt: skip
    assert made.status_code == 303, made.text
    listed = (await client.get(f"/api/panel/servers/{server['id']}/schedules", headers=member.headers)).json()
    assert [(t["action"], t["payload"], t["delay_s"]) for t in listed[0]["tasks"]] == [
        ("command", "say bye", 0),
        ("power", "restart", 5),
    ]
    assert listed[0]["only_when_online"] is True
    page = (await client.get(path)).text
    assert "Nightly" in page
    assert "not run yet" in page
    schedule_id = listed[0]["id"]
    assert (
        await client.post(f"{path}/schedules/{schedule_id}/run", data={"csrf_token": csrf})
    ).status_code == 303
    gone = await client.post(f"{path}/schedules/{schedule_id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert "No schedules yet" in (await client.get(path)).text


async def test_the_files_and_backups_pages_follow_the_server_s_keys(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    """The pages render for their read key, show only the buttons of the keys held, and are refused as
    the API refuses (the live parts: tests/browser/test_panel.py)."""
    from tests.apps.panel.link_support import grant

    server = await _server(client, admin, member)
    files, backups = f"/panel/servers/{server['id']}/files", f"/panel/servers/{server['id']}/backups"
    for path in (files, backups):
        anonymous = await client.get(path)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login")

    await _sign_in(client, member.user)  # the owner: every key
    owner_page = await client.get(f"/panel/servers/{server['id']}")
    assert f'href="{files}"' in owner_page.text
    assert f'href="{backups}"' in owner_page.text
    page = await client.get(files)
    assert page.status_code == 200
    assert 'data-keys="' in page.text
    assert 'id="upload"' in page.text
    assert 'id="delete-selected"' in page.text
    assert 'id="backup-form"' in (await client.get(backups)).text

    # a subuser holding only the read keys: the pages, without the buttons that change anything
    await grant(platform, stranger.user, uuid.UUID(server["id"]), "file.read", "backup.read")
    await _sign_in(client, stranger.user)
    page = await client.get(files)
    assert page.status_code == 200
    for control in ('id="upload"', 'id="delete-selected"', 'id="archive-selected"', 'id="rename-form"'):
        assert control not in page.text
    assert 'id="backup-form"' not in (await client.get(backups)).text
    server_page = (await client.get(f"/panel/servers/{server['id']}")).text
    assert f'href="{files}"' in server_page

    # another account: nothing (404), one with a role but not the read key: 403
    outsider = await account(platform)
    await _sign_in(client, outsider.user)
    assert (await client.get(files)).status_code == 404
    assert (await client.get(backups)).status_code == 404
    await grant(platform, outsider.user, uuid.UUID(server["id"]), "control.console")
    assert (await client.get(files)).status_code == 403
    assert (await client.get(backups)).status_code == 403
    assert f'href="{files}"' not in (await client.get(f"/panel/servers/{server['id']}")).text
