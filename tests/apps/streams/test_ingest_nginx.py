"""End to end on the nginx-rtmp engine: a real `pentad serve` (SQLite, shared by the module) running Debian's
nginx with libnginx-mod-rtmp as its child (private prefix, free ports), real ffmpeg publishers. Publish ->
HLS cut on keyframes, written by Pentad's packager under the camera's id (nginx writes none); a wrong or
revoked key refused before anything is stored; a live publisher dropped by nginx when its key is revoked
(on_update answered 403); the callbacks' deny side over real HTTP; nginx restarted when it dies."""

from __future__ import annotations

import contextlib
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
from tests.apps.streams.media_node import (
    NGINX,
    OWNER,
    PASSWORD,
    MediaNode,
    child_argvs,
    node_env,
    publishing,
    require_ffmpeg,
    require_nginx,
)
from tests.factories import free_port
from tests.servers import HOST, VENV_BIN, running

pytestmark = pytest.mark.slow


class NginxNode(MediaNode):
    @contextlib.contextmanager
    def serving(self) -> Iterator[subprocess.Popen[bytes]]:
        command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(self.http_port)]
        with running(
            [*command, "--workers", "1"], f"{self.base_url}/healthz", self.log, env=self.env
        ) as server:
            self.wait(lambda: self.log_events("nginx_engine_started"), "nginx runs")
            yield server

    @property
    def prefix(self) -> Path:
        return self.media_dir / "nginx"

    def callback(self) -> tuple[str, str]:
        """(the callbacks' base URL, the shared secret), as the config Pentad wrote for nginx says."""
        text = (self.prefix / "nginx.conf").read_text()
        found = re.search(r"on_publish (http://[^/]+)/on_publish\?secret=([A-Za-z0-9_-]+);", text)
        assert found, text
        return found.group(1), found.group(2)

    def nginx_pid(self) -> int | None:
        for argv in child_argvs(self.pid):
            if argv.startswith(NGINX):
                for entry in Path("/proc").iterdir():
                    if entry.name.isdigit():
                        with contextlib.suppress(OSError):
                            if (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode() == argv:
                                return int(entry.name)
        return None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxNode]:
    require_ffmpeg()
    require_nginx()
    root = tmp_path_factory.mktemp("nginx-node")
    env = node_env(root) | {
        "PENTAD_STREAMS__ENGINE": "nginx",
        "PENTAD_STREAMS__NGINX__UPDATE_INTERVAL": "1",
        "PENTAD_STREAMS__RTMP_HOST": "127.0.0.1",
    }
    media = NginxNode(env, root / "serve.log", free_port())
    media.prepare()
    with media.serving() as server:
        media.pid = server.pid
        yield media


@pytest.fixture(scope="module")
def live(node: NginxNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[uuid.UUID, str]]:
    camera = node.new_camera()
    _, key = node.new_key(camera)
    log = tmp_path_factory.mktemp("nginx-publisher") / "ffmpeg.log"
    with publishing(node.rtmp_url(key), log) as publisher:
        node.wait(lambda: len(_segments(node.playlist(camera))) >= 3, "three segments listed")
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


def _first_flags(segment: Path) -> str:
    return _ffprobe(
        "-select_streams", "v:0", "-show_entries", "packet=flags", "-read_intervals", "%+#1",
        "-of", "csv=p=0", str(segment),
    ).strip()  # fmt: skip


def test_a_publisher_through_nginx_becomes_hls_cut_on_keyframes(
    node: NginxNode, live: tuple[uuid.UUID, str]
) -> None:
    camera, key = live
    playlist = node.playlist(camera)
    text = playlist.read_text()
    assert text.startswith("#EXTM3U")
    assert "#EXT-X-TARGETDURATION:1\n" in text
    names = _segments(playlist)
    assert all(SEGMENT_PATTERN.fullmatch(name) for name in names), names
    for name in names[-3:]:
        assert _first_flags(playlist.parent / name).startswith("K"), name
    streams = json.loads(
        _ffprobe("-show_entries", "stream=codec_name,width,height", "-of", "json", str(playlist))
    )
    assert sorted(s["codec_name"] for s in streams["streams"]) == ["aac", "h264"]
    assert node.camera_state(camera) == "live"
    opened = [line for line in node.log_events("stream_opened") if str(camera) in line]
    assert opened
    assert all('"engine":"nginx"' in line for line in opened)
    # nginx itself writes no media: its prefix holds its config, pid and logs only.
    written = {path.name for path in node.prefix.rglob("*") if path.is_file()}
    assert written <= {"nginx.conf", "nginx.pid", "error.log", "rtmp_access.log"}, written
    assert oct((node.prefix / "nginx.conf").stat().st_mode & 0o777) == "0o600"
    # The live stream is played back from nginx under a random name, by loopback alone.
    config = (node.prefix / "nginx.conf").read_text()
    assert "deny play all;" in config
    assert "hls on" not in config
    assert "record off;" in config
    assert key not in node.log.read_text()


def test_a_stream_through_nginx_has_its_health_measured(node: NginxNode, live: tuple[uuid.UUID, str]) -> None:
    """Pentad pulls the stream back from nginx into its relay, so the health meter sees it as on the
    built-in engine (media/health.py)."""
    camera, _ = live
    login = httpx.post(f"{node.base_url}/api/auth/login", json={"email": OWNER, "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def health() -> dict[str, object] | None:
        answer = httpx.get(f"{node.base_url}/api/streams/cameras/{camera}/health", headers=headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, object] | None = answer.json()["health"]
        return found

    node.wait(
        lambda: (figures := health()) is not None and figures["keyframe_interval_s"] is not None, "health"
    )
    figures = health()
    assert figures is not None
    assert figures["engine"] == "nginx"
    assert figures["keyframe_interval_s"] == 1.0  # the synthetic camera: a keyframe every 30 frames at 30 fps
    assert isinstance(figures["bitrate_kbps"], int)
    assert figures["bitrate_kbps"] > 0


def test_nobody_else_can_play_from_nginx(node: NginxNode, live: tuple[uuid.UUID, str]) -> None:
    """Playing a camera straight from nginx (around the playback checks) needs the internal name, which
    changes per stream and is never shown; and a guess from outside loopback would be denied anyway."""
    camera, key = live
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "3000000", "-i", node.rtmp_url(key)],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0  # the key names no stream nginx carries
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "3000000", "-i", node.rtmp_url(str(camera))],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0


def test_a_wrong_key_is_refused_by_nginx_and_nothing_is_stored(node: NginxNode, tmp_path: Path) -> None:
    camera = node.new_camera()
    hls = node.media_dir / "hls"
    before = sorted(p.name for p in hls.iterdir()) if hls.exists() else []
    wrong = "psk_" + "B" * 43
    with publishing(node.rtmp_url(wrong), tmp_path / "ffmpeg.log") as publisher:
        node.wait(lambda: publisher.poll() is not None, "the publisher is turned away")
    assert publisher.returncode != 0
    assert (sorted(p.name for p in hls.iterdir()) if hls.exists() else []) == before
    assert not node.hls_dir(camera).exists()
    refusals = node.log_events("publish_refused")
    assert any('"engine":"nginx"' in line and "unknown_or_revoked_key" in line for line in refusals)
    assert wrong not in node.log.read_text()


def test_a_revoked_key_is_dropped_by_nginx_and_refused_afterwards(node: NginxNode, tmp_path: Path) -> None:
    camera = node.new_camera()
    key_id, key = node.new_key(camera)
    with publishing(node.rtmp_url(key), tmp_path / "first.log") as publisher:
        node.wait(lambda: _segments(node.playlist(camera)), "the stream is live")
        node.revoke(camera, key_id)
        # Pentad ends the stream at once; nginx drops the publisher at its next on_update (403).
        node.wait(lambda: publisher.poll() is not None, "nginx drops the publisher")
    node.wait(lambda: "#EXT-X-ENDLIST" in node.playlist(camera).read_text(), "the playlist is ended")
    assert node.camera_state(camera) == "offline"
    ended = node.playlist(camera).read_text()
    with publishing(node.rtmp_url(key), tmp_path / "again.log") as again:
        node.wait(lambda: again.poll() is not None, "the revoked key is turned away")
    assert again.returncode != 0
    assert node.playlist(camera).read_text() == ended
    assert key not in node.log.read_text()


def _post(url: str, body: bytes | str, **kwargs: object) -> httpx.Response:
    return httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_callbacks_refuse_whoever_lacks_the_secret_and_bad_input(node: NginxNode) -> None:
    base, secret = node.callback()
    camera = node.new_camera()
    _, key = node.new_key(camera)
    publish = f"app=live&flashver=x&addr=127.0.0.1&clientid=901&call=publish&name={key}&type=live"
    # Without the secret, or with another, nothing is answered but 403 (the key is not even checked).
    for query in ("", "?secret=", "?secret=wrong", f"?secret={secret[:-1]}"):
        answer = _post(f"{base}/on_publish{query}", publish)
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "Location" not in answer.headers
    assert not node.hls_dir(camera).exists()
    assert node.camera_state(camera) == "offline"
    good = f"?secret={secret}"
    assert httpx.get(f"{base}/on_publish{good}", timeout=10).status_code == 405
    assert _post(f"{base}/elsewhere{good}", publish).status_code == 404
    bad_bodies: list[bytes | str] = [
        b"\xff\xfe",  # not ASCII
        "app=live&call=publish",  # no name, no client id
        publish.replace("call=publish", "call=play"),  # not what this callback is for
        publish.replace("app=live", "app=other"),  # another application
        publish.replace("clientid=901", "clientid=x"),
        publish + "&name=twice",  # a field given twice
        "not a form",
    ]
    for body in bad_bodies:
        answer = _post(f"{base}/on_publish{good}", body)
        assert answer.status_code == 400, (body, answer.text)
    assert _post(f"{base}/on_publish{good}", "a=" + "x" * 40_000).status_code in (400, 413)
    # Not HTTP at all: the connection is answered 400 and closed.
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert not node.hls_dir(camera).exists()
    # A publisher nginx mentions that Pentad does not know is dropped (403), not adopted.
    update = f"app=live&addr=127.0.0.1&clientid=902&call=update_publish&time=4&name={key}"
    assert _post(f"{base}/on_update{good}", update).status_code == 403
    assert (
        _post(f"{base}/on_publish_done{good}", update.replace("update_publish", "publish_done")).status_code
        == 200
    )
    assert node.camera_state(camera) == "offline"
    assert key not in node.log.read_text()
    refused = node.log_events("nginx_callback_refused")
    assert any('"code":"callback_forbidden"' in line for line in refused)


def test_nginx_is_restarted_when_it_dies(node: NginxNode, tmp_path: Path) -> None:
    camera = node.new_camera()
    _, key = node.new_key(camera)
    pid = node.nginx_pid()
    assert pid is not None, child_argvs(node.pid)
    os.kill(pid, signal.SIGKILL)
    node.wait(lambda: node.nginx_pid() not in (None, pid), "a new nginx")
    node.wait(lambda: _accepts(node.rtmp_port), "the new nginx listens")
    with publishing(node.rtmp_url(key), tmp_path / "after.log") as publisher:
        node.wait(lambda: len(_segments(node.playlist(camera))) >= 2, "a stream through the new nginx")
        assert publisher.poll() is None
    services = httpx.get(f"{node.base_url}/readyz", timeout=10).json()["services"]
    assert services["streams.ingest"]["status"] == "running"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=2).close()
    except OSError:
        return False
    return True


def test_the_cli_writes_a_config_nginx_accepts(node: NginxNode, tmp_path: Path) -> None:
    env = node.env | {"PENTAD_STREAMS__NGINX__CALLBACK_PORT": "18555"}
    target = tmp_path / "nginx.conf"
    result = subprocess.run(
        [str(VENV_BIN / "pentad"), "streams", "nginx-config", "--system", "-o", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    text = target.read_text()
    assert "master_process on;" in text
    assert "on_publish http://127.0.0.1:18555/on_publish?secret=" in text
    # The secret is the running engine's (both derive it from the platform's signing secret).
    assert f"secret={node.callback()[1]};" in text
    (tmp_path / "logs").mkdir()
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(target), "-e", str(tmp_path / "logs" / "t.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_sigkilled_server_leaves_no_nginx_or_ffmpeg_behind(tmp_path: Path) -> None:
    """nginx runs as one process with the parent-death signal: killed with Pentad, it frees the RTMP port,
    and the restarted server's nginx takes it again."""
    require_ffmpeg()
    require_nginx()
    env = node_env(tmp_path) | {"PENTAD_STREAMS__ENGINE": "nginx"}
    node = NginxNode(env, tmp_path / "serve.log", free_port())
    node.prepare()
    camera = node.new_camera()
    _, key = node.new_key(camera)
    orphans: list[int] = []
    try:
        with node.serving() as server, publishing(node.rtmp_url(key), tmp_path / "first.log"):
            node.wait(lambda: len(_segments(node.playlist(camera))) >= 1, "the stream is packaged")
            orphans = _descendants(server.pid)
            names = " ".join(Path(f"/proc/{pid}/comm").read_text().strip() for pid in orphans)
            assert "nginx" in names
            assert names.count("ffmpeg") >= 2  # the pull and the packager
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            node.wait(lambda: all(_gone(pid) for pid in orphans), "nginx and ffmpeg died with the server")
        node.log = tmp_path / "restarted.log"
        with node.serving(), publishing(node.rtmp_url(key), tmp_path / "second.log"):
            node.wait(lambda: node.camera_state(camera) == "live", "live again through a new nginx")
            assert node.log_events("abandoned_sessions_ended")
    finally:
        for pid in orphans:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
