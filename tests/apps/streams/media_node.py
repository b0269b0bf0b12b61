"""A real `pentad serve` running the streams media plane for end-to-end tests (built-in engine), and real
ffmpeg publishers. Shared by the ingest and orphan tests; every process started here is stopped in
`finally`."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentad.apps.streams.media.packager import hls_dir, playlist_path
from tests.databases import REQUIRE_SERVICES
from tests.factories import free_port
from tests.servers import HOST, VENV_BIN, log_tail, running
from tests.test_cli import pentad_here

WAIT_SECONDS = 30.0
OWNER = "owner@example.com"
PASSWORD = "a long operator password"
KEY_LINE = re.compile(r"key:\s+(psk_[A-Za-z0-9_-]{43})$", re.MULTILINE)
KEY_ID = re.compile(r"Stream key ([0-9a-f-]{36})")
CAMERA_ID = re.compile(r"\(([0-9a-f-]{36})\)")


def require_ffmpeg() -> None:
    """Skip (fail in CI) when ffmpeg is not installed: `apt-get install ffmpeg`."""
    missing = [name for name in ("ffmpeg", "ffprobe") if shutil.which(name) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install ffmpeg)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


NGINX = "/usr/sbin/nginx"
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def require_nginx() -> None:
    """Skip (fail in CI) without nginx and libnginx-mod-rtmp: `apt-get install nginx libnginx-mod-rtmp`."""
    if not (Path(NGINX).exists() and Path(NGINX_RTMP_MODULE).exists()):
        message = "nginx or libnginx-mod-rtmp is not installed (apt-get install nginx libnginx-mod-rtmp)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def node_env(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    data = root / "data"
    env.update(
        PENTAD_DATA_DIR=str(data),
        PENTAD_DATABASE__URL=f"sqlite+aiosqlite:///{data}/pentad.db",
        PENTAD_APPS="streams",
        PENTAD_LOG__LEVEL="INFO",
        PENTAD_ADMIN__PASSWORD=PASSWORD,
        PENTAD_STREAMS__RTMP_PORT=str(free_port()),
        PENTAD_STREAMS__MEDIA_DIR=str(root / "media"),
        PENTAD_STREAMS__HANDSHAKE_TIMEOUT="1",
        # WebRTC on loopback only (the latency probe's viewer; aioice leaves 127.0.0.1 out by default).
        PENTAD_STREAMS__WEBRTC__HOST_ADDRESSES="127.0.0.1",
        PENTAD_STREAMS__WEBRTC__ALLOWED_PEER_NETWORKS="127.0.0.0/8",
    )
    return env


@dataclass
class MediaNode:
    env: dict[str, str]
    log: Path
    http_port: int
    pid: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def rtmp_port(self) -> int:
        return int(self.env["PENTAD_STREAMS__RTMP_PORT"])

    @property
    def media_dir(self) -> Path:
        return Path(self.env["PENTAD_STREAMS__MEDIA_DIR"])

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://{HOST}:{self.rtmp_port}/live/{key}"

    def cli(self, *args: str) -> str:
        return pentad_here(self.env, *args).stdout

    def prepare(self) -> None:
        Path(self.env["PENTAD_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.cli("migrate")
        self.cli("user", "create", "--email", OWNER, "--password", PASSWORD)

    def new_camera(self, visibility: str = "public") -> uuid.UUID:
        made = self.cli("streams", "cameras", "create", "Cam", "--owner", OWNER, "--visibility", visibility)
        found = CAMERA_ID.search(made)
        assert found, made
        return uuid.UUID(found.group(1))

    def new_key(self, camera: uuid.UUID) -> tuple[str, str]:
        """(key id, key)"""
        made = self.cli("streams", "keys", "create", str(camera))
        key, key_id = KEY_LINE.search(made), KEY_ID.search(made)
        assert key, made
        assert key_id, made
        return key_id.group(1), key.group(1)

    def revoke(self, camera: uuid.UUID, key_id: str) -> None:
        self.cli("streams", "keys", "revoke", str(camera), key_id)

    def camera_state(self, camera: uuid.UUID) -> str:
        for line in self.cli("streams", "cameras", "list").splitlines():
            if line.startswith(str(camera)):
                return line.split("\t")[3]
        raise AssertionError(f"camera {camera} not listed")

    def hls_dir(self, camera: uuid.UUID) -> Path:
        return hls_dir(self.media_dir, camera)

    def playlist(self, camera: uuid.UUID) -> Path:
        return playlist_path(self.media_dir, camera)

    def wait(self, check: Callable[[], object], what: str, timeout: float = WAIT_SECONDS) -> None:
        """Poll `check` until truthy; fail with the server's log tail after `timeout`."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"never happened: {what}\n{log_tail(self.log, 30)}")
            time.sleep(0.2)

    @contextlib.contextmanager
    def serving(self) -> Iterator[subprocess.Popen[bytes]]:
        """`pentad serve` on this node's ports until the block ends; the RTMP server listening."""
        command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(self.http_port)]
        with running(
            [*command, "--workers", "1"], f"{self.base_url}/healthz", self.log, env=self.env
        ) as server:
            self.wait(lambda: self.log_events("rtmp_listening"), "the RTMP server listens")
            yield server

    def log_events(self, event: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if f'"{event}"' in line]


def publisher_argv(url: str, seconds: int = 120) -> list[str]:
    """A synthetic camera: 640x360 30 fps test pattern with a tone, H.264 GOP 30 + AAC, paced in real time."""
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
    ]  # fmt: skip


@contextlib.contextmanager
def publishing(url: str, log: Path, seconds: int = 120) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            publisher_argv(url, seconds), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def packager_pids(camera: uuid.UUID) -> list[int]:
    """Running ffmpeg packagers of a camera (they read FLV from the media plane's socket for it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(arg.startswith(b"unix:") and camera.hex.encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


def child_argvs(parent: int) -> list[str]:
    """The command lines of every process below `parent`."""
    children: dict[int, list[int]] = {}
    argvs: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argvs[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [parent]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(argvs[child])
            todo.append(child)
    return found
