"""streams: hls.js end-to-end latency in Chromium, beside the HLS segment availability of the same run.

A stamped camera: this script (on core 0) draws the wall-clock time in milliseconds (mod 2^20) as 20 black
or white 32x32 luma blocks across the top of each 640x360 frame, 30 frames a second, and pipes the frames
to ffmpeg (x264 zerolatency, 1 s GOP), which publishes over RTMP to a real `pentad serve` (built-in engine,
one worker, SQLite) pinned to core 1 (`taskset -c 1`). Everything reads the stamp on the same clock:

- hls.js end to end: headless Chromium (Playwright) plays `/streams/watch/{id}?protocol=hls` (the app's
  player: hls.js, `liveSyncDurationCount: 2`, low-latency mode); each presented frame is drawn on a canvas
  from requestVideoFrameCallback, its blocks sampled at their centres (a frame with a block neither dark
  nor light is rejected) and its stamp taken from `performance.timeOrigin + presentationTime`.
- baseline, HLS segment availability: the playlist polled every 50 ms; when a segment appears, it is
  fetched and decoded (PyAV), and its last frame's stamp taken from the moment the playlist listed it:
  glass (the frame drawn) to the segment being available, before any player.

    .venv/bin/python bench/streams_hlsjs_latency.py        (BENCH_HLSJS_SECONDS=20)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx

from streams_webrtc_fanout import LOAD_CORE, server  # type: ignore[import-not-found]

RESULTS = Path(__file__).parent / "results"
SECONDS = float(os.environ.get("BENCH_HLSJS_SECONDS", "20"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
WIDTH, HEIGHT, FPS = 640, 360, 30
BLOCK, BITS = 32, 20
MODULUS = 1 << BITS
DARK, LIGHT, GREY = 16, 235, 128


def _stamp_row(value: int) -> bytes:
    """One luma row of the stamp: BITS blocks, most significant first."""
    return b"".join(bytes([LIGHT if value >> (BITS - 1 - i) & 1 else DARK]) * BLOCK for i in range(BITS))


def stamper(url: str) -> None:
    """The stamped camera: yuv420p frames of the wall clock to ffmpeg, which publishes to `url`."""
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
         "-tune", "zerolatency", "-g", str(FPS), "-pix_fmt", "yuv420p", "-b:v", "1M", "-f", "flv", url],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert ffmpeg.stdin is not None
    body = bytes([GREY]) * (WIDTH * (HEIGHT - BLOCK))
    chroma = bytes([128]) * (WIDTH * HEIGHT // 2)
    start = time.monotonic()
    frame = 0
    try:
        while True:
            delay = start + frame / FPS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            row = _stamp_row(int(time.time() * 1000) % MODULUS)
            ffmpeg.stdin.write(row * BLOCK + body + chroma)
            frame += 1
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        ffmpeg.terminate()


def _read_stamp(luma: list[int]) -> int | None:
    """The stamp from the BITS block-centre luma values; None when one is neither dark nor light."""
    value = 0
    for level in luma:
        if 70 < level < 180:
            return None
        value = value * 2 + (level >= GREY)
    return value


def _age_ms(stamp: int, now_ms: float) -> float:
    return (int(now_ms) - stamp) % MODULUS + (now_ms % 1)


def _last_stamp(segment: bytes) -> int | None:
    last = None
    with av.open(io.BytesIO(segment), format="mpegts") as container:
        for picture in container.decode(video=0):
            plane = picture.planes[0]
            data = bytes(plane)
            line = plane.line_size
            last = _read_stamp([data[BLOCK // 2 * line + i * BLOCK + BLOCK // 2] for i in range(BITS)])
    return last


async def availability(base: str, camera_id: str, until: float) -> list[float]:
    """Segment listed -> its last frame's age (ms), for each new segment until `until`."""
    ages: list[float] = []
    seen: set[str] = set()
    playlist = f"{base}/streams/media/{camera_id}/index.m3u8"
    async with httpx.AsyncClient(timeout=10) as http:
        first = True
        while time.monotonic() < until:
            listed = (await http.get(playlist)).text
            now_ms = time.time() * 1000
            uris = [line for line in listed.splitlines() if line and not line.startswith("#")]
            fresh = [uri for uri in uris if uri not in seen]
            seen.update(uris)
            if fresh and not first:
                for uri in fresh:
                    segment = await http.get(httpx.URL(playlist).join(uri))
                    stamp = _last_stamp(segment.content)
                    if stamp is not None:
                        ages.append(_age_ms(stamp, now_ms))
            first = False  # the segments already there when we came are of unknown age
            await asyncio.sleep(0.05)
    return ages


READER = """
({ width, block, bits }) => {
  const video = document.querySelector("video");
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = block;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  window.__stamps = [];
  window.__rejected = 0;
  const step = (_now, meta) => {
    context.drawImage(video, 0, 0, width, block, 0, 0, width, block);
    const data = context.getImageData(0, 0, width, block).data;
    let value = 0;
    for (let i = 0; i < bits; i++) {
      const level = data[((block >> 1) * width + i * block + (block >> 1)) * 4];
      if (level > 70 && level < 180) { value = -1; break; }
      value = value * 2 + (level >= 128 ? 1 : 0);
    }
    if (value < 0) window.__rejected++;
    else window.__stamps.push([performance.timeOrigin + meta.presentationTime, value]);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}
"""


async def hlsjs(base: str, camera_id: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(base_url=base)).new_page()
            await page.goto(f"/streams/watch/{camera_id}?protocol=hls")
            await page.wait_for_function(
                "() => { const v = document.querySelector('video'); return v && v.currentTime > 0; }",
                timeout=60_000,
            )
            await page.evaluate(READER, {"width": WIDTH, "block": BLOCK, "bits": BITS})
            await asyncio.sleep(SECONDS)
            stamps = await page.evaluate("() => window.__stamps")
            rejected = await page.evaluate("() => window.__rejected")
        finally:
            await browser.close()
    return {"ages": [_age_ms(stamp, at) for at, stamp in stamps], "rejected": rejected}


def _summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {"samples": 0}
    return {
        "samples": len(values),
        "p50_ms": statistics.median(values),
        "p95_ms": values[max(0, int(len(values) * 0.95) - 1)],
        "max_ms": values[-1],
    }


async def measure(work: Path) -> dict[str, Any]:
    publish = [sys.executable, __file__, "--stamp"]
    with server(work, lambda url: [*publish, url], viewers=10) as (_process, base, camera_id):
        until = time.monotonic() + SECONDS + 20
        segments = asyncio.create_task(availability(base, camera_id, until))
        browser = await hlsjs(base, camera_id)
        ages = await segments
    return {
        "baseline: HLS segment listed, age of its last frame": _summary(ages),
        "hls.js in Chromium: frame presented, age": _summary(browser["ages"])
        | {"rejected": browser["rejected"]},
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--stamp":
        stamper(sys.argv[2])
        return 0
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # this process is load: off the server's core
    missing = [tool for tool in ("ffmpeg", "taskset") if shutil.which(tool) is None]
    if missing or not CHROMIUM.exists():
        sys.stderr.write(f"streams_hlsjs_latency: missing {', '.join(missing) or CHROMIUM}\n")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-streams-hlsjs-") as work:
        figures = asyncio.run(measure(Path(work)))
    load = os.getloadavg()[0]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "# streams: hls.js end-to-end latency in Chromium (stamped camera -> presented frame)",
        "",
        f"{when} · load average {load:.2f} · {os.cpu_count()} cores · {SECONDS:.0f} s of playback · "
        "`.venv/bin/python bench/streams_hlsjs_latency.py`",
        "",
        "`pentad serve` (built-in engine) on core 1; the stamped camera (wall-clock ms drawn as blocks, "
        "x264, RTMP), the playlist poller and Chromium on core 0. Same clock throughout.",
        "",
        "| what | samples | p50 | p95 | max | ratio p50 to baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    baseline = figures["baseline: HLS segment listed, age of its last frame"]
    for name, row in figures.items():
        if not row["samples"]:
            lines.append(f"| {name} | 0 | - | - | - | - |")
            continue
        ratio = row["p50_ms"] / baseline["p50_ms"] if baseline.get("p50_ms") else 0
        lines.append(
            f"| {name} | {row['samples']} | {row['p50_ms']:.0f} ms | {row['p95_ms']:.0f} ms "
            f"| {row['max_ms']:.0f} ms | {ratio:.2f}x |"
        )
    lines += [
        "",
        "Aim (issue 10): hls.js end to end <= 4 s (Owncast 5-10 s). The baseline is what any HLS player "
        "starts from: the moment the playlist lists a segment, counted from its last frame's drawing "
        "(encoder, RTMP, packager, 1 s segments); hls.js adds its fetch, buffer and live-sync distance "
        "(2 segments).",
    ]
    text_out = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    result = {"measured_at": when, "load_average": load, "seconds": SECONDS, "figures": figures}
    (RESULTS / "streams_hlsjs.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "streams_hlsjs.md").write_text(text_out)
    sys.stdout.write(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
