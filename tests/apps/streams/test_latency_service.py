"""The continuous latency probe (`streams.latency_probe`, services.py): a real `pentad serve` with
LATENCY_PROBE__ENABLED publishes its stamped camera through the built-in engine and reports glass-to-glass
latency of WebRTC and HLS on /metrics and the camera's hub topic, with a stream key of its own. The
settings refuse an enabled probe without a camera (off by default: test_services.py)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from pydantic import ValidationError

from pentad.apps.streams.settings import LatencyProbeSettings
from tests.apps.streams.media_node import PASSWORD, MediaNode, node_env, require_ffmpeg
from tests.factories import free_port

pytestmark = pytest.mark.slow

SAMPLES = re.compile(r'^pentad_streams_glass_to_glass_seconds_count\{protocol="(\w+)"\} (\S+)$', re.MULTILINE)
P95 = re.compile(r'^pentad_streams_glass_to_glass_p95_seconds\{protocol="(\w+)"\} (\S+)$', re.MULTILINE)


def test_an_enabled_probe_needs_a_camera_and_known_protocols() -> None:
    with pytest.raises(ValidationError, match="CAMERA is required"):
        LatencyProbeSettings(enabled=True)
    with pytest.raises(ValidationError, match="unknown protocol"):
        LatencyProbeSettings(enabled=True, camera=uuid.uuid4(), protocols=["rtmp"])


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MediaNode, uuid.UUID]]:
    require_ffmpeg()
    root = tmp_path_factory.mktemp("probe-node")
    node = MediaNode(node_env(root), root / "serve.log", free_port())
    node.prepare()
    node.cli("user", "create", "--email", "admin@example.com", "--password", PASSWORD, "--role", "admin")
    camera = node.new_camera("unlisted")
    node.env |= {
        "PENTAD_STREAMS__LATENCY_PROBE__ENABLED": "true",
        "PENTAD_STREAMS__LATENCY_PROBE__CAMERA": str(camera),
        "PENTAD_STREAMS__LATENCY_PROBE__INTERVAL": "0.5",
    }
    with node.serving() as server:
        node.pid = server.pid
        yield node, camera


def _admin(node: MediaNode) -> dict[str, str]:
    answer = httpx.post(
        f"{node.base_url}/api/auth/login",
        json={"email": "admin@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _latency_event(node: MediaNode, token: str, camera: uuid.UUID) -> dict[str, Any]:
    """The first `camera.latency` event with both protocols on the camera's topic."""
    async with websockets.connect(node.base_url.replace("http://", "ws://") + "/ws") as socket:
        await socket.send(json.dumps({"op": "auth", "id": 1, "token": token}))
        assert json.loads(await socket.recv())["ok"]
        await socket.send(json.dumps({"op": "subscribe", "id": 2, "topic": f"streams.camera.{camera}"}))
        assert json.loads(await socket.recv())["ok"]
        async with asyncio.timeout(60):
            async for frame in socket:
                data = json.loads(frame).get("data") or {}
                if data.get("type") == "camera.latency" and set(data["protocols"]) == {"webrtc", "hls"}:
                    return dict(data)
    raise AssertionError("no camera.latency event")


def test_a_running_server_reports_glass_to_glass_latency_on_metrics_and_the_camera_topic(
    probed: tuple[MediaNode, uuid.UUID],
) -> None:
    node, camera = probed
    admin = _admin(node)
    event = asyncio.run(_latency_event(node, admin["Authorization"].removeprefix("Bearer "), camera))
    assert event["camera_id"] == str(camera)
    for figures in event["protocols"].values():
        assert figures["samples"] >= 1
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"] < 30_000

    text = httpx.get(f"{node.base_url}/metrics", headers=admin, timeout=30).text
    counts = {protocol: float(value) for protocol, value in SAMPLES.findall(text)}
    assert counts.keys() == {"webrtc", "hls"}
    assert all(value >= 1 for value in counts.values())
    p95 = {protocol: float(value) for protocol, value in P95.findall(text)}
    assert p95.keys() == {"webrtc", "hls"}
    assert all(0 < value < 30 for value in p95.values())
    assert httpx.get(f"{node.base_url}/metrics", timeout=30).status_code in (401, 403)

    services = httpx.get(f"{node.base_url}/readyz", timeout=10).json()["services"]
    assert services["streams.latency_probe"]["status"] == "running"
    assert services["streams.latency_probe"]["restarts"] == 0

    # The probe's own key, shown to the camera's managers by name, never by value.
    keys = httpx.get(f"{node.base_url}/api/streams/cameras/{camera}/keys", headers=admin, timeout=30)
    assert keys.status_code == 200, keys.text
    live = [key for key in keys.json() if key["revoked_at"] is None]
    assert [key["name"] for key in live] == ["latency probe"]
    assert "psk_" not in node.log.read_text(errors="replace")
