"""End to end on the built-in engine: a real `pentad serve` (SQLite, shared by the module) and real ffmpeg
publishers. Publish -> HLS cut on keyframes; a wrong or revoked key refused before anything is stored; a
live publisher dropped when its key is revoked; garbage on the RTMP port closed with a log line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pentad.apps.streams.media.packager import SEGMENT_PATTERN
from pentad.apps.streams.media.rtmp import chunks, handshake
from tests.apps.streams.media_node import (
    MediaNode,
    child_argvs,
    node_env,
    packager_pids,
    publishing,
    require_ffmpeg,
)
from tests.factories import free_port
from tests.servers import VENV_BIN

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaNode]:
    require_ffmpeg()
    root = tmp_path_factory.mktemp("media-node")
    media = MediaNode(node_env(root), root / "serve.log", free_port())
    media.prepare()
    with media.serving() as server:
        media.pid = server.pid
        yield media


@pytest.fixture(scope="module")
def live(node: MediaNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[uuid.UUID, str]]:
    """One camera publishing for the module: (camera id, key)."""
    camera = node.new_camera()
    _, key = node.new_key(camera)
    log = tmp_path_factory.mktemp("publisher") / "ffmpeg.log"
    with publishing(node.rtmp_url(key), log) as publisher:
        node.wait(lambda: _segments(node.playlist(camera)).__len__() >= 3, "three segments listed")
        assert publisher.poll() is None, log.read_text()
        yield camera, key


def _segments(playlist: Path) -> list[str]:
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _ffprobe(*args: str) -> str:
    result = subprocess.run(["ffprobe", "-v", "error", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_publisher_becomes_hls_cut_on_keyframes(node: MediaNode, live: tuple[uuid.UUID, str]) -> None:
    camera, key = live
    playlist = node.playlist(camera)
    text = playlist.read_text()
    assert text.startswith("#EXTM3U")
    assert "#EXT-X-TARGETDURATION:1\n" in text
    assert "#EXT-X-ENDLIST" not in text
    names = _segments(playlist)
    assert all(SEGMENT_PATTERN.fullmatch(name) for name in names), names
    for name in names[-3:]:
        segment = playlist.parent / name
        first = _ffprobe(
            "-select_streams", "v:0", "-show_entries", "packet=flags", "-read_intervals", "%+#1",
            "-of", "csv=p=0", str(segment),
        )  # fmt: skip
        assert first.strip().startswith("K"), f"{name} starts on {first!r}"
        duration = float(_ffprobe("-show_entries", "format=duration", "-of", "csv=p=0", str(segment)))
        assert 0.5 < duration < 1.6
    streams = json.loads(
        _ffprobe("-show_entries", "stream=codec_name,width,height", "-of", "json", str(playlist))
    )
    assert sorted(s["codec_name"] for s in streams["streams"]) == ["aac", "h264"]
    assert {(s.get("width"), s.get("height")) for s in streams["streams"]} >= {(640, 360)}
    assert node.camera_state(camera) == "live"
    assert key not in node.log.read_text()


def test_a_crashed_packager_is_restarted_and_the_stream_goes_on(
    node: MediaNode, live: tuple[uuid.UUID, str]
) -> None:
    camera, _ = live
    (crashed,) = packager_pids(camera)
    last = _segments(node.playlist(camera))[-1]
    os.kill(crashed, signal.SIGKILL)
    node.wait(lambda: packager_pids(camera) and packager_pids(camera) != [crashed], "a new packager")
    node.wait(lambda: _segments(node.playlist(camera))[-1] > last, "new segments after the restart")
    text = node.playlist(camera).read_text()
    assert "#EXT-X-ENDLIST" not in text
    numbers = [int(name[4:-3]) for name in _segments(node.playlist(camera))]
    assert numbers == sorted(numbers)  # numbering continues, no segment name reused
    newest = node.playlist(camera).parent / _segments(node.playlist(camera))[-1]
    first = _ffprobe(
        "-select_streams", "v:0", "-show_entries", "packet=flags", "-read_intervals", "%+#1",
        "-of", "csv=p=0", str(newest),
    )  # fmt: skip
    assert first.strip().startswith("K")
    assert any('"service_child_restarting"' in line for line in node.log.read_text().splitlines())


def test_a_wrong_key_is_refused_and_nothing_is_stored(node: MediaNode, tmp_path: Path) -> None:
    camera = node.new_camera()
    before = sorted(p.name for p in (node.media_dir / "hls").iterdir())
    wrong = "psk_" + "A" * 43
    with publishing(node.rtmp_url(wrong), tmp_path / "ffmpeg.log") as publisher:
        node.wait(lambda: publisher.poll() is not None, "the publisher is turned away")
    assert publisher.returncode != 0
    assert sorted(p.name for p in (node.media_dir / "hls").iterdir()) == before
    assert not node.hls_dir(camera).exists()
    refusals = node.log_events("publish_refused")
    assert any('"reason":"unknown_or_revoked_key"' in line for line in refusals)
    assert wrong not in node.log.read_text()


def test_a_revoked_key_is_refused_and_drops_its_live_publisher(node: MediaNode, tmp_path: Path) -> None:
    camera = node.new_camera()
    key_id, key = node.new_key(camera)
    with publishing(node.rtmp_url(key), tmp_path / "first.log") as publisher:
        node.wait(lambda: _segments(node.playlist(camera)), "the stream is live")
        assert node.camera_state(camera) == "live"
        node.revoke(camera, key_id)
        node.wait(lambda: publisher.poll() is not None, "the publisher is dropped")
    node.wait(lambda: "#EXT-X-ENDLIST" in node.playlist(camera).read_text(), "the playlist is ended")
    assert node.camera_state(camera) == "offline"
    assert any(str(camera) in line and "key_revoked" in line for line in node.log_events("publisher_dropped"))

    ended = node.playlist(camera).read_text()
    with publishing(node.rtmp_url(key), tmp_path / "again.log") as again:
        node.wait(lambda: again.poll() is not None, "the revoked key is turned away")
    assert again.returncode != 0
    assert node.playlist(camera).read_text() == ended

    # A key revoked before it was ever used stores nothing at all.
    fresh = node.new_camera()
    fresh_key_id, fresh_key = node.new_key(fresh)
    node.revoke(fresh, fresh_key_id)
    with publishing(node.rtmp_url(fresh_key), tmp_path / "fresh.log") as refused:
        node.wait(lambda: refused.poll() is not None, "the revoked key is turned away")
    assert not node.hls_dir(fresh).exists()
    text = node.log.read_text()
    assert key not in text
    assert fresh_key not in text


def _talk(port: int, data: bytes, *, close_write: bool = False) -> bytes:
    """Send `data`, then read until the server closes the connection; what it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def test_garbage_on_the_rtmp_port_is_closed_with_a_log_line(
    node: MediaNode, live: tuple[uuid.UUID, str]
) -> None:
    port = node.rtmp_port
    assert _talk(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert _talk(port, b"\x03" + b"\x00" * 100, close_write=True) == b""
    assert _talk(port, b"") == b""  # says nothing: closed after the handshake timeout
    bad_chunks = handshake.client_packets() + b"\x00" * handshake.PACKET_SIZE + b"\x43" + b"\x00" * 20
    answer = _talk(port, bad_chunks)
    assert len(answer) == 1 + 2 * handshake.PACKET_SIZE  # the handshake, then the door
    oversized = chunks.ChunkWriter().encode(chunks.control(chunks.SET_CHUNK_SIZE, 0x7FFFFFFF))
    _talk(port, handshake.client_packets() + b"\x00" * handshake.PACKET_SIZE + oversized)

    node.wait(lambda: len(node.log_events("rtmp_rejected")) >= 5, "five rejections logged")
    reasons = {json.loads(line)["reason"] for line in node.log_events("rtmp_rejected")}
    assert reasons >= {"bad_handshake", "truncated_handshake", "handshake_timeout", "bad_chunk_stream"}

    # The server and the live stream are unharmed.
    camera, _ = live
    before = _segments(node.playlist(camera))[-1]
    node.wait(lambda: _segments(node.playlist(camera))[-1] != before, "the live stream goes on")
    services = httpx.get(f"{node.base_url}/readyz", timeout=10).json()["services"]
    assert services["streams.ingest"]["status"] == "running"
    assert services["streams.ingest"]["restarts"] == 0


def test_the_key_is_nowhere_the_node_writes(node: MediaNode, live: tuple[uuid.UUID, str]) -> None:
    camera, key = live
    secret = key[len("psk_") :]
    for path in node.media_dir.rglob("*"):
        assert secret not in str(path)
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in node.log.read_text()
    argvs = child_argvs(node.pid)
    assert any("unix:" in argv and camera.hex in argv for argv in argvs), argvs  # the packager runs
    for argv in argvs:
        assert secret not in argv
    assert str(camera) in node.playlist(camera).as_posix()


def test_the_probe_measures_glass_to_glass_latency(node: MediaNode) -> None:
    """`pentad streams probe`: a stamped test picture published to a camera, read back over WHEP and HLS."""
    camera = node.new_camera("unlisted")
    _, key = node.new_key(camera)
    result = subprocess.run(
        [
            str(VENV_BIN / "pentad"), "streams", "probe", str(camera), "--base-url", node.base_url,
            "--rtmp-url", f"rtmp://127.0.0.1:{node.rtmp_port}/live", "--seconds", "3",
            "--ice-address", "127.0.0.1",
        ],
        env={**node.env, "PENTAD_STREAMS_PROBE_KEY": key}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"webrtc: \d+ decoded frames p50=[\d.]+ms p95=[\d.]+ms p99=[\d.]+ms", lines[0]), lines
    assert re.fullmatch(r"hls: \d+ segments \(listed after their last frame\) p50=[\d.]+ms .*", lines[1]), (
        lines
    )
    assert key not in result.stdout + result.stderr
