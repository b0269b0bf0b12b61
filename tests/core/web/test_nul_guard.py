"""The NUL guard: U+0000 in a JSON or form body, a query parameter or the path is a 422 naming the field,
for every route; everything else reaches the route unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, File, Form, UploadFile
from pydantic import BaseModel

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.config import Settings
from pentad.core.db.engine import Database

NUL_ISSUE = {"msg": "must not contain the NUL character (U+0000)", "type": "nul_character"}


class Echo(BaseModel):
    name: str
    tags: list[str] = []
    data: dict[str, Any] = {}


router = APIRouter(prefix="/api/demo")
reached: list[str] = []


@router.post("/echo")
async def echo(body: Echo) -> Echo:
    reached.append("echo")
    return body


@router.post("/form")
async def form(name: Annotated[str, Form()]) -> dict[str, str]:
    reached.append("form")
    return {"name": name}


@router.post("/upload")
async def upload(file: Annotated[UploadFile, File()]) -> dict[str, int]:
    reached.append("upload")
    return {"size": len(await file.read())}


@router.get("/items/{name}")
async def item(name: str, q: str = "") -> dict[str, str]:
    reached.append("item")
    return {"name": name, "q": q}


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    reached.clear()
    spec = AppSpec(name="demo", title="Demo", description="Echoes its input.", routers=[router])
    app: FastAPI = create_app(settings, database=database, apps=[spec])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def refused(response: httpx.Response, *locs: list[Any]) -> bool:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert problem["detail"] == f"{'.'.join(map(str, locs[0]))}: {NUL_ISSUE['msg']}"
    assert problem["errors"] == [{"loc": loc, **NUL_ISSUE} for loc in locs]
    assert reached == []
    return True


async def test_a_nul_anywhere_in_a_json_body_is_refused_naming_each_place(client: httpx.AsyncClient) -> None:
    body = {"name": "a\x00", "tags": ["ok", "b\x00"], "data": {"k\x00": 1, "deep": [{"x": "\x00"}]}}
    response = await client.post("/api/demo/echo", json=body)
    assert refused(
        response,
        ["body", "name"],
        ["body", "tags", 1],
        ["body", "data", "k\\u0000"],
        ["body", "data", "deep", 0, "x"],
    )


async def test_json_in_utf16_or_with_a_json_suffix_type_is_checked_too(client: httpx.AsyncClient) -> None:
    utf16 = '{"name": "a\\u0000"}'.encode("utf-16")
    json_type = {"content-type": "application/json"}
    response = await client.post("/api/demo/echo", content=utf16, headers=json_type)
    assert refused(response, ["body", "name"])
    response = await client.post(
        "/api/demo/echo",
        content=b'{"name": "\\u0000"}',
        headers={"content-type": "application/merge-patch+json; charset=utf-8"},
    )
    assert refused(response, ["body", "name"])


async def test_a_nul_in_a_form_field_the_query_or_the_path_is_refused(client: httpx.AsyncClient) -> None:
    assert refused(await client.post("/api/demo/form", data={"name": "a\x00b"}), ["body", "name"])
    assert refused(await client.get("/api/demo/items/fine", params={"q": "x\x00"}), ["query", "q"])
    assert refused(await client.get("/api/demo/items/bad%00name"), ["path"])


async def test_input_without_a_nul_reaches_the_route_unchanged(client: httpx.AsyncClient) -> None:
    body = {"name": "a literal \\u0000 and %00", "tags": ["\u00e9"], "data": {"n": [1, None, True]}}
    response = await client.post("/api/demo/echo", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == body

    response = await client.post("/api/demo/form", data={"name": "100% \\x00"})
    assert response.json() == {"name": "100% \\x00"}

    response = await client.get("/api/demo/items/a%2500", params={"q": "\\u0000"})
    assert response.json() == {"name": "a%00", "q": "\\u0000"}

    # A file may hold any byte.
    response = await client.post("/api/demo/upload", files={"file": ("blob.bin", b"\x00\x01\x00")})
    assert response.json() == {"size": 3}
    assert reached == ["echo", "form", "item", "upload"]


async def test_a_body_that_is_not_json_is_left_to_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/demo/echo", content=b'{"name": "\\u0000"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_json"


async def test_core_routes_are_guarded_before_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login", json={"email": "someone@example.com", "password": "secret\x00secret"}
    )
    assert refused(response, ["body", "password"])
