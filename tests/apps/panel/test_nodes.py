"""Nodes, enrolment tokens, enrolment and node credentials, allocations: what admins do over the API, what
an agent's enrolment gets, and the deny side (members, anonymous callers and node credentials are refused,
and a refused request changes nothing)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from pentad.apps.panel.actions.nodes import enrol_node
from pentad.apps.panel.credentials import authenticate_node
from pentad.apps.panel.exceptions import EnrolmentTokenInvalid, NodeNameTaken
from pentad.apps.panel.models import PanelEnrolmentToken
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.db.base import utcnow
from pentad.core.platform import Platform
from tests.apps.panel.support import enrol, make_allocations, make_node, make_token, rows, snapshot
from tests.factories import Account, bearer

FACTS = {"cores": 4, "memory_mb": 7900, "disk_mb": 50_000, "kernel": "6.18", "limits_backend": "rlimits",
         "sandbox": "bwrap", "agent_version": "0.1", "protocol": 1}  # fmt: skip


async def test_an_admin_adds_lists_changes_and_deletes_a_node(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node = await make_node(client, admin, overalloc_percent=10, public_host="play.example.com")
    assert node["status"] == "offline"
    assert (node["memory_mb"], node["servers"], node["enrolled_at"]) == (8192, 0, None)
    listed = (await client.get("/api/panel/nodes", headers=admin.headers)).json()
    assert [n["name"] for n in listed] == ["node-a"]

    response = await client.patch(
        f"/api/panel/nodes/{node['id']}", json={"draining": True, "memory_mb": 4096}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert (response.json()["draining"], response.json()["memory_mb"]) == (True, 4096)

    response = await client.delete(f"/api/panel/nodes/{node['id']}", headers=admin.headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/panel/nodes/{node['id']}", headers=admin.headers)).status_code == 404
    actions = [row["action"] for row in await rows(platform, "audit_events")]
    assert {"panel.node.create", "panel.node.update", "panel.node.delete"} <= set(actions)


async def test_node_names_are_unique(client: httpx.AsyncClient, admin: Account) -> None:
    await make_node(client, admin)
    response = await client.post("/api/panel/nodes", json={"name": "node-a"}, headers=admin.headers)
    assert (response.status_code, response.json()["code"]) == (409, "node_name_taken")
    response = await client.post("/api/panel/nodes", json={"name": "bad name!"}, headers=admin.headers)
    assert response.status_code == 422


async def test_an_enrolment_token_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    created = await make_token(client, admin, node_name="node-e")
    assert created["token"].startswith("pne_")
    assert created["command"].endswith(f"--token {created['token']}")
    (stored,) = await rows(platform, "panel_enrolment_tokens")
    secret = created["token"].split("_", 2)[2]
    assert stored["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert created["token"] not in repr(await rows(platform, "audit_events"))
    listed = (await client.get("/api/panel/enrolment-tokens", headers=admin.headers)).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]


async def test_enrolment_swaps_the_token_for_a_node_credential_once(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    token = (await make_token(client, admin, node_name="node-e"))["token"]
    node_id, credential = await enrol(platform, token, FACTS)
    assert credential.startswith("pnd_")

    node = (await client.get(f"/api/panel/nodes/{node_id}", headers=admin.headers)).json()
    assert node["name"] == "node-e"
    assert (node["memory_mb"], node["disk_mb"], node["cpu_percent"]) == (7900, 50_000, 400)
    assert node["facts"]["sandbox"] == "bwrap"
    assert node["enrolled_at"] is not None
    (stored,) = await rows(platform, "panel_node_credentials")
    assert stored["token_hash"] == hashlib.sha256(credential.split("_", 2)[2].encode()).hexdigest()
    assert (await client.get("/api/panel/enrolment-tokens", headers=admin.headers)).json() == []

    async with platform.database.transaction() as session:
        found, row = await authenticate_node(session, credential)
        assert (str(found.id), row.revoked_at) == (node_id, None)
    with pytest.raises(EnrolmentTokenInvalid):
        await enrol(platform, token, FACTS)


@pytest.mark.parametrize("raw", ["", "pne_nonsense", "pnd_" + "0" * 32 + "_secret", "pak_x"])
async def test_a_malformed_or_unknown_enrolment_token_is_refused(platform: Platform, raw: str) -> None:
    with pytest.raises(EnrolmentTokenInvalid):
        await enrol(platform, raw)


async def test_an_expired_or_tampered_token_is_refused(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    token = (await make_token(client, admin, node_name="node-e"))["token"]
    with pytest.raises(EnrolmentTokenInvalid):
        await enrol(platform, token[:-2] + ("aa" if not token.endswith("aa") else "bb"))
    async with platform.database.transaction() as session:
        await session.execute(update(PanelEnrolmentToken).values(expires_at=utcnow()))
    with pytest.raises(EnrolmentTokenInvalid):
        await enrol(platform, token)
    assert await rows(platform, "panel_nodes") == []


async def test_bad_facts_are_refused_and_spend_nothing(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    token = (await make_token(client, admin, node_name="node-e"))["token"]
    async with platform.database.transaction() as session:
        with pytest.raises(Exception, match="facts") as caught:
            await enrol_node(session, token, {"cores": "many"})
    assert getattr(caught.value, "code", None) == "invalid_facts"
    await enrol(platform, token, FACTS)


async def test_a_name_taken_since_the_token_was_made_is_refused(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    token = (await make_token(client, admin, node_name="node-a"))["token"]
    await make_node(client, admin)
    with pytest.raises(NodeNameTaken):
        await enrol(platform, token)


async def test_enrolling_a_node_again_revokes_its_old_credential(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node_id, old = await enrol(
        platform, (await make_token(client, admin, node_name="node-e"))["token"], FACTS
    )
    again = await make_token(client, admin, node_id=node_id)
    assert again["node_name"] == "node-e"
    same_id, new = await enrol(platform, again["token"], {**FACTS, "agent_version": "0.2"})
    assert same_id == node_id
    async with platform.database.transaction() as session:
        with pytest.raises(InvalidToken):
            await authenticate_node(session, old)
        node, _ = await authenticate_node(session, new)
        assert node.facts["agent_version"] == "0.2"


async def test_a_node_credential_authenticates_but_no_user_route_takes_it(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    _, credential = await enrol(platform, (await make_token(client, admin))["token"], FACTS)
    response = await client.get("/api/panel/nodes", headers=bearer(credential))
    assert response.status_code == 403
    response = await client.get("/api/panel/servers", headers=bearer(credential))
    assert response.status_code == 403
    forged = credential[:-4] + "AAAA"
    assert (await client.get("/api/panel/servers", headers=bearer(forged))).status_code == 401


async def test_a_deleted_node_s_credential_stops_working(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node_id, credential = await enrol(platform, (await make_token(client, admin))["token"], FACTS)
    assert (await client.delete(f"/api/panel/nodes/{node_id}", headers=admin.headers)).status_code == 204
    assert (await client.get("/api/panel/servers", headers=bearer(credential))).status_code == 401


async def test_allocations_are_added_from_ports_and_ranges_and_stay_unique(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node = await make_node(client, admin)
    made = await make_allocations(client, admin, node["id"], "25565", "27015-27017")
    assert [(a["ip"], a["port"]) for a in made] == [("0.0.0.0", p) for p in (25565, 27015, 27016, 27017)]
    before = await snapshot(platform)
    response = await client.post(
        f"/api/panel/nodes/{node['id']}/allocations",
        json={"ip": "0.0.0.0", "ports": ["27017-27020"]},
        headers=admin.headers,
    )
    assert (response.status_code, response.json()["code"]) == (409, "allocation_exists")
    assert response.json()["existing"] == ["0.0.0.0:27017"]
    assert await snapshot(platform) == before
    listed = (
        await client.get(f"/api/panel/nodes/{node['id']}/allocations?free=true", headers=admin.headers)
    ).json()
    assert len(listed) == 4
    response = await client.delete(
        f"/api/panel/nodes/{node['id']}/allocations/{made[0]['id']}", headers=admin.headers
    )
    assert response.status_code == 204


BAD_ALLOCATIONS: list[dict[str, Any]] = [
    {"ip": "0.0.0.0", "ports": ["80"]},
    {"ip": "0.0.0.0", "ports": ["30000-20000"]},
    {"ip": "0.0.0.0", "ports": ["1-65535"]},
    {"ip": "0.0.0.0", "ports": ["abc"]},
    {"ip": "not-an-ip", "ports": ["25565"]},
    {"ip": "0.0.0.0", "ports": []},
]


async def test_bad_allocations_are_refused_with_422_and_change_nothing(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node = await make_node(client, admin)
    before = await snapshot(platform)
    for body in BAD_ALLOCATIONS:
        response = await client.post(
            f"/api/panel/nodes/{node['id']}/allocations", json=body, headers=admin.headers
        )
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await snapshot(platform) == before


ADMIN_ROUTES = [
    ("POST", "/api/panel/nodes", {"name": "node-x"}),
    ("GET", "/api/panel/nodes", None),
    ("GET", "/api/panel/nodes/{node}", None),
    ("PATCH", "/api/panel/nodes/{node}", {"draining": True}),
    ("DELETE", "/api/panel/nodes/{node}", None),
    ("GET", "/api/panel/nodes/{node}/allocations", None),
    ("POST", "/api/panel/nodes/{node}/allocations", {"ip": "0.0.0.0", "ports": ["30000"]}),
    ("DELETE", "/api/panel/nodes/{node}/allocations/{allocation}", None),
    ("POST", "/api/panel/enrolment-tokens", {"node_name": "node-y"}),
    ("GET", "/api/panel/enrolment-tokens", None),
    ("DELETE", "/api/panel/enrolment-tokens/{token}", None),
]


async def test_node_routes_refuse_everyone_but_admins_and_change_nothing(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    node = await make_node(client, admin)
    (allocation,) = await make_allocations(client, admin, node["id"], "25565")
    token = await make_token(client, admin)
    _, credential = await enrol(platform, (await make_token(client, admin, node_name="node-z"))["token"])
    before = await snapshot(platform)
    for method, path, body in ADMIN_ROUTES:
        url = path.format(node=node["id"], allocation=allocation["id"], token=token["id"])
        for headers, status in ((member.headers, 403), (bearer(credential), 403), ({}, 401)):
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status_code == status, (method, path, headers, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert await snapshot(platform) == before
