"""streams capacity: CPU per concurrent 720p passthrough stream on each ingest engine (built-in, nginx-rtmp),
beside a bare ffmpeg doing the same job per stream in the same run.

A 1280x720 30 fps H.264 (~2.5 Mbit/s, GOP 30) + AAC clip is made once; N publishers replay it in a loop
without re-encoding (`ffmpeg -re -stream_loop -1 -c copy -f flv`), as N cameras would, into a real
`pentad serve` (built-in RTMP engine; each stream: relay, health meter, an ffmpeg HLS packager child).
Server CPU = the serve process and its children (/proc, psutil) over a WINDOW-second window once every
stream is listed; CPU per stream = (CPU with N - CPU with none) / N. Baseline: the same N publishers into
N `ffmpeg -listen 1 -c copy -f hls` (receiving RTMP and writing HLS, nothing else), measured the same way.
The nginx engine (PENTAD_STREAMS__ENGINE=nginx, nginx managed by Pentad: a child of serve) is measured the
same way: the publishers go to nginx-rtmp, Pentad pulls each stream from it into its relay and packager;
its figure is nginx (master and workers) + Pentad + the packagers. Needs nginx and libnginx-mod-rtmp.

    .venv/bin/python bench/streams_capacity.py
    (BENCH_CAPACITY_STREAMS=1,10,30 BENCH_CAPACITY_WINDOW=10 BENCH_CAPACITY_ENGINES=builtin,nginx)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil

from streams_latency import HOST, OWNER, PASSWORD, RESULTS, Pentad, free_port, listening, process, wait_for

STREAMS = [int(n) for n in os.environ.get("BENCH_CAPACITY_STREAMS", "1,10,30").split(",")]
WINDOW = float(os.environ.get("BENCH_CAPACITY_WINDOW", "10"))
ENGINES = os.environ.get("BENCH_CAPACITY_ENGINES", "builtin,nginx").split(",")


def make_clip(path: Path) -> None:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "10",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2500k", "-maxrate", "2500k",
            "-bufsize", "5000k", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-f", "flv", str(path),
        ],
        check=True, timeout=600,
    )  # fmt: skip


def cpu_seconds(root: psutil.Process) -> dict[int, float]:
    found = {}
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            found[proc.pid] = times.user + times.system
    return found


def cpu_cores(roots: list[psutil.Process]) -> float:
    """Cores used by these processes and their children over WINDOW seconds."""
    before = {pid: t for root in roots for pid, t in cpu_seconds(root).items()}
    start = time.monotonic()
    time.sleep(WINDOW)
    after = {pid: t for root in roots for pid, t in cpu_seconds(root).items()}
    elapsed = time.monotonic() - start
    return sum(after[pid] - before[pid] for pid in after if pid in before) / elapsed


@contextlib.contextmanager
def publishers(clip: Path, urls: list[str], work: Path) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for n, url in enumerate(urls):
            argv = ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy"]
            stack.enter_context(process([*argv, "-f", "flv", url], work / f"publisher-{n}.log"))
        yield


def _listed(playlist: Path) -> bool:
    try:
        return ".ts" in playlist.read_text()
    except FileNotFoundError:
        return False


def all_listed(media: Path, cameras: list[tuple[str, str]]) -> bool:
    return all(_listed(media / camera / "index.m3u8") for camera, _ in cameras)


def baseline(clip: Path, count: int, work: Path) -> float:
    """Cores used by `count` bare ffmpeg RTMP -> HLS servers (copy) fed by the publishers."""
    folder = work / f"baseline-{count}"
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        servers = []
        for n, port in enumerate(ports):
            out = folder / str(n)
            out.mkdir(parents=True)
            argv = [
                "ffmpeg", "-v", "error", "-listen", "1", "-f", "flv", "-i", f"rtmp://{HOST}:{port}/live/s",
                "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
                "-hls_flags", "delete_segments+temp_file", str(out / "index.m3u8"),
            ]  # fmt: skip
            servers.append(stack.enter_context(process(argv, folder / f"server-{n}.log")))
        for server, port in zip(servers, ports, strict=True):
            wait_for(partial(listening, server.pid, port), "ffmpeg -listen")
        urls = [f"rtmp://{HOST}:{port}/live/s" for port in ports]
        stack.enter_context(publishers(clip, urls, folder))
        wait_for(
            lambda: all(_listed(folder / str(n) / "index.m3u8") for n in range(count)), "baseline HLS", 120
        )
        return cpu_cores([psutil.Process(server.pid) for server in servers])


def pentad(clip: Path, counts: list[int], work: Path, engine: str) -> tuple[float, dict[int, float]]:
    server = Pentad(work)
    server.env["PENTAD_STREAMS__ENGINE"] = engine
    server.cli("migrate")
    server.cli("user", "create", "--email", OWNER, "--password", PASSWORD)
    server.env["PENTAD_STREAMS__MAX_STREAMS"] = str(sum(counts) + 1)
    figures: dict[int, float] = {}
    with server.serving() as serve, httpx.Client(base_url=server.base_url, timeout=30) as client:
        login = client.post("/api/auth/login", json={"email": OWNER, "password": PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        keys: list[tuple[str, str]] = []
        for n in range(sum(counts)):  # fresh cameras per step: a camera just left may still be ending
            made = client.post("/api/streams/cameras", json={"name": f"cam {n}"}, headers=headers)
            made.raise_for_status()
            key = client.post(f"/api/streams/cameras/{made.json()['id']}/keys", json={}, headers=headers)
            key.raise_for_status()
            keys.append((made.json()["id"], key.json()["key"]))
        root = psutil.Process(serve.pid)
        idle = cpu_cores([root])
        media = Path(server.env["PENTAD_DATA_DIR"]) / "streams" / "hls"
        for count in counts:
            chosen, keys = keys[:count], keys[count:]
            with publishers(clip, [server.rtmp_url(key) for _, key in chosen], work / f"{engine}-{count}"):
                wait_for(partial(all_listed, media, chosen), f"{count} streams listed", 180)
                figures[count] = cpu_cores([root])
            time.sleep(3)  # the streams end before the next step
    return idle, figures


def main() -> None:
    measured: dict[str, tuple[float, dict[int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as folder:
        work = Path(folder)
        clip = work / "clip.flv"
        make_clip(clip)
        floors = {count: baseline(clip, count, work) for count in STREAMS}
        for engine in ENGINES:
            (work / engine).mkdir()
            for count in STREAMS:
                (work / engine / f"{engine}-{count}").mkdir()
            measured[engine] = pentad(clip, STREAMS, work / engine, engine)
    rows: list[dict[str, Any]] = []
    for engine, (idle, figures) in measured.items():
        for count in STREAMS:
            per_stream = (figures[count] - idle) / count * 100
            floor = floors[count] / count * 100
            rows.append(
                {
                    "engine": engine,
                    "streams": count,
                    "idle_cores": round(idle, 3),
                    "pentad_cores": round(figures[count], 3),
                    "pentad_cpu_percent_per_stream": round(per_stream, 2),
                    "baseline_cores": round(floors[count], 3),
                    "baseline_cpu_percent_per_stream": round(floor, 2),
                    "vs_baseline": round(per_stream / max(floor, 0.01), 2),
                }
            )
    load = os.getloadavg()[0]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    command = ".venv/bin/python bench/streams_capacity.py"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streams_capacity.json").write_text(
        json.dumps({"when": stamp, "load_average": load, "window_s": WINDOW, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "# streams: concurrent 720p passthrough streams, CPU per stream, by ingest engine",
        "",
        f"{stamp} · {WINDOW:g} s windows · 1280x720 30 fps ~2.5 Mbit/s + AAC, replayed with -c copy · "
        f"load average {load:.2f} · `{command}`",
        "",
        "Idle (no stream): "
        + ", ".join(f"{engine} {idle:.3f} cores" for engine, (idle, _) in measured.items())
        + ". nginx: nginx-rtmp (master + workers, managed by Pentad) + Pentad's pull + packagers.",
        "",
        "| engine | streams | Pentad (serve + children) cores | CPU % of a core per stream "
        "| baseline: bare ffmpeg RTMP->HLS, % per stream | vs baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['engine']} | {row['streams']} | {row['pentad_cores']} | "
            f"{row['pentad_cpu_percent_per_stream']} % | {row['baseline_cpu_percent_per_stream']} % | "
            f"{row['vs_baseline']}x |"
        )
    lines += [
        "",
        "Aim (issue 10): 30 streams on one core, built-in engine <= 2 % of a core per stream. Per stream =",
        "(cores with N streams - idle) / N; the publishers' own CPU is not counted. The baseline (one bare",
        "`ffmpeg -listen 1 -c copy -f hls` per stream) is measured once in the run, before the engines.",
        "",
    ]
    (RESULTS / "streams_capacity.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
