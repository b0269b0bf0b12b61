"""Security headers, the client's address behind proxies, and the request body limit, seen from a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.db.engine import Database
from pentad.core.security import CONTENT_SECURITY_POLICY, client_address
from tests.conftest import make_settings

# Headers, proxies and body limits do not depend on the database engine: they run on one.
pytestmark = pytest.mark.one_engine

probe = APIRouter(prefix="/probe")


@probe.get("/address")
async def address(request: Request) -> dict[str, str]:
    return {"client": client_address(request), "scheme": request.state.scheme}


@probe.get("/own-policy")
async def own_policy() -> Response:
    return Response("framed", headers={"Content-Security-Policy": "frame-ancestors 'self'"})


@probe.post("/json")
async def json_body(payload: dict[str, Any]) -> dict[str, int]:
    return {"keys": len(payload)}


@probe.post("/raw")
async def raw_body(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


PROBE = AppSpec(name="probe", title="Probe", routers=[probe])
MAX_BODY = 2048


def _app(tmp_path: Path, database_url: str, database: Database, **security: object) -> FastAPI:
    settings = make_settings(tmp_path, database_url, security={"max_body_bytes": MAX_BODY, **security})
    return create_app(settings, database=database, apps=[PROBE])


async def _client(
    app: FastAPI, peer: str = "127.0.0.1", base_url: str = "http://testserver"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def probe_client(
    tmp_path: Path, database_url: str, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(_app(tmp_path, database_url, database)) as client:
        yield client


@pytest.fixture
async def behind_proxy(
    tmp_path: Path, database_url: str, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests arrive through a trusted proxy at 10.0.0.2."""
    app = _app(tmp_path, database_url, database, trusted_proxies=["10.0.0.0/24", "192.168.1.1"])
    async with await _client(app, peer="10.0.0.2") as client:
        yield client


# ------------------------------------------------------------------ headers


async def test_every_response_carries_the_hardening_headers(probe_client: httpx.AsyncClient) -> None:
    for response in (await probe_client.get("/healthz"), await probe_client.get("/no/such/page")):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert response.headers["permissions-policy"] == "camera=(), microphone=(), geolocation=()"


async def test_a_route_may_set_its_own_policy(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/probe/own-policy")
    assert response.headers.get_list("content-security-policy") == ["frame-ancestors 'self'"]
    assert response.headers["x-frame-options"] == "DENY"


async def test_no_hsts_over_plain_http(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/healthz")
    assert "strict-transport-security" not in response.headers


async def test_hsts_over_direct_https(tmp_path: Path, database_url: str, database: Database) -> None:
    app = _app(tmp_path, database_url, database, hsts_max_age=600)
    async with await _client(app, base_url="https://testserver") as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=600"


async def test_hsts_when_a_trusted_proxy_terminated_tls(behind_proxy: httpx.AsyncClient) -> None:
    response = await behind_proxy.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"] == "max-age=31536000"


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/probe/address", headers={"X-Forwarded-Proto": "https"})
    assert response.json()["scheme"] == "http"
    assert "strict-transport-security" not in response.headers


# ------------------------------------------------------------------ client address


async def test_without_a_proxy_the_peer_is_the_client(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/probe/address", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.json() == {"client": "127.0.0.1", "scheme": "http"}


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # The leftmost entry was written by the client itself; only the proxy's own entry counts.
        ("198.51.100.1, 203.0.113.7", "203.0.113.7"),
        # Trusted proxies in the chain are skipped, walking from the right.
        ("203.0.113.7, 192.168.1.1, 10.0.0.9", "203.0.113.7"),
        ("203.0.113.7:41234", "203.0.113.7"),
        ("[2001:db8::7]:41234", "2001:db8::7"),
        # Nothing usable in the header: the last trusted hop is all we know.
        ("not-an-address", "10.0.0.2"),
    ],
)
async def test_a_trusted_proxy_names_the_client(
    behind_proxy: httpx.AsyncClient, forwarded_for: str, client: str
) -> None:
    response = await behind_proxy.get("/probe/address", headers={"X-Forwarded-For": forwarded_for})
    assert response.json()["client"] == client


async def test_forwarded_for_spread_over_several_headers(behind_proxy: httpx.AsyncClient) -> None:
    headers = [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.7, 10.0.0.9")]
    response = await behind_proxy.get("/probe/address", headers=headers)
    assert response.json()["client"] == "203.0.113.7"


async def test_a_peer_outside_the_trusted_networks_cannot_claim_another_address(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = _app(tmp_path, database_url, database, trusted_proxies=["10.0.0.0/24"])
    async with await _client(app, peer="10.0.1.2") as client:
        response = await client.get(
            "/probe/address", headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        )
    assert response.json() == {"client": "10.0.1.2", "scheme": "http"}


async def test_a_proxy_on_a_dual_stack_socket_is_recognised(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = _app(tmp_path, database_url, database, trusted_proxies=["10.0.0.0/24"])
    async with await _client(app, peer="::ffff:10.0.0.2") as client:
        response = await client.get("/probe/address", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.json()["client"] == "203.0.113.7"


# ------------------------------------------------------------------ body size


async def test_a_body_within_the_limit_is_accepted(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe/raw", content=b"x" * MAX_BODY)
    assert response.status_code == 200
    assert response.json() == {"bytes": MAX_BODY}


async def test_a_declared_oversize_body_is_refused(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe/json", json={"blob": "x" * MAX_BODY})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "payload_too_large"
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b" " * size


@pytest.mark.parametrize("route", ["/probe/json", "/probe/raw"])
async def test_a_streamed_body_is_cut_off_at_the_limit(probe_client: httpx.AsyncClient, route: str) -> None:
    response = await probe_client.post(
        route, content=_chunks(count=8, size=1024), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_a_streamed_body_within_the_limit_is_accepted(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe/raw", content=_chunks(count=2, size=1024))
    assert response.status_code == 200
    assert response.json() == {"bytes": 2048}
