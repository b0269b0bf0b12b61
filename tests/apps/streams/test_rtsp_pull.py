"""RTSP pull end to end: a real `pentad serve` (built-in engine, SQLite) pulls an IP camera from a real RTSP
server process on loopback (tests/apps/streams/rtsp_server.py: RTSP over TCP, Basic credentials, the
synthetic camera as MPEG-TS over RTP), with credentials that need quoting. The camera goes live as HLS cut
on keyframes; the server is stopped (the camera goes offline, the puller logs each failed try with a
growing delay) and started again (the puller reconnects by itself and the camera is live again). The
camera's password is never in the API's answers, the log, the server's children's command lines or the
media dir."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets

from pentad.apps.streams.media.rtsp import PullSource, pinned_url
from pentad.apps.streams.settings import RtspSettings, StreamsSettings
from pentad.core.netguard import DestinationNotAllowed
from tests.apps.streams.media_node import (
    OWNER,
    PASSWORD,
    MediaNode,
    child_argvs,
    node_env,
    require_ffmpeg,
)
from tests.factories import free_port
from tests.servers import HOST

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
CAMERA_USER = "admin"
CAMERA_PASSWORD = "it's a s3cret@camera"


@contextlib.contextmanager
def rtsp_server(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "tests.apps.streams.rtsp_server", "--port", str(port),
        "--user", CAMERA_USER, "--password", CAMERA_PASSWORD,
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _segments(playlist: Path) -> list[str]:
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _first_flags(segment: Path) -> str:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags",
         "-read_intervals", "%+#1", "-of", "csv=p=0", str(segment)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaNode]:
    require_ffmpeg()
    root = tmp_path_factory.mktemp("rtsp-node")
    env = node_env(root) | {
        "PENTAD_STREAMS__RTSP__CONNECT_TIMEOUT": "2",
        "PENTAD_STREAMS__RTSP__READ_TIMEOUT": "3",
        "PENTAD_STREAMS__RTSP__BACKOFF_BASE": "0.5",
        "PENTAD_STREAMS__RTSP__BACKOFF_MAX": "2",
    }
    media = MediaNode(env, root / "serve.log", free_port())
    media.prepare()
    media.cli("user", "create", "--email", "admin@example.com", "--password", PASSWORD, "--role", "admin")
    with media.serving() as server:
        media.pid = server.pid
        yield media


def _login(node: MediaNode, email: str) -> dict[str, str]:
    answer = httpx.post(
        f"{node.base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_an_rtsp_camera_is_pulled_and_survives_its_server_restarting(node: MediaNode, tmp_path: Path) -> None:
    port = free_port()
    url = f"rtsp://{CAMERA_USER}:{quote(CAMERA_PASSWORD, safe='')}@{HOST}:{port}/cam"
    admin = _login(node, "admin@example.com")
    server_log = tmp_path / "rtsp.log"
    answers: list[httpx.Response] = []
    with rtsp_server(port, server_log):
        made = httpx.post(
            f"{node.base_url}/api/streams/cameras",
            json={"name": "Yard", "visibility": "public", "source": "rtsp", "rtsp_url": url},
            headers=admin,
            timeout=30,
        )
        answers.append(made)
        assert made.status_code == 201, made.text
        camera = uuid.UUID(made.json()["id"])
        playlist = node.playlist(camera)
        node.wait(lambda: len(_segments(playlist)) >= 3, "the pulled camera's HLS", timeout=60)
        assert node.camera_state(camera) == "live"
        for name in _segments(playlist)[-2:]:
            assert _first_flags(playlist.parent / name).startswith("K"), name
        streams = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(playlist)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sorted(s["codec_name"] for s in json.loads(streams.stdout)["streams"]) == ["aac", "h264"]
        opened = [line for line in node.log_events("stream_opened") if str(camera) in line]
        assert opened
        assert '"engine":"rtsp"' in opened[-1]
        answers.append(httpx.get(f"{node.base_url}/api/streams/cameras/{camera}", headers=admin, timeout=30))
        argvs = child_argvs(node.pid)
        assert any("concat" in argv for argv in argvs), argvs  # the pull runs, the URL is not on its line
    # The camera's server is gone: the stream ends, the puller keeps trying with a growing delay.
    node.wait(lambda: node.camera_state(camera) == "offline", "the camera goes offline", timeout=60)
    node.wait(
        lambda: len([line for line in node.log_events("rtsp_unreachable") if str(camera) in line]) >= 3,
        "three failed tries logged",
        timeout=60,
    )
    tries = [json.loads(line) for line in node.log_events("rtsp_unreachable") if str(camera) in line]
    assert [entry["attempt"] for entry in tries[:3]] == sorted(entry["attempt"] for entry in tries[:3])
    assert tries[2]["retry_in"] >= tries[0]["retry_in"]
    ended = _segments(playlist)
    with rtsp_server(port, server_log):
        node.wait(lambda: node.camera_state(camera) == "live", "the puller reconnects", timeout=60)
        node.wait(lambda: _segments(playlist) and _segments(playlist) != ended, "new segments", timeout=60)
        assert any(str(camera) in line for line in node.log_events("rtsp_connected")[1:])

    secret_forms = [CAMERA_PASSWORD, quote(CAMERA_PASSWORD, safe=""), "s3cret"]
    log = node.log.read_text()
    for form in secret_forms:
        assert form not in log
        for answer in answers:
            assert form not in answer.text
        for argv in child_argvs(node.pid):
            assert form not in argv
        for path in node.media_dir.rglob("*"):
            assert form not in str(path)
            if path.is_file():
                assert form.encode() not in path.read_bytes(), path
    assert answers[-1].json()["rtsp_url"] != url


async def _unreachable_events(node: MediaNode, token: str, camera: str, count: int) -> list[dict[str, Any]]:
    """The first `count` `camera.unreachable` events on the camera's hub topic."""
    found: list[dict[str, Any]] = []
    async with websockets.connect(node.base_url.replace("http://", "ws://") + "/ws") as socket:
        await socket.send(json.dumps({"op": "auth", "id": 1, "token": token}))
        assert json.loads(await socket.recv())["ok"]
        await socket.send(json.dumps({"op": "subscribe", "id": 2, "topic": f"streams.camera.{camera}"}))
        assert json.loads(await socket.recv())["ok"]
        async with asyncio.timeout(60):
            async for frame in socket:
                data = json.loads(frame).get("data") or {}
                if data.get("type") == "camera.unreachable":
                    found.append(data)
                    if len(found) == count:
                        return found
    return found


def test_a_camera_that_never_answers_is_retried_with_backoff_logged_and_told_on_its_topic(
    node: MediaNode,
) -> None:
    admin = _login(node, "admin@example.com")
    silent = free_port()  # nothing listens there
    made = httpx.post(
        f"{node.base_url}/api/streams/cameras",
        json={
            "name": "Nobody",
            "visibility": "private",
            "source": "rtsp",
            "rtsp_url": f"rtsp://u:hidden-pass@{HOST}:{silent}/x",
        },
        headers=admin,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    camera = made.json()["id"]
    # The camera's watchers are told of each failure with the backoff state.
    events = asyncio.run(_unreachable_events(node, admin["Authorization"].removeprefix("Bearer "), camera, 2))
    assert [event["camera_id"] for event in events] == [camera, camera]
    assert events[1]["attempt"] == events[0]["attempt"] + 1
    assert 0 < events[0]["retry_in"] <= events[1]["retry_in"] <= 2.0
    assert set(events[0]) == {"type", "camera_id", "attempt", "retry_in"}
    node.wait(
        lambda: len([line for line in node.log_events("rtsp_unreachable") if camera in line]) >= 2,
        "failed tries logged",
        timeout=60,
    )
    assert node.camera_state(uuid.UUID(camera)) == "offline"
    assert not node.hls_dir(uuid.UUID(camera)).exists()
    assert "hidden-pass" not in node.log.read_text()
    services = httpx.get(f"{node.base_url}/readyz", timeout=10).json()["services"]
    assert services["streams.ingest"]["status"] == "running"
    assert OWNER


def test_a_host_name_that_resolves_to_a_private_address_is_refused_when_the_puller_connects(
    node: MediaNode,
) -> None:
    """An owner may not pull from a private address: a literal one is refused when saved; a name that
    resolves to one (DNS can say anything, and say it later) is refused by the puller each time it
    would connect, and ffmpeg never starts."""
    name = socket.gethostname()
    if any(ipaddress.ip_address(info[4][0]).is_global for info in socket.getaddrinfo(name, 554)):
        pytest.skip(f"this machine's name {name!r} resolves to a public address")
    owner = _login(node, OWNER)
    literal = httpx.post(
        f"{node.base_url}/api/streams/cameras",
        json={"name": "Literal", "visibility": "private", "source": "rtsp", "rtsp_url": f"rtsp://{HOST}:9/x"},
        headers=owner,
        timeout=30,
    )
    assert literal.status_code == 400, literal.text
    made = httpx.post(
        f"{node.base_url}/api/streams/cameras",
        json={"name": "Named", "visibility": "private", "source": "rtsp", "rtsp_url": f"rtsp://{name}:9/x"},
        headers=owner,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    camera = made.json()["id"]
    node.wait(
        lambda: len([line for line in node.log_events("rtsp_target_refused") if camera in line]) >= 2,
        "the private target refused at each try",
        timeout=60,
    )
    refused = [json.loads(line) for line in node.log_events("rtsp_target_refused") if camera in line]
    assert "private or reserved" in refused[0]["reason"]
    assert not any(f"rtsp:{camera}" in line for line in node.log_events("service_child_started"))
    assert node.camera_state(uuid.UUID(camera)) == "offline"


async def test_the_url_given_to_ffmpeg_names_the_checked_address_not_the_host_name() -> None:
    settings = StreamsSettings()
    source = PullSource(uuid.uuid4(), "rtsp://user:p%40ss@localhost:8554/live?x=1", allow_private=True)
    assert await pinned_url(source, settings) == "rtsp://user:p%40ss@127.0.0.1:8554/live?x=1"
    with pytest.raises(DestinationNotAllowed):
        await pinned_url(PullSource(source.camera_id, source.url), settings)  # not approved as private
    with pytest.raises(DestinationNotAllowed):  # approved, but private addresses are now switched off
        await pinned_url(source, StreamsSettings(rtsp=RtspSettings(allow_private=False)))
    with pytest.raises(DestinationNotAllowed):
        await pinned_url(
            PullSource(source.camera_id, "rtsp://no-such-host.invalid/x", allow_private=True), settings
        )
