"""Recording over the API, on every database: start/stop on demand and continuous recordings opened and
ended with the stream, the recorder keeping real HLS segments (ffmpeg's synthetic camera) past the live
window, the timeline and segment listing of a range, the VOD playlist of a range (authorised like live
playback) played by ffprobe, MP4 exports as a job with progress on the camera's topic, and retention by
age and by size (rows and files), expiry of exports. Each deny side changes nothing."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pentad.apps.streams.actions import recording
from pentad.apps.streams.actions.publish import authorize_publish, start_session
from pentad.apps.streams.actions.retention import enforce_retention
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media.recorder import CameraRecorder, microseconds, parse_playlist
from pentad.apps.streams.media_endpoints import camera_hls_dir
from pentad.apps.streams.recordings_endpoints import vod_playlist
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.platform import Platform
from tests.apps.chat.sockets import connected
from tests.apps.streams.support import (
    make_camera,
    make_hls,
    make_key,
    needs_ffmpeg,
    playlist_uris,
    probe,
    probe_streams,
    rows,
    share,
    snapshot,
    starts_on_keyframe,
)
from tests.factories import Account, account, run_due_jobs

pytestmark = needs_ffmpeg

SAMPLE_SECONDS = 4.0


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four seconds of the synthetic camera as HLS (1-s segments), made once for the module."""
    directory = tmp_path_factory.mktemp("hls")
    make_hls(directory, seconds=SAMPLE_SECONDS)
    return directory


def _stamp(playlist: str, start: datetime) -> str:
    """The playlist with an EXT-X-PROGRAM-DATE-TIME on its first segment (as the packager writes them)."""
    out, stamped = [], False
    for line in playlist.splitlines():
        if line.startswith("#EXTINF") and not stamped:
            out.append(f"#EXT-X-PROGRAM-DATE-TIME:{start.isoformat(timespec='milliseconds')}")
            stamped = True
        out.append(line)
    return "\n".join(out) + "\n"


async def _record(
    platform: Platform, camera_id: str, recording_id: uuid.UUID, sample: Path, start: datetime
) -> list[Any]:
    """The sample as the camera's live HLS starting at `start`, kept by the real recorder and indexed;
    then the live folder is removed (the live window trimmed): the recording must not need it."""
    camera = uuid.UUID(camera_id)
    live = camera_hls_dir(platform, camera)
    shutil.rmtree(live, ignore_errors=True)
    shutil.copytree(sample, live)
    (live / "index.m3u8").write_text(_stamp((sample / "index.m3u8").read_text(), start))
    root = media_root(platform.app_settings(StreamsSettings), platform.data_dir)
    kept = CameraRecorder(camera, live, root).collect(recording_id)
    await recording.store_segments(platform, camera, kept)
    shutil.rmtree(live)
    return kept


async def _on_demand(client: httpx.AsyncClient, who: Account, camera_id: str) -> dict[str, Any]:
    started = await client.put(f"/api/streams/cameras/{camera_id}/recording", headers=who.headers)
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    return body


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


# ------------------------------------------------------------------ units


@pytest.mark.one_engine
def test_the_playlist_parser_reads_durations_and_wall_clock_starts() -> None:
    text = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-05T07:10:00.500+0000\n#EXTINF:1.001,\nseg_000007.ts\n"
        "#EXTINF:0.999,\nseg_000008.ts\n#EXTINF:1.0,\nnot-ours.ts\n#EXT-X-ENDLIST\n"
    )
    found = parse_playlist(text)
    assert [(s.name, s.sequence, s.duration) for s in found] == [
        ("seg_000007.ts", 7, 1.001),
        ("seg_000008.ts", 8, 0.999),
    ]
    assert found[0].start == datetime(2026, 12, 5, 7, 10, 0, 500_000, tzinfo=UTC)
    assert found[1].start == datetime(2026, 12, 5, 7, 10, 1, 501_000, tzinfo=UTC)


# ------------------------------------------------------------------ start, stop, continuous


async def test_operators_start_and_stop_recording_and_others_may_not(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account, hub: None
) -> None:
    camera = await make_camera(client, owner)
    viewer = await account(platform)
    operator = await account(platform)
    await share(client, owner, camera["id"], viewer, "viewer")
    await share(client, owner, camera["id"], operator, "operator")
    url = f"/api/streams/cameras/{camera['id']}/recording"

    before = await snapshot(platform)
    denied = [
        await client.put(url, headers=viewer.headers),
        await client.put(url, headers=stranger.headers),
        await client.delete(url, headers=viewer.headers),
        await client.put(url),
        await client.put("/api/streams/cameras/not-a-uuid/recording", headers=owner.headers),
    ]
    assert [(r.status_code, r.json()["code"]) for r in denied[:3]] == [
        (403, "camera_permission"),
        (404, "camera_not_found"),
        (403, "camera_permission"),
    ]
    assert denied[3].status_code == 401
    assert denied[4].status_code == 422
    assert denied[4].headers["content-type"].startswith("application/problem+json")
    assert await snapshot(platform) == before

    token = owner.headers["Authorization"].removeprefix("Bearer ")
    async with connected(app, token) as socket:
        assert (await socket.request("subscribe", topic=f"streams.camera.{camera['id']}"))["ok"]
        first = await _on_demand(client, operator, camera["id"])
        assert first["mode"] == "on_demand"
        assert first["ended_at"] is None
        again = await _on_demand(client, owner, camera["id"])
        assert again["id"] == first["id"]  # already recording: nothing new
        started = await socket.event(f"streams.camera.{camera['id']}")
        assert started["data"] == {
            "type": "recording.started", "camera_id": camera["id"], "recording_id": first["id"],
            "mode": "on_demand", "reason": None,
        }  # fmt: skip
        assert (await client.delete(url, headers=operator.headers)).status_code == 204
        stopped = await socket.event(f"streams.camera.{camera['id']}")
        assert stopped["data"]["type"] == "recording.stopped"
        assert stopped["data"]["reason"] == "stopped"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204  # idempotent
    listed = await client.get(f"/api/streams/cameras/{camera['id']}/recordings", headers=viewer.headers)
    assert listed.status_code == 200
    (found,) = listed.json()["recordings"]
    assert (found["id"], found["stop_reason"]) == (first["id"], "stopped")
    audits = [r["action"] for r in await rows(platform, "audit_events")]
    assert audits.count("streams.recording.start") == 1
    assert audits.count("streams.recording.stop") == 1


async def test_a_continuous_camera_records_while_live_and_stops_with_its_stream(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner, recording_mode="continuous")
    quiet = await make_camera(client, owner)
    ids = [uuid.UUID(camera["id"]), uuid.UUID(quiet["id"])]
    sessions = []
    for made in (camera, quiet):
        grant = await authorize_publish(platform, (await make_key(client, owner, made["id"]))["key"])
        assert grant is not None
        sessions.append(await start_session(platform, grant, engine="builtin"))
    live = dict(zip(ids, sessions, strict=True))

    current = await recording.reconcile_recordings(platform, live)
    assert list(current) == [ids[0]]  # the camera that records; the other is off
    assert await recording.reconcile_recordings(platform, live) == current  # stable: nothing new
    (row,) = [r for r in await rows(platform, "streams_recordings") if r["camera_id"] == ids[0]]
    assert (row["mode"], row["session_id"], row["ended_at"]) == ("continuous", sessions[0], None)

    # Its mode changed while live: the continuous recording ends.
    changed = await client.patch(
        f"/api/streams/cameras/{camera['id']}", json={"recording_mode": "off"}, headers=owner.headers
    )
    assert changed.status_code == 200
    assert await recording.reconcile_recordings(platform, live) == {}
    back = await client.patch(
        f"/api/streams/cameras/{camera['id']}", json={"recording_mode": "continuous"}, headers=owner.headers
    )
    assert back.status_code == 200
    reopened = await recording.reconcile_recordings(platform, live)
    assert reopened[ids[0]] != current[ids[0]]
    await recording.end_stream_recordings(platform, ids[0], sessions[0])
    recorded = sorted(
        (r["stop_reason"] for r in await rows(platform, "streams_recordings") if r["camera_id"] == ids[0]),
        key=str,
    )
    assert recorded == ["mode_changed", "stream_ended"]


# ------------------------------------------------------------------ timeline, VOD, exports


async def test_recorded_segments_outlive_the_live_window_and_play_back_by_range(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account, sample: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    camera = await make_camera(client, owner)
    other = await make_camera(client, owner, name="other")
    started = await _on_demand(client, owner, camera["id"])
    kept = await _record(platform, camera["id"], uuid.UUID(started["id"]), sample, T0)
    assert len(kept) == 4
    size = sum(s.size_bytes for s in kept)

    span = f"start={_iso(T0 - timedelta(minutes=1))}&end={_iso(T0 + timedelta(minutes=1))}"
    timeline = await client.get(
        f"/api/streams/cameras/{camera['id']}/recordings?{span}", headers=owner.headers
    )
    assert timeline.status_code == 200, timeline.text
    body = timeline.json()
    (one,) = body["spans"]
    assert one["segments"] == 4
    assert one["bytes"] == size == body["stored_bytes"]
    assert datetime.fromisoformat(one["start"]) == T0
    assert 3.5 < (datetime.fromisoformat(one["end"]) - T0).total_seconds() < 4.5
    listed = await client.get(f"/api/streams/cameras/{camera['id']}/segments?{span}", headers=owner.headers)
    assert [s["size_bytes"] for s in listed.json()] == [s.size_bytes for s in kept]
    later = f"start={_iso(T0 + timedelta(seconds=2, milliseconds=500))}&end={_iso(T0 + timedelta(hours=1))}"
    assert len((await client.get(f"/api/streams/cameras/{camera['id']}/segments?{later}",
                                 headers=owner.headers)).json()) == 2  # fmt: skip

    # Bad ranges and strangers: 4xx problems.
    for query, code in (
        (f"start={_iso(T0)}&end={_iso(T0)}", "range_invalid"),
        (f"start={_iso(T0)}&end={_iso(T0 + timedelta(days=2))}", "range_invalid"),
    ):
        bad = await client.get(
            f"/api/streams/cameras/{camera['id']}/recordings?{query}", headers=owner.headers
        )
        assert (bad.status_code, bad.json()["code"]) == (400, code)
    garbled = await client.get(f"/api/streams/cameras/{camera['id']}/recordings?start=yesterday",
                               headers=owner.headers)  # fmt: skip
    assert garbled.status_code == 422
    hidden = await client.get(f"/api/streams/cameras/{camera['id']}/recordings", headers=stranger.headers)
    assert (hidden.status_code, hidden.json()["code"]) == (404, "camera_not_found")

    # VOD of the range: private camera, so a playback token of this camera is needed.
    vod = f"/streams/recordings/{camera['id']}/vod.m3u8?{span}"
    none = await client.get(vod)
    assert (none.status_code, none.json()["code"]) == (401, "playback_token_required")
    theirs = (
        await client.post(f"/api/streams/cameras/{other['id']}/playback-token", headers=owner.headers)
    ).json()
    scoped = await client.get(f"{vod}&token={theirs['token']}")
    assert (scoped.status_code, scoped.json()["code"]) == (403, "playback_token_scope")
    tampered = await client.get(f"{vod}&token=psp_garbage")
    assert (tampered.status_code, tampered.json()["code"]) == (401, "playback_token_invalid")
    token = (
        await client.post(f"/api/streams/cameras/{camera['id']}/playback-token", headers=owner.headers)
    ).json()
    played = await client.get(f"{vod}&token={token['token']}")
    assert played.status_code == 200, played.text
    assert played.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert played.headers["cache-control"] == "no-cache"
    text = played.text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    uris = playlist_uris(text)
    assert len(uris) == 4
    assert all(uri.endswith(f"token={token['token']}") for uri in uris)

    # The segments, fetched as a player would, play as a whole in ffprobe (H.264 + AAC, ~4 s).
    local = tmp_path / "vod"
    local.mkdir()
    lines = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            segment = await client.get(f"/streams/recordings/{camera['id']}/{line}")
            assert segment.status_code == 200
            assert segment.headers["cache-control"] == "private, max-age=31536000, immutable"
            name = line.split("?")[0]
            (local / name).write_bytes(segment.content)
            assert starts_on_keyframe(local / name)
            line = name
        lines.append(line)
    (local / "vod.m3u8").write_text("\n".join(lines) + "\n")
    streams = probe_streams(str(local / "vod.m3u8"))
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    duration = float(probe(str(local / "vod.m3u8"), "-show_entries", "format=duration")["format"]["duration"])
    assert 3.5 < duration < 4.6

    # A segment is served under its own camera only; without the token it is refused.
    first_id = uris[0].split(".")[0]
    elsewhere = await client.get(f"/streams/recordings/{other['id']}/{first_id}.ts?token={theirs['token']}")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "segment_not_found")
    bare = await client.get(f"/streams/recordings/{camera['id']}/{first_id}.ts")
    assert (bare.status_code, bare.json()["code"]) == (401, "playback_token_required")
    empty = await client.get(
        f"/streams/recordings/{camera['id']}/vod.m3u8?start={_iso(T0 + timedelta(hours=1))}"
        f"&end={_iso(T0 + timedelta(hours=2))}&token={token['token']}"
    )
    assert (empty.status_code, empty.json()["code"]) == (404, "range_empty")


async def test_an_export_is_a_job_with_progress_on_the_camera_topic_and_a_downloadable_mp4(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account,
    sample: Path, tmp_path: Path, hub: None,
) -> None:  # fmt: skip
    camera = await make_camera(client, owner, visibility="public")
    viewer = await account(platform)
    await share(client, owner, camera["id"], viewer, "viewer")
    started = await _on_demand(client, owner, camera["id"])
    await _record(platform, camera["id"], uuid.UUID(started["id"]), sample, T0)
    url = f"/api/streams/cameras/{camera['id']}/exports"
    body = {"start": _iso(T0), "end": _iso(T0 + timedelta(seconds=3))}

    before = await snapshot(platform)
    refused = [
        (await client.post(url, json=body, headers=viewer.headers)),
        (await client.post(url, json=body, headers=stranger.headers)),
        (await client.post(url, json={"start": body["end"], "end": body["start"]}, headers=owner.headers)),
        (await client.post(url, json={"start": _iso(T0), "end": _iso(T0 + timedelta(hours=2))},
                           headers=owner.headers)),
        (await client.post(url, json={"start": _iso(T0 - timedelta(hours=1)),
                                      "end": _iso(T0 - timedelta(minutes=1))}, headers=owner.headers)),
        (await client.post(url, json={"start": "noon"}, headers=owner.headers)),
    ]  # fmt: skip
    assert [(r.status_code, r.json().get("code")) for r in refused[:5]] == [
        (403, "camera_permission"),
        (403, "camera_permission"),  # a public camera: strangers see it, but may not export
        (400, "range_invalid"),
        (400, "range_invalid"),
        (404, "range_empty"),
    ]
    assert refused[5].status_code == 422
    assert await snapshot(platform) == before

    token = owner.headers["Authorization"].removeprefix("Bearer ")
    topic = f"streams.camera.{camera['id']}"
    async with connected(app, token) as socket:
        assert (await socket.request("subscribe", topic=topic))["ok"]
        made = await client.post(url, json=body, headers=owner.headers)
        assert made.status_code == 202, made.text
        export = made.json()
        assert (export["status"], export["download_url"]) == ("queued", None)
        not_yet = await client.get(f"/api/streams/exports/{export['id']}/file", headers=owner.headers)
        assert (not_yet.status_code, not_yet.json()["code"]) == (409, "export_not_ready")
        await run_due_jobs(platform)
        statuses: list[str] = []
        while not statuses or statuses[-1] not in ("done", "failed"):
            frame = await socket.event(topic)
            if frame["data"]["type"] == "export.progress":
                assert frame["data"]["export_id"] == export["id"]
                statuses.append(frame["data"]["status"])
        assert statuses[0] == "queued"
        assert "running" in statuses
        assert statuses[-1] == "done"
        assert frame["data"]["progress"] == 1.0
        assert frame["data"]["size_bytes"] > 0

    done = (await client.get(f"/api/streams/exports/{export['id']}", headers=owner.headers)).json()
    assert done["status"] == "done"
    assert done["download_url"] == f"/api/streams/exports/{export['id']}/file"
    assert (await client.get(url, headers=owner.headers)).json()[0]["id"] == export["id"]
    for who in (viewer, stranger):
        denied = await client.get(done["download_url"], headers=who.headers)
        assert (denied.status_code, denied.json()["code"]) == (404, "export_not_found")
    downloaded = await client.get(done["download_url"], headers=owner.headers)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "video/mp4"
    assert "attachment" in downloaded.headers["content-disposition"]
    target = tmp_path / "export.mp4"
    target.write_bytes(downloaded.content)
    streams = probe_streams(str(target))
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    duration = float(probe(str(target), "-show_entries", "format=duration")["format"]["duration"])
    assert 2.5 < duration < 4.6  # whole segments: from the one holding the start to the one holding the end

    # Past its time the export's file goes (the retention job), and it says so.
    async with platform.database.transaction() as session:
        from pentad.apps.streams.models import StreamsExport

        row = await session.get(StreamsExport, uuid.UUID(export["id"]))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    pruned = await enforce_retention(platform)
    assert pruned.exports == 1
    gone = await client.get(done["download_url"], headers=owner.headers)
    assert (gone.status_code, gone.json()["code"]) == (409, "export_not_ready")
    root = media_root(platform.app_settings(StreamsSettings), platform.data_dir)
    assert not list((root / "exports").iterdir())


# ------------------------------------------------------------------ retention


async def test_retention_by_age_and_by_size_deletes_rows_and_files(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path
) -> None:
    root = media_root(platform.app_settings(StreamsSettings), platform.data_dir)
    aged = await make_camera(client, owner, name="aged")
    sized = await make_camera(client, owner, name="sized")
    keep = await make_camera(client, owner, name="kept")
    now = datetime.now(UTC).replace(microsecond=0)

    for made in (aged, sized, keep):
        started = await _on_demand(client, owner, made["id"])
        await client.delete(f"/api/streams/cameras/{made['id']}/recording", headers=owner.headers)
        old = now - timedelta(days=3)
        await _record(platform, made["id"], uuid.UUID(started["id"]), sample, old)
        await _record(platform, made["id"], uuid.UUID(started["id"]), sample, now - timedelta(minutes=5))

    def files(camera: dict[str, Any]) -> list[Path]:
        return sorted((root / "recordings" / camera["id"]).rglob("*.ts"))

    assert [len(files(c)) for c in (aged, sized, keep)] == [8, 8, 8]
    segments = [r for r in await rows(platform, "streams_segments") if str(r["camera_id"]) == sized["id"]]
    newest_four = sum(r["size_bytes"] for r in sorted(segments, key=lambda r: r["start_us"])[4:])
    last_two = sum(r["size_bytes"] for r in sorted(segments, key=lambda r: r["start_us"])[6:])

    bad = await client.patch(f"/api/streams/cameras/{aged['id']}", json={"retention_days": 0},
                             headers=owner.headers)  # fmt: skip
    assert bad.status_code == 422
    for made, change in ((aged, {"retention_days": 2}), (sized, {"retention_bytes": last_two + 1})):
        changed = await client.patch(f"/api/streams/cameras/{made['id']}", json=change, headers=owner.headers)
        assert changed.status_code == 200, changed.text

    pruned = await enforce_retention(platform)
    assert pruned.segments == 4 + 6
    assert [len(files(c)) for c in (aged, sized, keep)] == [4, 2, 8]
    left = {
        camera["id"]: sorted(r["start_us"] for r in await rows(platform, "streams_segments")
                             if str(r["camera_id"]) == camera["id"])
        for camera in (aged, sized)
    }  # fmt: skip
    cutoff = microseconds(now - timedelta(days=2))
    assert all(start > cutoff for start in left[aged["id"]])
    cameras = {str(r["id"]): r for r in await rows(platform, "streams_cameras")}
    assert cameras[sized["id"]]["stored_bytes"] == last_two <= last_two + 1
    assert cameras[aged["id"]]["stored_bytes"] == newest_four
    # Nothing more to do: a second pass deletes nothing.
    assert (await enforce_retention(platform)).segments == 0


@pytest.mark.one_engine
def test_a_vod_playlist_marks_gaps_and_other_recordings_as_discontinuities() -> None:
    from pentad.apps.streams.models import StreamsSegment

    first, second = uuid.uuid4(), uuid.uuid4()

    def seg(number: int, start_s: float, recording_id: uuid.UUID) -> StreamsSegment:
        return StreamsSegment(id=number, camera_id=uuid.uuid4(), recording_id=recording_id,
                              start_at=T0, start_us=microseconds(T0) + int(start_s * 1e6), duration_ms=1000,
                              size_bytes=1, storage_key="x")  # fmt: skip

    text = vod_playlist([seg(1, 0, first), seg(2, 1, first), seg(3, 5, first), seg(4, 6, second)])
    assert text.count("#EXT-X-DISCONTINUITY") == 2
    assert text.count("#EXT-X-PROGRAM-DATE-TIME") == 3
    assert "#EXT-X-TARGETDURATION:1" in text


async def test_an_export_whose_files_are_gone_fails_and_says_so(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path
) -> None:
    camera = await make_camera(client, owner)
    started = await _on_demand(client, owner, camera["id"])
    kept = await _record(platform, camera["id"], uuid.UUID(started["id"]), sample, T0)
    body = {"start": _iso(T0), "end": _iso(T0 + timedelta(seconds=2))}
    made = await client.post(f"/api/streams/cameras/{camera['id']}/exports", json=body, headers=owner.headers)
    assert made.status_code == 202, made.text
    root = media_root(platform.app_settings(StreamsSettings), platform.data_dir)
    for segment in kept:
        (root / segment.storage_key).unlink()
    await run_due_jobs(platform)
    failed = (await client.get(f"/api/streams/exports/{made.json()['id']}", headers=owner.headers)).json()
    assert (failed["status"], failed["download_url"]) == ("failed", None)
    download = await client.get(f"/api/streams/exports/{made.json()['id']}/file", headers=owner.headers)
    assert (download.status_code, download.json()["code"]) == (409, "export_not_ready")


async def test_the_timeline_merges_adjacent_segments_into_spans_and_splits_at_gaps(
    client: httpx.AsyncClient, platform: Platform, owner: Account, sample: Path
) -> None:
    camera = await make_camera(client, owner)
    started = uuid.UUID((await _on_demand(client, owner, camera["id"]))["id"])
    first = await _record(platform, camera["id"], started, sample, T0)
    ends = T0 + timedelta(milliseconds=sum(s.duration_ms for s in first))
    await _record(platform, camera["id"], started, sample, ends)  # follows on: one span
    await _record(platform, camera["id"], started, sample, T0 + timedelta(seconds=30))  # after a gap
    query = f"start={_iso(T0 + timedelta(seconds=2))}&end={_iso(T0 + timedelta(minutes=1))}"
    found = await client.get(f"/api/streams/cameras/{camera['id']}/recordings?{query}", headers=owner.headers)
    spans = found.json()["spans"]
    # The first span starts with the segment holding the range's start (T0 + 2 s), not before.
    assert [s["segments"] for s in spans] == [6, 4]
    assert datetime.fromisoformat(spans[0]["start"]) == T0 + timedelta(seconds=2)
    assert datetime.fromisoformat(spans[1]["start"]) == T0 + timedelta(seconds=30)
    assert spans[0]["bytes"] == sum(s.size_bytes for s in first[2:]) + sum(s.size_bytes for s in first)
