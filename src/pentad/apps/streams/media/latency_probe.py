"""Glass-to-glass latency, end to end through a running server: a stamped test camera (media/stamp.py)
publishes over RTMP, and viewers in the same process read the frame numbers back from what they decode.

- `StampedCamera`: frames drawn here, written in real time (FPS) into an ffmpeg encoder (libx264
  ultrafast, zerolatency, a keyframe every FPS frames) that publishes to an RTMP URL, as a camera does; the
  moment each numbered frame is written is its glass time (`sent`).
- `whep_latencies`: an aiortc WHEP viewer of the camera; decode time - glass time per frame, ms.
- `hls_availability`: each segment newly listed in the live playlist (polled every POLL_MS): the time it
  was first listed - the glass time of its last frame, ms.

`pentad streams probe` runs them against a server for a while and prints the percentiles;
bench/streams_latency.py runs them beside a bare ffmpeg RTMP server for a same-run baseline."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import av
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

from pentad.apps.streams.media.stamp import StampWriter, read_luma

WIDTH, HEIGHT, FPS = 640, 360, 30
POLL_MS = 20
WARM_UP_SECONDS = 2.0
"""Frames of the first seconds a viewer decodes are not counted (it starts on a keyframe, catches up)."""


class StampedCamera:
    """Stamped frames written in real time into an ffmpeg encoder publishing to `url`."""

    def __init__(
        self, url: str, *, ffmpeg: str = "ffmpeg", log: IO[bytes] | int = subprocess.DEVNULL
    ) -> None:
        self.writer = StampWriter(WIDTH, HEIGHT)
        self.sent: dict[int, float] = {}
        self.stopped = threading.Event()
        self.process = subprocess.Popen(  # noqa: S603 (the configured ffmpeg, our own arguments)
            [
                ffmpeg, "-hide_banner", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
                "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0", "-b:v", "800k",
                "-f", "flv", url,
            ],
            stdin=subprocess.PIPE, stdout=log, stderr=log,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.process.stdin is not None
        start = time.monotonic()
        number = 0
        while not self.stopped.is_set():
            delay = start + number / FPS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = self.writer.frame(number)
            self.sent[number] = time.monotonic()
            try:
                self.process.stdin.write(frame)
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            number += 1

    def latency(self, number: int | None, now: float) -> float | None:
        """ms from the glass time of frame `number` to `now`; None for no stamp or one never sent."""
        if number is None:
            return None
        sent = self.sent.get(number)
        return None if sent is None else (now - sent) * 1000

    def close(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def stamped_camera(url: str, *, ffmpeg: str = "ffmpeg", log: Path | None = None) -> Iterator[StampedCamera]:
    with contextlib.ExitStack() as stack:
        out: IO[bytes] | int = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        camera = StampedCamera(url, ffmpeg=ffmpeg, log=out)
        stack.callback(camera.close)
        yield camera


async def whep_frames(
    client: httpx.AsyncClient, whep_url: str, camera: StampedCamera
) -> AsyncGenerator[float, None]:
    """Watch `whep_url` (POST an SDP offer, as WHEP says) until the caller stops iterating; the latency of
    every decoded frame after the warm-up, ms. The session is ended (DELETE) afterwards."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    arrived: asyncio.Queue[Any] = asyncio.Queue()
    pc.on("track", arrived.put_nowait)
    try:
        answer = await client.post(
            whep_url, content=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        )
        if answer.status_code != 201:
            raise RuntimeError(f"WHEP refused: {answer.status_code} {answer.text[:200]}")
        await pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        track = await asyncio.wait_for(arrived.get(), 30)
        started: float | None = None
        try:
            while True:
                frame = await asyncio.wait_for(track.recv(), 10)
                now = time.monotonic()
                plane = frame.planes[0]
                latency = camera.latency(read_luma(memoryview(plane), plane.line_size), now)
                if latency is None:
                    continue
                started = started or now
                if now - started > WARM_UP_SECONDS:
                    yield latency
        finally:
            location = answer.headers.get("location")
            if location:
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(location)
    finally:
        await pc.close()


async def whep_latencies(
    client: httpx.AsyncClient, whep_url: str, camera: StampedCamera, seconds: float
) -> list[float]:
    """`whep_frames` for `seconds` after the warm-up."""
    latencies: list[float] = []
    deadline: float | None = None
    frames = whep_frames(client, whep_url, camera)
    try:
        async for latency in frames:
            latencies.append(latency)
            deadline = deadline or time.monotonic() + seconds
            if time.monotonic() > deadline:
                break
    finally:
        await frames.aclose()
    return latencies


def last_frame_number(segment: bytes) -> int | None:
    """The stamp of an MPEG-TS segment's last decodable frame."""
    found = None
    with av.open(io.BytesIO(segment), mode="r", format="mpegts") as container:
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            number = read_luma(memoryview(plane), plane.line_size)
            if number is not None:
                found = number
    return found


def segment_names(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def hls_availability(
    camera: StampedCamera, read: Callable[[], str | None], fetch: Callable[[str], bytes], seconds: float
) -> list[float]:
    """For each segment newly listed within `seconds` (the playlist read every POLL_MS): when it was first
    listed - the glass time of its last frame, ms. Each is fetched when seen and decoded afterwards."""
    known = set(segment_names(read() or ""))
    listed: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = read()
        now = time.monotonic()
        for name in segment_names(text or ""):
            if name not in known:
                known.add(name)
                listed.append((now, fetch(name)))
        time.sleep(POLL_MS / 1000)
    figures = []
    for seen, data in listed:
        latency = camera.latency(last_frame_number(data), seen)
        if latency is not None:
            figures.append(latency)
    return figures


async def hls_segments(
    camera: StampedCamera, read: Callable[[], Awaitable[str | None]], fetch: Callable[[str], Awaitable[bytes]]
) -> AsyncGenerator[float, None]:
    """`hls_availability` without an end, for an event loop: each segment newly listed (the playlist read
    every POLL_MS) is fetched, decoded in a thread, and its latency (listed - glass time of its last frame,
    ms) yielded."""
    known = set(segment_names(await read() or ""))
    while True:
        text = await read()
        now = time.monotonic()
        for name in segment_names(text or ""):
            if name in known:
                continue
            known.add(name)
            number = await asyncio.to_thread(last_frame_number, await fetch(name))
            latency = camera.latency(number, now)
            if latency is not None:
                yield latency
        await asyncio.sleep(POLL_MS / 1000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
