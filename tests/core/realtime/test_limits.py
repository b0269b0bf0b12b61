"""What unauthenticated clients can cost `pentad serve`'s /ws: a frame over the limit is refused by the
protocol layer from its header (1009, never buffered), and sockets that have not authenticated are capped
per client address and in all. One server for the module."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from pentad.core.realtime.endpoint import Unauthenticated
from tests.core.realtime.conftest import WAIT, Peer
from tests.factories import DEFAULT_PASSWORD, free_port
from tests.servers import VENV_BIN, serving

MAX_MESSAGE_BYTES = 4096
PER_ADDRESS = 3
EMAIL = "limits@example.com"


@dataclass(frozen=True)
class Served:
    http_url: str

    @property
    def ws_url(self) -> str:
        return self.http_url.replace("http://", "ws://") + "/ws"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("realtime-limits")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_RATELIMIT__ENABLED": "false",
        "PENTAD_JOBS__IN_PROCESS_WORKER": "false",
        # Loopback is the proxy here: each test's sockets come "from" an address of their own.
        "PENTAD_SECURITY__TRUSTED_PROXIES": "127.0.0.1",
        "PENTAD_REALTIME__AUTH_TIMEOUT": "300",
        "PENTAD_REALTIME__MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "PENTAD_REALTIME__MAX_UNAUTHENTICATED_PER_ADDRESS": str(PER_ADDRESS),
    }
    pentad = str(VENV_BIN / "pentad")
    subprocess.run([pentad, "migrate"], env=env, cwd=data_dir, check=True, capture_output=True, timeout=120)
    subprocess.run(
        [pentad, "user", "create", "--email", EMAIL, "--password", DEFAULT_PASSWORD],
        env=env, cwd=data_dir, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with serving(env, data_dir, free_port(), data_dir / "serve.log") as url:
        yield Served(url)


@pytest.fixture(scope="module")
async def token(served: Served) -> str:
    async with httpx.AsyncClient(base_url=served.http_url, timeout=WAIT) as client:
        response = await client.post("/api/auth/login", json={"email": EMAIL, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    access: str = response.json()["access_token"]
    return access


def socket_from(served: Served, address: str) -> connect:
    return connect(served.ws_url, open_timeout=WAIT, additional_headers={"X-Forwarded-For": address})


async def closed_with(ws: ClientConnection) -> int:
    return await Peer(ws).closed_with()


async def test_a_frame_over_the_limit_is_refused_by_the_protocol_layer(served: Served, token: str) -> None:
    # 3,000 characters, 6,000 bytes: the limit is in bytes, and it is the protocol's close code (1009),
    # sent before the frame was read, whether the socket authenticated or not.
    oversized = '{"op":"ping","id":1,"x":"' + "é" * 3000 + '"}'
    async with socket_from(served, "10.0.1.1") as ws:
        await ws.send(oversized)
        assert await closed_with(ws) == 1009
    async with socket_from(served, "10.0.1.1") as ws:
        peer = Peer(ws)
        assert (await peer.request("auth", token=token))["ok"]
        assert (await peer.request("ping"))["ok"]
        await ws.send(oversized)
        assert await closed_with(ws) == 1009


async def test_one_address_cannot_hold_more_unauthenticated_sockets_than_the_limit(
    served: Served, token: str
) -> None:
    async with AsyncExitStack() as sockets:
        signed_in = Peer(await sockets.enter_async_context(socket_from(served, "10.0.2.1")))
        assert (await signed_in.request("auth", token=token))["ok"]
        waiting = [
            await sockets.enter_async_context(socket_from(served, "10.0.2.1")) for _ in range(PER_ADDRESS)
        ]
        with pytest.raises(InvalidStatus) as refused:
            await sockets.enter_async_context(socket_from(served, "10.0.2.1"))
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["retry-after"] == "1"
        # Another address is not affected; the signed-in socket keeps working.
        other = Peer(await sockets.enter_async_context(socket_from(served, "10.0.2.2")))
        assert (await other.request("auth", token=token))["ok"]
        assert (await signed_in.request("ping"))["ok"]
        # A waiting socket that authenticates no longer counts: the address may open one more.
        assert (await Peer(waiting[0]).request("auth", token=token))["ok"]
        again = Peer(await sockets.enter_async_context(socket_from(served, "10.0.2.1")))
        assert (await again.request("auth", token=token))["ok"]


def test_the_total_of_unauthenticated_sockets_is_capped_too() -> None:
    waiting = Unauthenticated(total=3, per_address=2)

    def status(address: str) -> int | None:
        refusal = waiting.refusal(address)
        return None if refusal is None else refusal[0]

    first = [waiting.enter("10.0.0.1"), waiting.enter("10.0.0.1")]
    assert status("10.0.0.1") == 429
    waiting.enter("10.0.0.2")
    assert status("10.0.0.3") == 503
    first[0].leave()
    first[0].leave()  # once only
    assert (waiting.total, dict(waiting.by_address)) == (2, {"10.0.0.1": 1, "10.0.0.2": 1})
    assert status("10.0.0.3") is None
