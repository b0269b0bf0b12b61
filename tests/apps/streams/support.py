"""Helpers of the streams tests: accounts with API keys, cameras made over the API, a snapshot of the
streams tables (to show that a refused request changed nothing), and the media harness: a synthetic
camera (ffmpeg's lavfi test picture and a tone) publishing over RTMP or packaged straight into HLS, and
ffprobe checks (streams of a playlist, segments starting on keyframes)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pentad.core.db.base import Base
from pentad.core.platform import Platform
from tests.databases import REQUIRE_SERVICES
from tests.factories import Account


async def make_camera(client: httpx.AsyncClient, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Front door", **fields}
    response = await client.post("/api/streams/cameras", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    camera: dict[str, Any] = response.json()
    return camera


async def share(client: httpx.AsyncClient, owner: Account, camera_id: str, who: Account, role: str) -> None:
    response = await client.post(
        f"/api/streams/cameras/{camera_id}/grants",
        json={"email": who.email, "role": role},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text


async def make_key(client: httpx.AsyncClient, owner: Account, camera_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/streams/cameras/{camera_id}/keys", json={"name": "obs"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


SNAPSHOT_TABLES = sorted(
    name for name in Base.metadata.tables if name.startswith("streams_") or name in ("audit_events", "grants")
)


async def snapshot(platform: Platform) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    async with platform.database.transaction(writes=False) as session:
        for name in SNAPSHOT_TABLES:
            rows = (await session.execute(select(Base.metadata.tables[name]))).all()
            found[name] = sorted(repr(tuple(row)) for row in rows)
    return found


async def rows(platform: Platform, table: str) -> list[dict[str, Any]]:
    async with platform.database.transaction(writes=False) as session:
        result = await session.execute(select(Base.metadata.tables[table]))
        return [dict(row._mapping) for row in result]


# ------------------------------------------------------------------ media: ffmpeg publisher, HLS, ffprobe

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(
    (FFMPEG is None or FFPROBE is None) and not REQUIRE_SERVICES,
    reason="ffmpeg/ffprobe are not installed (apt-get install ffmpeg)",
)
"""Media tests skip without ffmpeg locally; in CI (PENTAD_TEST_REQUIRE_SERVICES=1) they fail instead."""


def _ffmpeg() -> str:
    if FFMPEG is None:
        pytest.fail("ffmpeg is not installed (apt-get install ffmpeg)")
    return FFMPEG


def _ffprobe() -> str:
    if FFPROBE is None:
        pytest.fail("ffprobe is not installed (apt-get install ffmpeg)")
    return FFPROBE


def synthetic_source(*, size: str = "640x360", rate: int = 30, seconds: float | None = None) -> list[str]:
    """ffmpeg input arguments of a synthetic camera: the lavfi test picture (a moving pattern with a
    frame counter) and a 440 Hz tone, read in real time when `seconds` is None (a live camera)."""
    duration = [] if seconds is None else ["-t", str(seconds)]
    realtime = ["-re"] if seconds is None else []
    return [
        *realtime, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
        *realtime, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        *duration,
    ]  # fmt: skip


def camera_encoding(rate: int = 30) -> list[str]:
    """What an encoder set up for HLS sends: H.264 with a keyframe every second (-g = frame rate, no
    scene-cut keyframes), AAC 48 kHz."""
    return [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", str(rate), "-keyint_min", str(rate), "-sc_threshold", "0", "-b:v", "800k",
        "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
    ]  # fmt: skip


def publish_command(url: str, *, size: str = "640x360", rate: int = 30) -> list[str]:
    """A synthetic camera publishing live to an RTMP URL (`rtmp://127.0.0.1:<port>/live/<key>`)."""
    return [
        _ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin",
        *synthetic_source(size=size, rate=rate), *camera_encoding(rate), "-f", "flv", url,
    ]  # fmt: skip


def hls_command(directory: Path, *, seconds: float | None = None, list_size: int = 6) -> list[str]:
    """A synthetic camera packaged straight into live HLS in `directory` (index.m3u8, seg_NNNNNN.ts,
    1-second segments), as the media plane's packager lays it out; finite when `seconds` is given."""
    flags = "independent_segments+temp_file" + ("+delete_segments" if seconds is None else "")
    return [
        _ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        *synthetic_source(size="320x180", seconds=seconds), *camera_encoding(),
        "-f", "hls", "-hls_time", "1", "-hls_list_size", str(0 if seconds is not None else list_size),
        "-hls_flags", flags, "-hls_segment_filename", str(directory / "seg_%06d.ts"),
        str(directory / "index.m3u8"),
    ]  # fmt: skip


def make_hls(directory: Path, seconds: float = 3.0) -> Path:
    """A finished HLS rendition of `seconds` of the synthetic camera in `directory`; its playlist."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(hls_command(directory, seconds=seconds), check=True, capture_output=True, timeout=60)
    return directory / "index.m3u8"


@contextlib.contextmanager
def child(command: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (a publisher, a packager) until the block ends; always stopped and reaped."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 20.0, *, log: Path | None = None
) -> None:
    """Poll `condition` until it holds; fail with `what` (and the log's tail) when it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            pytest.fail(f"{what} did not happen within {timeout:.0f} s\n{tail}")
        time.sleep(0.1)


def probe(target: str, *entries: str) -> dict[str, Any]:
    """ffprobe's JSON of a file or URL (a playlist plays through every segment it names)."""
    result = subprocess.run(
        [_ffprobe(), "-v", "error", "-of", "json", *entries, target],
        check=False, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def probe_streams(target: str) -> dict[str, dict[str, Any]]:
    """The first video and audio stream of a file, a playlist or a URL, by codec type."""
    found = probe(target, "-show_streams")
    streams: dict[str, dict[str, Any]] = {}
    for stream in found.get("streams", []):
        streams.setdefault(stream["codec_type"], stream)
    return streams


def starts_on_keyframe(segment: str | Path) -> bool:
    """Does the segment's first video frame (a file or a URL) carry a keyframe? HLS players switch and
    join on segment boundaries, so every segment must."""
    found = probe(
        str(segment), "-select_streams", "v:0", "-show_entries", "packet=flags", "-read_intervals", "%+#1"
    )
    packets = found.get("packets", [])
    return bool(packets) and "K" in packets[0].get("flags", "")


def playlist_uris(text: str) -> list[str]:
    """The URIs a media or master playlist names (segment or variant lines)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
