"""Schedules over the API and their job: cron checked, tasks checked against the author's keys (nobody
schedules what they may not do by hand), a backup task refused until backups register their task kind;
each enabled schedule has one queued run for its next tick, which a change or deletion replaces; a run
queues the following tick, runs the chain (a failure stops it unless `continue_on_failure`), skips while
the server is offline when `only_when_online`, and its history is kept. The deny side of every route.
(A real agent runs a schedule's command in tests/apps/panel/test_games.py.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from pentad.apps.panel.actions.schedules import RUN_JOB, run_schedule
from pentad.core.platform import Platform
from tests.apps.panel.support import (
    enrol,
    make_allocations,
    make_node,
    make_token,
    rows,
    snapshot,
    template_id,
)
from tests.factories import Account, account, bearer

TASKS: list[dict[str, Any]] = [
    {"action": "command", "payload": "say backup soon"},
    {"action": "power", "payload": "restart", "delay_s": 0},
]


@dataclass
class FakeJob:
    """What run_schedule reads of its JobContext."""

    platform: Platform


async def _server(client: httpx.AsyncClient, admin: Account, owner: Account) -> dict[str, Any]:
    node = await make_node(client, admin, name=f"node-{uuid.uuid4().hex[:6]}")
    allocation = (await make_allocations(client, admin, node["id"], "9300"))[0]
    body = {
        "name": "Timed", "memory_mb": 64, "disk_mb": 64, "node_id": node["id"],
        "template_id": await template_id(client, admin, "generic"), "owner_id": owner.id,
        "allocation_id": allocation["id"],
    }  # fmt: skip
    response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    server: dict[str, Any] = response.json()
    return server


async def _queued(platform: Platform) -> list[dict[str, Any]]:
    return [
        job for job in await rows(platform, "jobs") if job["name"] == RUN_JOB and job["status"] == "queued"
    ]


async def test_a_schedule_is_made_queued_for_its_next_tick_changed_and_deleted(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    base = f"/api/panel/servers/{server['id']}/schedules"
    body = {"name": "Nightly restart", "cron": "0  4 * * *", "only_when_online": True, "tasks": TASKS}
    made = await client.post(base, json=body, headers=member.headers)
    assert made.status_code == 201, made.text
    schedule = made.json()
    assert schedule["cron"] == "0 4 * * *"
    due = datetime.fromisoformat(schedule["next_run_at"])
    assert (due.hour, due.minute) == (4, 0)
    queued = await _queued(platform)
    assert len(queued) == 1
    assert queued[0]["payload"] == {"schedule_id": schedule["id"], "trigger": "cron", "due": due.isoformat()}

    changed = await client.put(
        f"{base}/{schedule['id']}", json={**body, "cron": "30 5 * * 1"}, headers=member.headers
    )
    assert changed.status_code == 200, changed.text
    [queued_now] = await _queued(platform)
    assert queued_now["payload"]["due"] == changed.json()["next_run_at"].replace("Z", "+00:00")
    assert datetime.fromisoformat(changed.json()["next_run_at"]).weekday() == 0

    paused = await client.put(
        f"{base}/{schedule['id']}", json={**body, "enabled": False}, headers=member.headers
    )
    assert paused.json()["next_run_at"] is None
    assert await _queued(platform) == []
    await client.put(f"{base}/{schedule['id']}", json=body, headers=member.headers)
    assert len(await _queued(platform)) == 1
    assert [s["name"] for s in (await client.get(base, headers=member.headers)).json()] == ["Nightly restart"]

    assert (await client.delete(f"{base}/{schedule['id']}", headers=member.headers)).status_code == 204
    assert await _queued(platform) == []
    assert (await client.get(f"{base}/{schedule['id']}", headers=member.headers)).status_code == 404
    actions = [e["action"] for e in (await client.get(f"/api/panel/servers/{server['id']}/activity",
                                                       headers=member.headers)).json()]  # fmt: skip
    assert {"panel.schedule.create", "panel.schedule.update", "panel.schedule.delete"} <= set(actions)


async def test_a_run_queues_the_next_tick_skips_offline_servers_and_keeps_its_history(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    base = f"/api/panel/servers/{server['id']}/schedules"
    skip = await client.post(
        base, json={"name": "Skip", "cron": "*/5 * * * *", "only_when_online": True, "tasks": TASKS},
        headers=member.headers,
    )  # fmt: skip
    schedule = skip.json()
    stale = {"schedule_id": schedule["id"], "trigger": "cron", "due": "2020-01-01T00:00:00+00:00"}
    await run_schedule(FakeJob(platform), stale)  # type: ignore[arg-type]
    assert (await client.get(f"{base}/{schedule['id']}/runs", headers=member.headers)).json() == []

    due = schedule["next_run_at"].replace("Z", "+00:00")
    await run_schedule(FakeJob(platform), {"schedule_id": schedule["id"], "trigger": "cron", "due": due})  # type: ignore[arg-type]
    [run] = (await client.get(f"{base}/{schedule['id']}/runs", headers=member.headers)).json()
    assert run["status"] == "skipped"
    assert run["trigger"] == "cron"
    assert "offline" in run["steps"][0]["detail"]
    after = (await client.get(f"{base}/{schedule['id']}", headers=member.headers)).json()
    assert after["next_run_at"] > schedule["next_run_at"]
    assert after["last_run_at"] is not None
    # (the tick's own job is still queued here: the handler was called directly, not claimed by a worker)
    dues = [job["payload"]["due"] for job in await _queued(platform)]
    assert dues == [due, after["next_run_at"].replace("Z", "+00:00")]

    # Not only when online: the command fails (the server is not running) and ends the chain, unless the
    # task says to go on.
    chain = [{"action": "command", "payload": "hi", "continue_on_failure": True},
             {"action": "command", "payload": "again"}, {"action": "power", "payload": "kill"}]  # fmt: skip
    always = await client.post(
        base, json={"name": "Always", "cron": "0 * * * *", "tasks": chain}, headers=member.headers
    )
    ran = await client.post(f"{base}/{always.json()['id']}/run", headers=member.headers)
    assert ran.status_code == 202
    manual = next(job for job in await _queued(platform) if job["payload"].get("trigger") == "manual")
    await run_schedule(FakeJob(platform), manual["payload"])  # type: ignore[arg-type]
    [run] = (await client.get(f"{base}/{always.json()['id']}/runs", headers=member.headers)).json()
    assert run["status"] == "failed"
    assert run["trigger"] == "manual"
    assert [(step["index"], step["ok"]) for step in run["steps"]] == [(0, False), (1, False)]
    assert "server_not_running" in run["steps"][0]["detail"]
    log = (await client.get(f"/api/panel/servers/{server['id']}/activity", headers=member.headers)).json()
    runs = [entry for entry in log if entry["action"] == "panel.schedule.run"]
    assert [entry["details"]["status"] for entry in runs] == ["failed", "skipped"]
    assert runs[0]["actor_label"] == "schedule Always"


async def test_schedules_refuse_bad_input_and_keys_the_author_does_not_hold(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    helper = await account(platform)
    add = await client.post(
        f"/api/panel/servers/{server['id']}/users",
        json={
            "email": helper.user.email,
            "permissions": ["schedule.create", "schedule.read", "control.console"],
        },
        headers=member.headers,
    )
    assert add.status_code == 201, add.text
    base = f"/api/panel/servers/{server['id']}/schedules"
    good = {"name": "ok", "cron": "0 * * * *", "tasks": [{"action": "command", "payload": "save"}]}
    before = await snapshot(platform)
    for who, body, status, code in [
        (member, {**good, "cron": "61 * * * *"}, 422, "validation_failed"),
        (member, {**good, "cron": "*/5 * * * * *"}, 422, "validation_failed"),
        (member, {**good, "tasks": []}, 422, "validation_failed"),
        (member, {**good, "tasks": [{"action": "power", "payload": "explode"}]}, 422, "validation_failed"),
        (member, {**good, "tasks": [{"action": "command", "payload": "a\nb"}]}, 422, "validation_failed"),
        (member, {**good, "tasks": [{"action": "command", "payload": "x", "delay_s": 901}]}, 422,
         "validation_failed"),
        (member, {**good, "tasks": [{"action": "rm", "payload": "-rf"}]}, 422, "validation_failed"),
        (helper, {**good, "tasks": [{"action": "backup", "payload": ""}]}, 403, "subuser_keys_not_held"),
        (member, {**good, "tasks": [{"action": "command", "payload": "x", "delay_s": 900}] * 4}, 422,
         "schedule_invalid"),
        (helper, {**good, "tasks": [{"action": "power", "payload": "start"}]}, 403, "subuser_keys_not_held"),
    ]:  # fmt: skip
        response = await client.post(base, json=body, headers=who.headers)
        assert (response.status_code, response.json().get("code")) == (status, code), (body, response.text)
    assert await snapshot(platform) == before
    ok = await client.post(base, json=good, headers=helper.headers)
    assert ok.status_code == 201, ok.text
    # schedule.create is not schedule.update/delete
    for method, path in (("PUT", f"/{ok.json()['id']}"), ("DELETE", f"/{ok.json()['id']}"),
                         ("POST", f"/{ok.json()['id']}/run")):  # fmt: skip
        response = await client.request(method, base + path, json=good, headers=helper.headers)
        assert (response.status_code, response.json()["code"]) == (403, "server_permission"), method


async def test_schedule_routes_deny_side(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    server = await _server(client, admin, member)
    friend = await account(platform)
    added = await client.post(
        f"/api/panel/servers/{server['id']}/users",
        json={"email": friend.user.email, "permissions": ["control.console"]},
        headers=member.headers,
    )
    assert added.status_code == 201
    good = {"name": "ok", "cron": "0 * * * *", "tasks": [{"action": "command", "payload": "save"}]}
    base = f"/api/panel/servers/{server['id']}/schedules"
    schedule = (await client.post(base, json=good, headers=member.headers)).json()
    _, credential = await enrol(platform, (await make_token(client, admin, node_name="node-x"))["token"])
    one = f"{base}/{schedule['id']}"
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", base, None), ("POST", base, good), ("GET", one, None), ("PUT", one, good),
        ("DELETE", one, None), ("POST", f"{one}/run", None), ("GET", f"{one}/runs", None),
    ]  # fmt: skip
    before = await snapshot(platform)
    for method, path, body in routes:
        response = await client.request(method, path, json=body, headers=stranger.headers)
        assert (response.status_code, response.json()["code"]) == (404, "server_not_found"), (method, path)
        response = await client.request(method, path, json=body, headers=friend.headers)
        assert (response.status_code, response.json()["code"]) == (403, "server_permission"), (method, path)
        assert (await client.request(method, path, json=body)).status_code == 401
        assert (await client.request(method, path, json=body, headers=bearer(credential))).status_code == 403
    assert await snapshot(platform) == before
    other = await _server(client, admin, member)
    wrong = f"/api/panel/servers/{other['id']}/schedules/{schedule['id']}"
    assert (await client.get(wrong, headers=member.headers)).json()["code"] == "schedule_not_found"
    missing = f"{base}/{uuid.uuid4()}"
    assert (await client.get(missing, headers=member.headers)).status_code == 404
