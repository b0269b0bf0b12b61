"""`pentad streams …`: cameras and their stream keys, as an operator (every camera, as the system); `probe`
measures glass-to-glass latency through a running server (media/latency_probe.py)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import click
import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams.actions import cameras, exports, keys, recording
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.media.latency_probe import (
    hls_availability,
    percentile,
    segment_names,
    stamped_camera,
    whep_latencies,
)
from pentad.apps.streams.media.webrtc.ice import use_host_addresses
from pentad.apps.streams.schemas import CameraCreate, ExportCreate, ExportRead
from pentad.apps.streams.spec import APP
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.cli_support import run_in_transaction
from pentad.core.errors import AppError
from pentad.core.platform import Platform

T = TypeVar("T")


def _run(work: Callable[[StreamsContext], Awaitable[T]]) -> T:
    async def run(session: AsyncSession, platform: Platform) -> T:
        return await work(StreamsContext(session, platform, None, audit.SYSTEM))

    try:
        return run_in_transaction(run, apps=[APP])
    except AppError as exc:
        raise click.ClickException(exc.message) from None


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.ClickException(f"{what} {value!r} is not an id (a UUID).") from None


@click.group(name="streams")
def streams() -> None:
    """Streams cameras and their stream keys."""


@streams.group(name="cameras")
def cameras_group() -> None:
    """Cameras."""


@cameras_group.command("list")
def camera_list() -> None:
    """Every camera: id, visibility, source, live or not, name."""

    async def work(context: StreamsContext) -> list[str]:
        return [
            f"{c.id}\t{c.visibility}\t{c.source}\t{'live' if c.live else 'offline'}\t{c.name}"
            for c in await cameras.list_cameras(context)
        ]

    for line in _run(work):
        click.echo(line)


@cameras_group.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="E-mail of the account that owns the camera.")
@click.option(
    "--visibility", type=click.Choice(["public", "unlisted", "private"]), default="private", show_default=True
)
@click.option(
    "--source",
    type=click.Choice(["rtmp", "whip"]),
    default="rtmp",
    show_default=True,
    help="How media arrives (RTSP cameras, with their credentials, are added through the API).",
)
@click.option(
    "--recording-mode",
    type=click.Choice(["off", "continuous", "on_demand"]),
    default="off",
    show_default=True,
    help="continuous: record whenever it is live; on_demand: when started (`recordings start`).",
)
@click.option(
    "--profile",
    type=click.Choice(["passthrough", "ladder"]),
    default="passthrough",
    show_default=True,
    help="passthrough: HLS of the stream as sent; ladder: renditions of PENTAD_STREAMS__LADDER and a master.",
)
def camera_create(
    name: str, owner: str, visibility: str, source: str, recording_mode: str, profile: str
) -> None:
    """Add a camera; prints its id."""
    fields = {"name": name, "visibility": visibility, "source": source, "recording_mode": recording_mode}
    try:
        data = CameraCreate.model_validate(fields | {"profile": profile})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(f"{first['loc'][0]}: {first['msg']}") from None

    async def work(context: StreamsContext) -> uuid.UUID:
        owner_id = (await AuthService(context.session, context.platform).get_user_by_email(owner)).id
        return (await cameras.do_create_camera(context, data, owner_id)).id

    camera_id = _run(work)
    click.echo(f"Created camera {data.name!r} ({camera_id}), owned by {owner}.")


@cameras_group.command("delete")
@click.argument("camera_id")
def camera_delete(camera_id: str) -> None:
    """Delete a camera: its keys stop working, every role on it goes."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> None:
        await cameras.do_delete_camera(context, found)

    _run(work)
    click.echo(f"Deleted camera {found}.")


@streams.group(name="keys")
def keys_group() -> None:
    """Stream keys (what publishers present)."""


@keys_group.command("create")
@click.argument("camera_id")
@click.option("--name", default="", help="What the key is for (e.g. the encoder).")
def key_create(camera_id: str, name: str) -> None:
    """Make a stream key for a camera; prints it this once (only its hash is stored)."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> tuple[str, str, uuid.UUID]:
        created = await keys.do_create_key(context, found, name)
        return created.key, created.rtmp_url, created.id

    key, url, key_id = _run(work)
    click.echo(f"Stream key {key_id} (shown once, store it now):")
    click.echo(f"  server: {url}")
    click.echo(f"  key:    {key}")


@keys_group.command("list")
@click.argument("camera_id")
def key_list(camera_id: str) -> None:
    """A camera's keys: id, …hint, created, revoked (never the keys themselves)."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> list[str]:
        return [
            f"{k.id}\t…{k.hint}\t{k.created_at:%Y-%m-%d %H:%M}\t"
            + (f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active")
            + (f"\t{k.name}" if k.name else "")
            for k in await keys.list_keys(context, found)
        ]

    for line in _run(work):
        click.echo(line)


@keys_group.command("revoke")
@click.argument("camera_id")
@click.argument("key_id")
def key_revoke(camera_id: str, key_id: str) -> None:
    """Revoke a key: publishers presenting it are refused from now on."""
    camera, key = _uuid(camera_id, "Camera"), _uuid(key_id, "Key")

    async def work(context: StreamsContext) -> None:
        await keys.do_revoke_key(context, camera, key)

    _run(work)
    click.echo(f"Revoked key {key}.")


# ------------------------------------------------------------------ recordings and exports


def _moment(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.ClickException(
            f"{what} {value!r} is not an ISO 8601 time (e.g. 2026-12-05T08:00:00Z)."
        ) from None


@streams.group(name="recordings")
def recordings_group() -> None:
    """Recordings: the timeline of a camera, starting and stopping recording."""


@recordings_group.command("list")
@click.argument("camera_id")
@click.option("--start", help="Start of the range (ISO 8601; no zone: UTC). Default: 24 h before the end.")
@click.option("--end", help="End of the range (ISO 8601; no zone: UTC). Default: now.")
def recordings_list(camera_id: str, start: str | None, end: str | None) -> None:
    """A camera's recordings in a range, then the recorded spans (start, end, segments, bytes)."""
    found = _uuid(camera_id, "Camera")
    begin, finish = _moment(start, "Start"), _moment(end, "End")

    async def work(context: StreamsContext) -> list[str]:
        timeline = await recording.get_timeline(context, found, begin, finish)
        lines = [
            f"recording\t{r.id}\t{r.mode}\t{r.started_at.isoformat()}\t"
            + (f"{r.ended_at.isoformat()}\t{r.stop_reason}" if r.ended_at else "recording")
            for r in timeline.recordings
        ]
        lines += [
            f"span\t{s.start.isoformat()}\t{s.end.isoformat()}\t{s.segments}\t{s.bytes}"
            for s in timeline.spans
        ]
        return lines

    for line in _run(work):
        click.echo(line)


@recordings_group.command("start")
@click.argument("camera_id")
def recordings_start(camera_id: str) -> None:
    """Record the camera (on demand) whenever it is live, until stopped."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> tuple[uuid.UUID, bool]:
        started, new = await recording.do_start_recording(context, found)
        return started.id, new

    recording_id, new = _run(work)
    click.echo(f"{'Started' if new else 'Already recording:'} recording {recording_id}.")


@recordings_group.command("stop")
@click.argument("camera_id")
def recordings_stop(camera_id: str) -> None:
    """Stop every recording of the camera under way."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> int:
        return await recording.do_stop_recording(context, found)

    click.echo(f"Stopped {_run(work)} recording(s).")


@streams.command("export")
@click.argument("camera_id")
@click.option("--start", required=True, help="Start of the range (ISO 8601; no zone: UTC).")
@click.option("--end", required=True, help="End of the range (ISO 8601; no zone: UTC).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the export job to finish.")
@click.option("--timeout", default=600.0, show_default=True, help="Longest wait, seconds.")
def export_command(camera_id: str, start: str, end: str, wait: bool, timeout: float) -> None:  # noqa: FBT001
    """Export a recorded range as an MP4 (a job run by `pentad serve` or `pentad worker`); prints the
    export's id and, once done, the file's path."""
    found = _uuid(camera_id, "Camera")
    try:
        data = ExportCreate.model_validate({"start": _moment(start, "Start"), "end": _moment(end, "End")})
    except ValidationError as exc:
        raise click.ClickException(str(exc.errors()[0]["msg"])) from None

    async def create(context: StreamsContext) -> ExportRead:
        return await exports.do_create_export(context, found, data)

    made = _run(create)
    click.echo(f"Export {made.id} queued (job {made.job_id}).")
    if not wait:
        return

    async def status(context: StreamsContext) -> tuple[ExportRead, str | None]:
        current = await exports.get_export(context, made.id)
        if current.status != "done":
            return current, None
        path, _ = await exports.export_file(context, made.id)
        return current, str(path)

    deadline = time.monotonic() + timeout
    while True:
        current, path = _run(status)
        if current.status == "done":
            click.echo(f"Export {made.id} done: {current.size_bytes} bytes")
            click.echo(f"  file: {path}")
            return
        if current.status in ("failed", "expired"):
            raise click.ClickException(f"Export {made.id} {current.status}.")
        if time.monotonic() > deadline:
            raise click.ClickException(f"Export {made.id} is still {current.status}; is a worker running?")
        time.sleep(0.5)


@streams.command("nginx-config")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the config here (mode 0600: it holds the callbacks' secret). Default: standard output.",
)
@click.option(
    "--managed/--system",
    default=False,
    show_default=True,
    help="--managed: the foreground, single-process form Pentad runs itself (NGINX__MANAGE); "
    "--system: for an nginx run by systemd.",
)
def nginx_config_command(output: str | None, *, managed: bool) -> None:
    """The nginx.conf of the nginx-rtmp ingest engine (ENGINE=nginx): publishers on RTMP_HOST:RTMP_PORT,
    on_publish / on_publish_done / on_update calling Pentad on NGINX__CALLBACK_HOST:CALLBACK_PORT with a
    shared secret; nginx writes no HLS (Pentad packages the stream under the camera's id)."""
    from pathlib import Path

    from pentad.apps.streams.media.engines import nginx_config
    from pentad.apps.streams.media.packager import media_root
    from pentad.apps.streams.settings import StreamsSettings
    from pentad.core.cli_support import build_platform

    platform = build_platform([APP])
    try:
        settings = platform.app_settings(StreamsSettings)
        if settings.nginx.callback_port == 0:
            raise click.ClickException(
                "Set PENTAD_STREAMS__NGINX__CALLBACK_PORT: an nginx of the system calls Pentad on a fixed"
                " port."
            )
        prefix = nginx_config.nginx_prefix(settings, media_root(settings, Path(platform.settings.data_dir)))
        text = nginx_config.render(
            settings,
            prefix=prefix,
            callback_port=settings.nginx.callback_port,
            secret=nginx_config.callback_secret(platform.signing_secret),
            managed=managed,
        )
    finally:
        asyncio.run(platform.close())
    if output is None:
        click.echo(text, nl=False)
        return
    nginx_config.write(Path(output), text)
    click.echo(f"Wrote {output} (nginx -t -p {prefix} -c {output} checks it).", err=True)


@streams.command("probe")
@click.argument("camera_id")
@click.option(
    "--base-url", default="http://127.0.0.1:8000", show_default=True, help="The server's HTTP address."
)
@click.option(
    "--rtmp-url",
    default="rtmp://127.0.0.1:1935/live",
    show_default=True,
    help="The server's RTMP ingest URL.",
)
@click.option(
    "--seconds", default=10.0, show_default=True, type=click.FloatRange(1, 3600), help="Per protocol."
)
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    type=click.Choice(["webrtc", "hls"]),
    default=("webrtc", "hls"),
    show_default=True,
)
@click.option("--ice-address", multiple=True, help="Address(es) the WebRTC viewer offers (e.g. 127.0.0.1).")
@click.option(
    "--ffmpeg", default="ffmpeg", show_default=True, help="The ffmpeg binary that encodes the camera."
)
def probe_command(
    camera_id: str,
    base_url: str,
    rtmp_url: str,
    seconds: float,
    protocols: tuple[str, ...],
    ice_address: tuple[str, ...],
    ffmpeg: str,
) -> None:
    """Measure glass-to-glass latency through a running server: publish a stamped test picture to a camera
    (its stream key from PENTAD_STREAMS_PROBE_KEY, else asked for) and read the frame numbers back over
    WebRTC (WHEP) and HLS. The camera must be public or unlisted."""
    _uuid(camera_id, "Camera")
    key = os.environ.get("PENTAD_STREAMS_PROBE_KEY") or click.prompt("Stream key", hide_input=True)
    if ice_address:
        use_host_addresses(list(ice_address))
    media = f"{base_url.rstrip('/')}/streams"
    playlist = f"{media}/media/{camera_id}/index.m3u8"
    with (
        stamped_camera(f"{rtmp_url.rstrip('/')}/{key}", ffmpeg=ffmpeg) as camera,
        httpx.Client(timeout=10) as client,
    ):

        def read() -> str | None:
            answer = client.get(playlist)
            return answer.text if answer.status_code == 200 else None

        deadline = time.monotonic() + 30
        while len(segment_names(read() or "")) < 2:
            if camera.process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException("The camera did not go live (a wrong key, or no server there?).")
            time.sleep(0.2)
        results: dict[str, list[float]] = {}
        if "webrtc" in protocols:

            async def watch() -> list[float]:
                async with httpx.AsyncClient(timeout=30) as viewer:
                    return await whep_latencies(viewer, f"{media}/whep/{camera_id}", camera, seconds)

            try:
                results["webrtc"] = asyncio.run(watch())
            except (RuntimeError, TimeoutError) as exc:
                raise click.ClickException(f"WebRTC: {exc}") from None
        if "hls" in protocols:
            results["hls"] = hls_availability(
                camera, read, lambda name: client.get(httpx.URL(playlist).join(name)).content, seconds
            )
    for protocol, values in results.items():
        what = "decoded frames" if protocol == "webrtc" else "segments (listed after their last frame)"
        if not values:
            raise click.ClickException(f"{protocol}: nothing measured")
        figures = " ".join(f"p{q}={percentile(values, q):.1f}ms" for q in (50, 95, 99))
        click.echo(f"{protocol}: {len(values)} {what} {figures}")
