"""RTSP pull: IP cameras (source `rtsp`) pulled by a supervised ffmpeg into the same pipeline as published
streams (relay -> HLS packager), with reconnects and exponential backoff.

One RtspPuller per camera, run by RtspPulls, which follows the cameras the control plane lists (every
PULL_POLL_SECONDS: a new camera starts, a changed URL restarts, a deleted one stops). A puller's loop:

    relay = StreamRelay; FlvFeed(socket) -> relay.push
    ffmpeg -f concat <private list naming the URL> -c copy -f flv unix:<socket>     (child `rtsp:<camera id>`)
    first video keyframe within CONNECT_TIMEOUT + READ_TIMEOUT -> host.open_pulled(...) (session, packager)
    ffmpeg exits (the camera went silent for READ_TIMEOUT, refused, closed) -> the stream closes
    wait BACKOFF_BASE * 2^failures (capped at BACKOFF_MAX, jittered) and try again; a pull that delivered
    media resets the count. Each failure is a `rtsp_unreachable` warning (attempt, next delay) and a
    `camera.unreachable` event on the camera's topic (the same figures).

The URL holds the camera's credentials: it is decrypted by the control plane only to be written into a
0600 file in the media plane's private folder (never on a command line, which every local user can read
in /proc), and ffmpeg's messages are logged through `redact` (URL credentials masked)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import structlog

from pentad.apps.streams.media.engines.base import Drop, Publication
from pentad.apps.streams.media.feed import FlvFeed
from pentad.apps.streams.media.packager import Processes
from pentad.apps.streams.media.relay import StreamRelay
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.netguard import DestinationNotAllowed, resolve_host

CHILD_PREFIX = "rtsp:"
ENGINE = "rtsp"
PULL_POLL_SECONDS = 5.0

logger = structlog.get_logger("pentad.streams.rtsp")


@dataclass(frozen=True)
class PullSource:
    """A camera to pull: its id, its URL (with credentials: never log it) and transport."""

    camera_id: uuid.UUID
    url: str
    transport: str = "tcp"
    profile: str = "passthrough"
    allow_private: bool = False
    """A streams admin saved the URL while private addresses were allowed (RTSP__ALLOW_PRIVATE)."""

    def __repr__(self) -> str:  # keep the URL out of any accidental repr
        return f"PullSource({self.camera_id}, transport={self.transport}, profile={self.profile})"


class PullHost(Protocol):
    root: Path
    socket_dir: Path
    processes: Processes

    async def open_pulled(
        self,
        camera_id: uuid.UUID,
        relay: StreamRelay,
        *,
        engine: str,
        peer: str,
        drop: Drop,
        profile: str = "passthrough",
    ) -> Publication | None: ...

    async def close_stream(self, publication: Publication, reason: str) -> None: ...

    async def pull_unreachable(self, camera_id: uuid.UUID, *, attempt: int, retry_in: float) -> None: ...


def _quote(url: str) -> str:
    """A URL as one ffconcat token (single-quoted; a quote itself written '\\'')."""
    return "'" + url.replace("'", "'\\''") + "'"


ANY_ADDRESS = ("0.0.0.0/0", "::/0")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


async def pinned_url(source: PullSource, settings: StreamsSettings) -> str:
    """The camera's URL with its host resolved now, checked, and replaced by the address ffmpeg is to
    connect to (so a second lookup cannot answer something else). The address must be public, unless a
    streams admin saved the URL while RTSP__ALLOW_PRIVATE allowed private ones (and it still does).
    DestinationNotAllowed when it is not (or does not resolve)."""
    parts = urlsplit(source.url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 554)
    private = source.allow_private and settings.rtsp.allow_private
    address = (await resolve_host(host, port, ANY_ADDRESS if private else ()))[0]
    user, at, _ = parts.netloc.rpartition("@")
    pinned = f"[{address}]" if ":" in address else address
    netloc = f"{user}{at}{pinned}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def concat_list(source: PullSource, settings: StreamsSettings, url: str | None = None) -> str:
    """The ffconcat file naming the camera's URL (or `url`, the pinned one) and its RTSP options.
    ValueError for anything but an rtsp(s):// URL of printable characters (the API checks it too; this
    list must name nothing else)."""
    url = source.url if url is None else url
    if not url.lower().startswith(("rtsp://", "rtsps://")) or not url.isprintable():
        raise ValueError("not an rtsp:// URL")
    if source.transport not in ("tcp", "udp"):
        raise ValueError("unknown RTSP transport")
    rtsp = settings.rtsp
    return (
        "ffconcat version 1.0\n"
        f"file {_quote(url)}\n"
        f"option rtsp_transport {source.transport}\n"
        f"option timeout {int(rtsp.read_timeout * 1_000_000)}\n"
    )


def pull_argv(settings: StreamsSettings, list_path: Path, target: str) -> list[str]:
    return [
        settings.ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-f",
        "concat",
        "-safe",
        "0",
        "-protocol_whitelist",
        "file,rtsp,rtp,tcp,udp,tls,srtp",
        "-i",
        str(list_path),
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-flvflags",
        "no_duration_filesize",
        "-f",
        "flv",
        target,
    ]


def backoff(settings: StreamsSettings, failures: int) -> float:
    """The wait before the next try after `failures` failures in a row (jittered by up to 20 %)."""
    rtsp = settings.rtsp
    delay = min(rtsp.backoff_max, rtsp.backoff_base * 2 ** max(failures - 1, 0))
    return float(delay * (0.8 + 0.2 * random.random()))


class RtspPuller:
    def __init__(self, source: PullSource, *, settings: StreamsSettings, host: PullHost) -> None:
        self.source = source
        self.settings = settings
        self.host = host
        self.key = f"{CHILD_PREFIX}{source.camera_id}"
        self.failures = 0
        self.connected = asyncio.Event()
        self.log = logger.bind(camera_id=str(source.camera_id))
        self._list_path = host.socket_dir / f"{source.camera_id.hex}.ffconcat"
        self._socket_path = host.socket_dir / f"{source.camera_id.hex}.rtsp.sock"

    def _write_list(self, url: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._list_path.unlink()
        descriptor = os.open(self._list_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(concat_list(self.source, self.settings, url))

    async def run(self) -> None:
        """Pull until cancelled."""
        try:
            concat_list(self.source, self.settings)
        except ValueError as exc:
            self.log.error("rtsp_url_invalid", error=str(exc))
            return
        try:
            while True:
                delivered = await self._attempt()
                if delivered:
                    self.failures = 0
                self.failures += 1
                delay = backoff(self.settings, self.failures)
                if not delivered:
                    self.log.warning("rtsp_unreachable", attempt=self.failures, retry_in=round(delay, 2))
                    await self.host.pull_unreachable(
                        self.source.camera_id, attempt=self.failures, retry_in=delay
                    )
                else:
                    self.log.info("rtsp_reconnecting", retry_in=round(delay, 2))
                await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._list_path.unlink()

    async def _attempt(self) -> bool:
        """One connection: True when it delivered media (then ended)."""
        try:
            url = await pinned_url(self.source, self.settings)
        except DestinationNotAllowed as exc:
            self.log.warning("rtsp_target_refused", reason=str(exc))
            return False
        await asyncio.to_thread(self._write_list, url)
        relay = StreamRelay(self.source.camera_id)
        feed = FlvFeed(self._socket_path, relay.push, label=str(self.source.camera_id))
        publication: Publication | None = None
        ended = asyncio.Event()

        async def drop(reason: str) -> None:
            ended.set()

        await feed.start()
        try:
            child = await self.host.processes.start(
                self.key, pull_argv(self.settings, self._list_path, feed.url), restart=False
            )
            waiting_exit = asyncio.ensure_future(child.wait())
            waiting_media = asyncio.ensure_future(relay.first_keyframe.wait())
            limit = self.settings.rtsp.connect_timeout + self.settings.rtsp.read_timeout
            try:
                await asyncio.wait(
                    {waiting_exit, waiting_media}, timeout=limit, return_when="FIRST_COMPLETED"
                )
            finally:
                waiting_media.cancel()
            if not relay.first_keyframe.is_set():
                self.log.info("rtsp_no_media", exited=waiting_exit.done())
                return False
            publication = await self.host.open_pulled(
                self.source.camera_id,
                relay,
                engine=ENGINE,
                peer="rtsp",
                drop=drop,
                profile=self.source.profile,
            )
            if publication is None:
                return True  # refused (camera gone, capacity): the host said why
            self.connected.set()
            self.log.info("rtsp_connected", session_id=str(publication.session_id))
            stopped = asyncio.ensure_future(ended.wait())
            await asyncio.wait({waiting_exit, stopped}, return_when="FIRST_COMPLETED")
            stopped.cancel()
            return True
        finally:
            await self.host.processes.stop(self.key)
            relay.close()
            await feed.close()
            if publication is not None:
                await self.host.close_stream(publication, "source_lost")
            self.connected.clear()


class RtspPulls:
    """The pullers of every RTSP camera the control plane lists, kept in step with it."""

    def __init__(
        self,
        settings: StreamsSettings,
        host: PullHost,
        sources: Callable[[], Awaitable[list[PullSource]]],
    ) -> None:
        self.settings = settings
        self.host = host
        self.sources = sources
        self.pullers: dict[uuid.UUID, tuple[PullSource, RtspPuller, asyncio.Task[None]]] = {}

    async def sync(self) -> None:
        wanted = {source.camera_id: source for source in await self.sources()}
        for camera_id, (source, _, task) in list(self.pullers.items()):
            if wanted.get(camera_id) != source:
                await self._stop(camera_id, task)
        for camera_id, source in wanted.items():
            if camera_id not in self.pullers:
                puller = RtspPuller(source, settings=self.settings, host=self.host)
                task = asyncio.create_task(puller.run(), name=f"rtsp pull {camera_id}")
                self.pullers[camera_id] = (source, puller, task)
                logger.info("rtsp_pull_started", camera_id=str(camera_id))

    async def _stop(self, camera_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        self.pullers.pop(camera_id, None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        logger.info("rtsp_pull_stopped", camera_id=str(camera_id))

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.sync()
                except Exception as exc:  # the database may be away for a while
                    logger.warning("rtsp_sync_failed", error=type(exc).__name__)
                await asyncio.sleep(PULL_POLL_SECONDS)
        finally:
            for camera_id, (_, _, task) in list(self.pullers.items()):
                await self._stop(camera_id, task)
