"""/api/market static routes: types and hubs for traders, the import status for admins; the deny side
(no credentials 401, no permission 403) and bad input as problem+json."""

from __future__ import annotations

import httpx
import pytest

from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.factories import bearer, create_admin, create_user, issue_api_key


@pytest.fixture
def database(static_db: Database) -> Database:
    """The app reads the module's imported subset."""
    return static_db


async def _headers(
    platform: Platform, *, admin: bool = False, scopes: tuple[str, ...] = ("*",)
) -> dict[str, str]:
    user = await (create_admin(platform) if admin else create_user(platform))
    return bearer(await issue_api_key(platform, user, scopes))


async def test_traders_find_types_and_hubs(platform: Platform, client: httpx.AsyncClient) -> None:
    headers = await _headers(platform)
    found = await client.get("/api/market/types", params={"q": "rIf"}, headers=headers)
    assert found.status_code == 200
    assert found.json() == [
        {"id": 587, "name": "Rifter", "group_id": 25, "market_group_id": 99004, "volume_m3": 27289.0,
         "packaged_volume_m3": 2500.0}
    ]  # fmt: skip
    assert (await client.get("/api/market/types", params={"q": "  "}, headers=headers)).json() == []
    one = await client.get("/api/market/types/34", headers=headers)
    assert one.json()["name"] == "Tritanium"

    hubs = (await client.get("/api/market/hubs", headers=headers)).json()
    assert [hub["key"] for hub in hubs] == ["jita", "amarr", "dodixie", "rens", "hek"]
    assert all(hub["known"] for hub in hubs)
    assert hubs[4] | {"security": None} == {
        "key": "hek", "station_id": 60005686, "region_id": 10000042, "known": True,
        "station_name": "Hek VIII - Moon 12 - Boundless Creation Factory", "system_id": 30002053,
        "system_name": "Hek", "security": None, "security_display": 0.5, "region_name": "Metropolis",
        "book": {
            "region_id": 10000042, "state": "none", "captured_at": None, "age_minutes": None,
            "unavailable_since": None, "retry_at": None, "reason": None, "failed_attempts": 0,
            "message": "No market data yet: the first refresh has not finished.",
        },
    }  # fmt: skip


async def test_the_import_status_is_for_admins(platform: Platform, client: httpx.AsyncClient) -> None:
    admin = await _headers(platform, admin=True)
    status = await client.get("/api/market/sde", headers=admin)
    assert status.status_code == 200
    assert status.json()["build"] == "subset-1"
    assert status.json()["counts"]["stations"] == 5
    member = await client.get("/api/market/sde", headers=await _headers(platform))
    assert member.status_code == 403
    assert member.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "path", ["/api/market/types?q=trit", "/api/market/types/34", "/api/market/hubs", "/api/market/sde"]
)
async def test_without_credentials_or_permission_nothing_is_answered(
    platform: Platform, client: httpx.AsyncClient, path: str
) -> None:
    assert (await client.get(path)).status_code == 401
    unscoped = await _headers(platform, admin=True, scopes=("core.api_keys.own",))
    assert (await client.get(path, headers=unscoped)).status_code == 403


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/market/types/999999999", 404, "unknown_type"),
        ("/api/market/types/0", 422, None),
        ("/api/market/types/abc", 422, None),
        ("/api/market/types?q=a", 422, None),
        ("/api/market/types", 422, None),
        ("/api/market/types?q=trit&limit=1000", 422, None),
    ],
)
async def test_bad_input_is_a_problem(
    platform: Platform, client: httpx.AsyncClient, path: str, status: int, code: str | None
) -> None:
    answer = await client.get(path, headers=await _headers(platform))
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    if code:
        assert answer.json()["code"] == code
