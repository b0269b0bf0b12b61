"""Snapshots of a live camera (/streams/media/{camera}/snapshot.jpg): a real JPEG of the newest HLS segment,
made by the real ffmpeg once per camera per SNAPSHOT_MAX_AGE (single flight), the media routes' access
rules, offline cameras and ffmpeg failures. The HLS is real (ffmpeg packages the synthetic camera, as in
test_media_endpoints); ffmpeg runs through a wrapper script that counts its runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pentad.apps.streams.actions.publish import authorize_publish, end_session, start_session
from pentad.apps.streams.media.images import (
    SnapshotFailed,
    SnapshotRequest,
    latest_snapshot,
    newest_segment,
    run_ffmpeg,
    snapshot_argv,
    snapshot_path,
)
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media_endpoints import camera_hls_dir
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.config import Settings
from pentad.core.platform import Platform
from tests.apps.streams.support import (
    FFMPEG,
    make_camera,
    make_hls,
    make_key,
    needs_ffmpeg,
    playlist_uris,
    probe_streams,
    rows,
    snapshot,
)
from tests.conftest import make_settings
from tests.factories import Account

pytestmark = needs_ffmpeg

JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of the synthetic camera (320x180) as HLS (1-s segments), made once for the module."""
    directory = tmp_path_factory.mktemp("hls")
    make_hls(directory, seconds=3.0)
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of the counting ffmpeg: one line (its arguments) per run."""
    return tmp_path_factory.mktemp("ffmpeg") / "runs.log"


@pytest.fixture(scope="module")
def counting_ffmpeg(runs: Path) -> Path:
    """An ffmpeg that notes each run in `runs`, then is the real one."""
    script = runs.parent / "ffmpeg"
    script.write_text(f'#!/bin/sh\necho "$*" >> {runs}\nexec {FFMPEG} "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def settings(tmp_path: Path, database_url: str, counting_ffmpeg: Path) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["streams"],
        ratelimit={"enabled": False},
        streams={"ffmpeg": str(counting_ffmpeg), "snapshot_max_age": 60},
    )


def ffmpeg_runs(runs: Path, camera_id: str) -> list[str]:
    """The ffmpeg runs that read this camera's HLS."""
    if not runs.exists():
        return []
    return [line for line in runs.read_text().splitlines() if f"/hls/{camera_id}/" in line]


async def live_camera(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path | None, **fields: Any
) -> tuple[str, uuid.UUID]:
    """A camera with a live session and (unless `sample` is None) the sample's HLS where the media plane
    writes it."""
    camera = await make_camera(client, owner, **fields)
    key = await make_key(client, owner, camera["id"])
    grant = await authorize_publish(platform, key["key"])
    assert grant is not None
    session_id = await start_session(platform, grant, engine="builtin")
    hls = camera_hls_dir(platform, uuid.UUID(camera["id"]))
    if sample is None:
        hls.mkdir(parents=True, exist_ok=True)
    else:
        shutil.copytree(sample, hls)
    return camera["id"], session_id


def kept_snapshot(platform: Platform, camera_id: str) -> Path:
    settings = platform.app_settings(StreamsSettings)
    return snapshot_path(media_root(settings, platform.data_dir), uuid.UUID(camera_id))


# ------------------------------------------------------------------ a real JPEG, made once per max age


@pytest.mark.one_engine
async def test_a_snapshot_is_a_jpeg_of_the_newest_segment_made_once_per_max_age(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, runs: Path, tmp_path: Path
) -> None:
    camera_id, _ = await live_camera(client, platform, owner, sample, visibility="public")
    newest = playlist_uris((sample / "index.m3u8").read_text())[-1]

    first = await client.get(
        f"/streams/media/{camera_id}/snapshot.jpg", headers={"Origin": "https://x.example"}
    )
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/jpeg"
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["access-control-allow-origin"] == "*"
    assert first.content.startswith(JPEG_MAGIC)
    saved = tmp_path / "snapshot.jpg"
    saved.write_bytes(first.content)
    picture = probe_streams(str(saved))["video"]
    assert picture["codec_name"] == "mjpeg"
    assert (picture["width"], picture["height"]) == (320, 180)
    made = ffmpeg_runs(runs, camera_id)
    assert len(made) == 1
    assert made[0].split(" -i ", 1)[1].split(" ", 1)[0].endswith(f"/hls/{camera_id}/{newest}")

    # Within the max age: the kept picture, no ffmpeg.
    again = await client.get(f"/streams/media/{camera_id}/snapshot.jpg")
    assert again.status_code == 200
    assert again.content == first.content
    assert len(ffmpeg_runs(runs, camera_id)) == 1

    # Once it is older than the max age, the next request takes a new one.
    kept = kept_snapshot(platform, camera_id)
    assert kept.read_bytes() == first.content
    old = kept.stat().st_mtime - 120
    os.utime(kept, (old, old))
    renewed = await client.get(f"/streams/media/{camera_id}/snapshot.jpg")
    assert renewed.status_code == 200
    assert renewed.content.startswith(JPEG_MAGIC)
    assert len(ffmpeg_runs(runs, camera_id)) == 2


async def test_a_grid_of_concurrent_viewers_costs_one_ffmpeg_run_per_camera(
    tmp_path: Path, sample: Path, runs: Path, counting_ffmpeg: Path
) -> None:
    # Straight on the cache (the test database takes one request at a time): 3 cameras x 6 viewers.
    cameras = [uuid.uuid4() for _ in range(3)]
    for camera_id in cameras:
        shutil.copytree(sample, tmp_path / "hls" / str(camera_id))
    requests = [
        SnapshotRequest(
            camera_id=camera_id,
            hls=tmp_path / "hls" / str(camera_id),
            target=snapshot_path(tmp_path, camera_id),
            since=0.0,
            ffmpeg=str(counting_ffmpeg),
            max_age=60.0,
        )
        for camera_id in cameras
    ]
    viewers = [asyncio.ensure_future(latest_snapshot(request)) for request in requests for _ in range(6)]
    viewers[0].cancel()  # a viewer who leaves does not cancel the run the others wait for
    pictures = await asyncio.gather(*viewers[1:])
    assert all(picture.startswith(JPEG_MAGIC) for picture in pictures)
    for camera_id in cameras:
        assert len(ffmpeg_runs(runs, str(camera_id))) == 1, camera_id
        assert snapshot_path(tmp_path, camera_id).read_bytes() in pictures


async def test_a_picture_that_cannot_be_kept_is_still_served(
    tmp_path: Path, sample: Path, runs: Path, counting_ffmpeg: Path
) -> None:
    camera_id = uuid.uuid4()
    blocked = tmp_path / "media"
    blocked.write_text("a file where the snapshots folder would be")  # mkdir fails, as on a full disk
    request = SnapshotRequest(
        camera_id=camera_id,
        hls=sample,
        target=snapshot_path(blocked, camera_id),
        since=0.0,
        ffmpeg=str(counting_ffmpeg),
        max_age=60.0,
    )
    assert (await latest_snapshot(request)).startswith(JPEG_MAGIC)
    assert not request.target.exists()


@pytest.mark.one_engine
async def test_a_picture_of_an_earlier_stream_is_not_shown_for_the_next_one(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, runs: Path
) -> None:
    camera_id, session_id = await live_camera(client, platform, owner, sample, visibility="public")
    assert (await client.get(f"/streams/media/{camera_id}/snapshot.jpg")).status_code == 200
    assert await end_session(platform, session_id, "publisher_left")
    key = await make_key(client, owner, camera_id)
    grant = await authorize_publish(platform, key["key"])
    assert grant is not None
    again = await start_session(platform, grant, engine="builtin")
    started = next(row for row in await rows(platform, "streams_sessions") if row["id"] == again)[
        "started_at"
    ]
    # Well within the max age, but taken before this stream began.
    kept = kept_snapshot(platform, camera_id)
    before = started.timestamp() - 5
    os.utime(kept, (before, before))
    assert (await client.get(f"/streams/media/{camera_id}/snapshot.jpg")).status_code == 200
    assert len(ffmpeg_runs(runs, camera_id)) == 2


# ------------------------------------------------------------------ who may see it


async def test_a_private_snapshot_needs_a_token_of_that_camera(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, runs: Path
) -> None:
    a_id, _ = await live_camera(client, platform, owner, sample, name="A")
    b_id, _ = await live_camera(client, platform, owner, sample, name="B")
    b_token = (
        await client.post(f"/api/streams/cameras/{b_id}/playback-token", headers=owner.headers)
    ).json()["token"]
    refusals = {
        None: (401, "playback_token_required"),
        b_token: (403, "playback_token_scope"),
        "psp_garbage": (401, "playback_token_invalid"),
    }
    before = await snapshot(platform)
    for bad, (status, code) in refusals.items():
        params = {} if bad is None else {"token": bad}
        # The owner's API key opens the API, not the media routes: they take only the token.
        refused = await client.get(
            f"/streams/media/{a_id}/snapshot.jpg", params=params, headers=owner.headers
        )
        assert refused.status_code == status, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == code
        assert not refused.content.startswith(JPEG_MAGIC)
    assert await snapshot(platform) == before
    assert ffmpeg_runs(runs, a_id) == []
    assert not kept_snapshot(platform, a_id).exists()
    assert (await client.get(f"/streams/media/{uuid.uuid4()}/snapshot.jpg")).status_code == 404


@pytest.mark.one_engine
async def test_a_private_snapshot_is_served_with_its_token_and_kept_out_of_shared_caches(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path
) -> None:
    camera_id, _ = await live_camera(client, platform, owner, sample)
    token = (
        await client.post(f"/api/streams/cameras/{camera_id}/playback-token", headers=owner.headers)
    ).json()["token"]
    served = await client.get(f"/streams/media/{camera_id}/snapshot.jpg", params={"token": token})
    assert served.status_code == 200, served.text
    assert served.headers["cache-control"] == "private, no-cache"
    assert served.content.startswith(JPEG_MAGIC)


async def test_an_offline_camera_has_no_snapshot(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, runs: Path
) -> None:
    never = await make_camera(client, owner, visibility="public")
    offline = await client.get(f"/streams/media/{never['id']}/snapshot.jpg")
    assert offline.status_code == 404
    assert offline.json()["code"] == "stream_offline"

    # A stream that ended: its files may linger, no picture of it is made or served.
    camera_id, session_id = await live_camera(client, platform, owner, sample, visibility="public")
    assert await end_session(platform, session_id, "publisher_left")
    ended = await client.get(f"/streams/media/{camera_id}/snapshot.jpg")
    assert ended.status_code == 404
    assert ended.json()["code"] == "stream_offline"
    assert ffmpeg_runs(runs, camera_id) == []


# ------------------------------------------------------------------ when no picture can be made


@pytest.mark.one_engine
async def test_a_broken_segment_is_a_503_problem_and_the_camera_keeps_playing(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path, runs: Path
) -> None:
    camera_id, _ = await live_camera(client, platform, owner, sample, visibility="public")
    hls = camera_hls_dir(platform, uuid.UUID(camera_id))
    newest = playlist_uris((hls / "index.m3u8").read_text())[-1]
    (hls / newest).write_bytes(b"\x00garbage, not MPEG-TS" * 100)

    failed = await client.get(f"/streams/media/{camera_id}/snapshot.jpg")
    assert failed.status_code == 503, failed.text
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["code"] == "snapshot_failed"
    assert failed.headers["retry-after"] == "1"
    assert len(ffmpeg_runs(runs, camera_id)) == 1
    assert not kept_snapshot(platform, camera_id).exists()
    # Within the max age the failure is repeated without another ffmpeg run.
    repeated = await client.get(f"/streams/media/{camera_id}/snapshot.jpg")
    assert repeated.status_code == 503
    assert len(ffmpeg_runs(runs, camera_id)) == 1
    # Nothing else suffered: the stream plays, other cameras get pictures.
    assert (await client.get(f"/streams/media/{camera_id}/index.m3u8")).status_code == 200
    other_id, _ = await live_camera(client, platform, owner, sample, visibility="public")
    assert (await client.get(f"/streams/media/{other_id}/snapshot.jpg")).status_code == 200

    # A stream that has listed no segment yet: not ready, and ffmpeg is not run.
    fresh_id, _ = await live_camera(client, platform, owner, None, visibility="public")
    early = await client.get(f"/streams/media/{fresh_id}/snapshot.jpg")
    assert early.status_code == 503
    assert early.json()["code"] == "snapshot_not_ready"
    assert ffmpeg_runs(runs, fresh_id) == []


async def test_ffmpeg_that_is_missing_or_hangs_is_a_clear_error_and_leaves_no_process(
    tmp_path: Path, sample: Path
) -> None:
    segment = newest_segment(sample)
    assert segment is not None
    with pytest.raises(SnapshotFailed) as missing:
        await run_ffmpeg(snapshot_argv(str(tmp_path / "no-ffmpeg"), segment), 5.0)
    assert missing.value.status == 503
    assert missing.value.code == "snapshot_failed"

    pid_file = tmp_path / "pid"
    hanging = tmp_path / "hanging-ffmpeg"
    hanging.write_text(f"#!/bin/sh\necho $$ > {pid_file}.new\nmv {pid_file}.new {pid_file}\nexec sleep 600\n")
    hanging.chmod(0o755)
    with pytest.raises(SnapshotFailed) as slow:
        await run_ffmpeg(snapshot_argv(str(hanging), segment), 2.0)
    assert slow.value.code == "snapshot_timeout"
    if pid_file.exists():  # (on a very busy machine it may be killed before it wrote its pid)
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed and reaped, not a zombie


def test_a_ladder_snapshot_comes_from_its_best_rendition(tmp_path: Path, sample: Path) -> None:
    shutil.copytree(sample, tmp_path / "720p")
    shutil.copytree(sample, tmp_path / "360p")
    (tmp_path / "index.m3u8").write_text(
        "#EXTM3U\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\n360p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720\n720p/index.m3u8\n"
    )
    newest = playlist_uris((sample / "index.m3u8").read_text())[-1]
    assert newest_segment(tmp_path) == (tmp_path / "720p" / newest).resolve()
    # A playlist naming something outside the folder yields nothing.
    (tmp_path / "720p" / "index.m3u8").write_text("#EXTM3U\n#EXTINF:1.0,\n../../secret.ts\n")
    assert newest_segment(tmp_path) is None
