"""The streams topic families as tests/test_topic_table.py walks them: each makes a resource of the owner
(an admin, through its login token) and returns its topic and the REST path reading the same data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from tests.factories import bearer

if TYPE_CHECKING:
    from pentad.core.platform import Platform
    from tests.test_topic_table import Owner


async def _own_private_camera(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    response = await client.post("/api/streams/cameras", json={"name": "walked"}, headers=bearer(owner.token))
    assert response.status_code == 201, response.text
    camera = response.json()["id"]
    return f"streams.camera.{camera}", f"/api/streams/cameras/{camera}"


async def _directory(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    return "streams.directory", "/api/streams/directory"


async def _own_streams_user(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    return f"streams.user.{owner.user.id}", "/api/streams/me/cameras"


STREAMS_CASES = {
    "streams.camera.{camera_id}": _own_private_camera,
    "streams.directory": _directory,
    "streams.user.{user_id}": _own_streams_user,
}
