"""Live HLS of one stream: an ffmpeg child fed FLV from the relay, passthrough (no re-encode), segments cut
on keyframes.

On-disk layout (what the media routes serve; the stream key is in no path, only the camera's public id):

    <MEDIA_DIR>/hls/<camera id>/index.m3u8        the live media playlist (EXT-X-ENDLIST once ended)
    <MEDIA_DIR>/hls/<camera id>/seg_000042.ts     MPEG-TS segments, sequence numbered (SEGMENT_PATTERN)

MEDIA_DIR is PENTAD_STREAMS__MEDIA_DIR, by default `<data dir>/streams` (`media_root`). A camera's folder
is emptied when its stream starts and left as it is (ended playlist) when the stream stops. Files appear by
rename, so a reader never sees half a segment or half a playlist. The playlist keeps HLS_LIST_SIZE
segments; older ones are deleted a little later (hls_delete_threshold), so a player that just read the
playlist still finds them.

The child is a supervised process of the service (`context.processes`, key `hls:<camera id>`): restarted
with backoff when it dies, its stderr logged, killed with the stream and with Pentad (PDEATHSIG, its own
process group). It reads FLV from a unix socket this module listens on in a private (0700) folder: each
run of ffmpeg connects once and is sent the FLV header, the codec configuration and the current GOP, then
the live frames, so a restarted ffmpeg resumes at a keyframe and continues the segment numbering
(append_list). The socket is used, not stdin, because the core's children have no stdin pipe."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Protocol

import structlog

from pentad.apps.streams.media import flv, ladder
from pentad.apps.streams.media.ladder import LADDER
from pentad.apps.streams.media.relay import StreamRelay, Subscription
from pentad.apps.streams.settings import StreamsSettings

HLS_FOLDER = "hls"
PLAYLIST_NAME = "index.m3u8"
SEGMENT_TEMPLATE = "seg_%06d.ts"
SEGMENT_PATTERN = re.compile(r"seg_[0-9]{6,10}\.ts")
"""Names of live segments (six digits, more after a million segments)."""
CHILD_PREFIX = "hls:"
HLS_FLAGS = "independent_segments+delete_segments+temp_file+append_list+program_date_time"

logger = structlog.get_logger("pentad.streams.packager")


def media_root(settings: StreamsSettings, data_dir: Path) -> Path:
    """MEDIA_DIR: where live HLS (and later temporary files, nginx's prefix) go."""
    return Path(settings.media_dir) if settings.media_dir else Path(data_dir) / "streams"


def hls_dir(root: Path, camera_id: uuid.UUID) -> Path:
    """The folder of a camera's live HLS (playlist and segments)."""
    return root / HLS_FOLDER / str(camera_id)


def playlist_path(root: Path, camera_id: uuid.UUID) -> Path:
    return hls_dir(root, camera_id) / PLAYLIST_NAME


def hls_argv(settings: StreamsSettings, source: str, out_dir: Path) -> list[str]:
    """ffmpeg reading FLV from `source` and writing passthrough HLS into `out_dir`."""
    return [
        settings.ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-f",
        "flv",
        "-i",
        source,
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        f"{settings.hls_segment_seconds:g}",
        "-hls_list_size",
        str(settings.hls_list_size),
        "-hls_delete_threshold",
        "2",
        "-hls_flags",
        HLS_FLAGS,
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        str(out_dir / SEGMENT_TEMPLATE),
        str(out_dir / PLAYLIST_NAME),
    ]


class Processes(Protocol):
    """What the packager needs of the service's ProcessSupervisor (core/services.py)."""

    async def start(self, key: str, command: Any, *, restart: bool = ...) -> Any: ...

    async def stop(self, key: str) -> int | None: ...


class HlsPackager:
    """The HLS of one live stream, from `start()` to `stop()`."""

    def __init__(
        self,
        relay: StreamRelay,
        *,
        settings: StreamsSettings,
        root: Path,
        socket_dir: Path,
        processes: Processes,
        profile: str = "passthrough",
    ) -> None:
        self.relay = relay
        self.settings = settings
        self.ladder = profile == LADDER
        self.out_dir = hls_dir(root, relay.camera_id)
        self.socket_path = socket_dir / f"{relay.camera_id.hex}.sock"
        self.processes = processes
        self.child_key = f"{CHILD_PREFIX}{relay.camera_id}"
        self.connections = 0
        self.log = logger.bind(camera_id=str(relay.camera_id))
        self._server: asyncio.Server | None = None
        self._feeding: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._launching: asyncio.Task[None] | None = None

    @property
    def recorded_dir(self) -> Path:
        """The folder whose media playlist the recorder follows: a ladder's highest rendition."""
        return self.out_dir / ladder.rungs(self.settings)[0].name if self.ladder else self.out_dir

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._server = await asyncio.start_unix_server(self._connected, path=str(self.socket_path))
        self.socket_path.chmod(0o600)
        if self.ladder:
            # Its rendition map names the audio only when there is some: started once the tracks are known.
            self._launching = asyncio.create_task(self._launch_ladder())
            return
        argv = hls_argv(self.settings, f"unix:{self.socket_path}", self.out_dir)
        try:
            await self.processes.start(self.child_key, argv, restart=True)
        except BaseException:
            await self._close_server()
            raise
        self.log.info("hls_packager_started", folder=str(self.out_dir))

    async def _launch_ladder(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.keyframe_timeout):
                await self.relay.described.wait()
        if self.relay.closed:
            return
        source = f"unix:{self.socket_path}"
        argv = ladder.ladder_argv(self.settings, source, self.out_dir, audio=self.relay.has_audio)
        try:
            await self.processes.start(self.child_key, argv, restart=True)
        except Exception as exc:
            self.log.error("hls_packager_failed", profile=LADDER, error=str(exc))
            return
        self.log.info("hls_packager_started", folder=str(self.out_dir), profile=LADDER)

    def _prepare(self) -> None:
        shutil.rmtree(self.out_dir, ignore_errors=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def stop(self) -> None:
        """Ends the FLV feed (ffmpeg writes the last segment and EXT-X-ENDLIST), then stops the child."""
        if self._launching is not None:
            self._launching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._launching
        await self._close_server()
        for task in list(self._feeding):
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2):
                    await asyncio.shield(task)
        for task in list(self._feeding):
            task.cancel()
        await self.processes.stop(self.child_key)
        self.log.info("hls_packager_stopped")

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A restarted ffmpeg replaces the previous run's feed.
        for old in list(self._writers):
            old.close()
        self._writers.add(writer)
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._feeding.add(task)
        subscription: Subscription | None = None
        try:
            # The FLV header says which tracks come: ffmpeg waits (probing for up to 5 s) for a track it
            # announces, so it is written once the stream's metadata or first keyframe tells.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.keyframe_timeout):
                    await self.relay.described.wait()
            subscription = self.relay.subscribe()
            writer.write(flv.file_header(audio=self.relay.has_audio, video=self.relay.has_video))
            async for frame in subscription:
                writer.write(flv.tag(frame))
                await writer.drain()
            if subscription.lagged:
                self.log.warning("hls_feed_lagged")
        except (ConnectionError, OSError) as exc:
            self.log.info("hls_feed_closed", error=type(exc).__name__)
        finally:
            if subscription is not None:
                subscription.close()
            self._writers.discard(writer)
            if task is not None:
                self._feeding.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
