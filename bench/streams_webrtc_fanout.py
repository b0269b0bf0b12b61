"""streams: WebRTC (WHEP) viewers of one 2 Mbit/s H.264 stream on one core, beside a plain UDP fan-out floor.

A real `pentad serve` (one worker, the built-in RTMP engine, SQLite) pinned to core 1 (`taskset -c 1`);
everything else (the publisher, the viewers, this script) on core 0. The publisher is ffmpeg replaying a
720p 30 fps x264 clip at 2 Mbit/s CBR with AAC (made first by ffmpeg: testsrc2 and a tone) in real time
(`-re -stream_loop -1 -c copy`) to the server's RTMP port. Viewers are aiortc peers that POST a WHEP offer
each, in child processes, with their H.264 decoder replaced by a counter (decoding 50 streams would need
more cores than the machine has): they count complete frames and the frames missing between the RTP
timestamps they got (frames lost).

Server CPU: utime + stime of the `pentad serve` process and its descendants (the HLS packager ffmpeg, the
media service) from /proc, over a window with N viewers, minus the same window with none (the ingest, the
packager and the Opus encoder run once per stream whatever the viewers). CPU per viewer = that / N.

Same-run baseline (the floor): a plain asyncio UDP fan-out on core 1 of the same RTP packet sizes (the
clip's access units cut into 1200-byte packets, 50 Opus-sized packets a second) to N UDP sockets on
core 0: what sending the bytes costs with no SRTP, no RTCP, no packetizer, no Python per viewer beyond a
`sendto`. The ratio is Pentad's CPU per viewer over the floor's.

    .venv/bin/python bench/streams_webrtc_fanout.py     (BENCH_FANOUT_VIEWERS=10,25,50 BENCH_FANOUT_WINDOW=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"
VENV_BIN = Path(sys.executable).parent
VIEWERS = [int(n) for n in os.environ.get("BENCH_FANOUT_VIEWERS", "10,25,50").split(",")]
WINDOW = float(os.environ.get("BENCH_FANOUT_WINDOW", "10"))
PER_PROCESS = int(os.environ.get("BENCH_FANOUT_PER_PROCESS", "13"))  # viewers per child process
FPS = 30
FRAME_TICKS = 90_000 // FPS
RTP_PAYLOAD = 1200
PORTS = range(29500, 30000)
SERVER_CORE, LOAD_CORE = "1", "0"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 29500-29999")


def _pinned(core: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", core, *command]


def _clip(path: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "10",
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", str(FPS),
         "-pix_fmt", "yuv420p", "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "2M",
         "-c:a", "aac", "-b:a", "96k", "-f", "flv", str(path)],
        check=True, timeout=300,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- /proc CPU


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def _waited_seconds(pids: list[int]) -> float:
    """Time the threads of `pids` spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


async def _window(root: int) -> dict[str, float]:
    """Over WINDOW seconds, `root` and its descendants: cores used, and the share of the window they
    waited for a CPU (summed over threads: above 0 means someone else had the core)."""
    pids = _tree(root)
    cpu, waited, wall = _cpu_seconds(pids), _waited_seconds(pids), time.monotonic()
    await asyncio.sleep(WINDOW)
    wall = time.monotonic() - wall
    return {
        "cpu_core": (_cpu_seconds(pids) - cpu) / wall,
        "cpu_wait": (_waited_seconds(pids) - waited) / wall,
    }


# ----------------------------------------------------------------------------------------- the server


def _env(work: Path, http_port: int, rtmp_port: int, viewers: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    return env | {
        "PENTAD_DATA_DIR": str(work / "data"),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{work / 'data' / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_APPS": "streams",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{http_port}",
        "PENTAD_RATELIMIT__ENABLED": "false",
        "PENTAD_STREAMS__RTMP_HOST": "127.0.0.1",
        "PENTAD_STREAMS__RTMP_PORT": str(rtmp_port),
        "PENTAD_STREAMS__MEDIA_DIR": str(work / "media"),
        "PENTAD_STREAMS__WEBRTC__HOST_ADDRESSES": "127.0.0.1",
        "PENTAD_STREAMS__WEBRTC__ALLOWED_PEER_NETWORKS": "127.0.0.0/8",
        "PENTAD_STREAMS__WEBRTC__MAX_VIEWERS": str(viewers),
    }


def _wait(check: Any, what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"never happened: {what}\n{tail}")
        time.sleep(0.3)


@contextlib.contextmanager
def server(
    work: Path, publish: Callable[[str], list[str]], *, viewers: int
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """A `pentad serve` on SERVER_CORE taking up to `viewers` WebRTC viewers, and one public camera
    published to by `publish(rtmp_url)` on LOAD_CORE: (server process, base URL, camera id) once its HLS
    plays, until the block ends."""
    http_port, rtmp_port = _free_port(), 0
    with socket.socket() as held:  # two distinct ports from the range
        held.bind(("127.0.0.1", http_port))
        rtmp_port = _free_port()
    env = _env(work, http_port, rtmp_port, viewers)
    (work / "data").mkdir()
    pentad = str(VENV_BIN / "pentad")
    email, password = "bench@example.com", secrets.token_urlsafe(18)
    for args in (["migrate"], ["user", "create", "--email", email, "--password", password]):
        subprocess.run([pentad, *args], env=env, cwd=work, check=True, capture_output=True, timeout=120)
    log = work / "server.log"
    base = f"http://127.0.0.1:{http_port}"
    command = [pentad, "serve", "--host", "127.0.0.1", "--port", str(http_port), "--workers", "1"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with log.open("wb") as out:
            server = subprocess.Popen(
                _pinned(SERVER_CORE, command), env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        processes.append(server)
        _wait(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, "pentad serve", 90, log)
        login = httpx.post(f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=30)
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        camera = httpx.post(
            f"{base}/api/streams/cameras", json={"name": "bench", "visibility": "public"}, headers=auth
        )
        camera.raise_for_status()
        camera_id = camera.json()["id"]
        key = httpx.post(f"{base}/api/streams/cameras/{camera_id}/keys", json={}, headers=auth)
        key.raise_for_status()
        url = f"rtmp://127.0.0.1:{rtmp_port}/live/{key.json()['key']}"
        with (work / "publisher.log").open("wb") as out:
            processes.append(
                subprocess.Popen(_pinned(LOAD_CORE, publish(url)), stdout=out, stderr=subprocess.STDOUT)
            )
        playlist = f"{base}/streams/media/{camera_id}/index.m3u8"
        _wait(lambda: httpx.get(playlist, timeout=5).text.count(".ts") >= 2, "the stream's HLS", 60, log)
        yield server, base, camera_id
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


# ------------------------------------------------------------------------------------- the WHEP viewers


async def viewers_child(base: str, camera_id: str, count: int) -> None:
    """`count` WHEP viewers: {"connected": n} on stdout once connected; counters reset on a line from
    stdin; {"frames", "lost"} on stdout at the next line; then the sessions are ended (DELETE)."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from pentad.apps.streams.media.webrtc.hub import _tap
    from pentad.apps.streams.media.webrtc.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    frames = [0] * count
    lost = [0] * count
    last: list[int | None] = [None] * count

    def counter(index: int) -> Any:
        def count_frame(codec: str, data: bytes, timestamp: int) -> None:
            frames[index] += 1
            previous = last[index]
            if previous is not None:
                gap = (timestamp - previous) & 0xFFFFFFFF
                if gap < 0x80000000:
                    lost[index] += max(0, round(gap / FRAME_TICKS) - 1)
            last[index] = timestamp

        return count_frame

    peers: list[tuple[Any, str]] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for index in range(count):
            pc = RTCPeerConnection()
            video = pc.addTransceiver("video", direction="recvonly")
            audio = pc.addTransceiver("audio", direction="recvonly")
            _tap(video.receiver, counter(index))
            _tap(audio.receiver, lambda *_: None)
            await pc.setLocalDescription(await pc.createOffer())
            answer = await http.post(
                f"/streams/whep/{camera_id}",
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
            answer.raise_for_status()
            await pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
            peers.append((pc, answer.headers["location"]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.connectionState == "connected" for p, _ in peers):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # past the first keyframe
        sys.stdout.write(json.dumps({"connected": sum(p.connectionState == "connected" for p, _ in peers)}))
        sys.stdout.write("\n")
        sys.stdout.flush()
        await reader.readline()
        cpu, waited = time.process_time(), _waited_seconds([os.getpid()])
        for index in range(count):
            frames[index] = lost[index] = 0
        await reader.readline()
        report = {
            "frames": list(frames),
            "lost": list(lost),
            "cpu": time.process_time() - cpu,
            "waited": _waited_seconds([os.getpid()]) - waited,
        }
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
        for pc, location in peers:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(location)
            await pc.close()


async def _children(command: list[str], count: int) -> list[asyncio.subprocess.Process]:
    children = []
    for start in range(0, count, PER_PROCESS):
        children.append(
            await asyncio.create_subprocess_exec(
                *_pinned(LOAD_CORE, [*command, str(min(PER_PROCESS, count - start))]),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    return children


async def _tell(children: list[asyncio.subprocess.Process], line: bytes) -> None:
    for child in children:
        assert child.stdin is not None
        child.stdin.write(line)
        await child.stdin.drain()


async def _read(children: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    answers = []
    for child in children:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if not line:
            raise RuntimeError(f"a viewer process ended early ({await child.wait()})")
        answers.append(json.loads(line))
    return answers


async def _step(root: int, command: list[str], count: int) -> dict[str, Any]:
    """`count` viewers of `command`'s kind: server (root's tree) CPU and what the viewers got."""
    children = await _children(command, count)
    try:
        ready = await _read(children)
        await _tell(children, b"go\n")
        used = await _window(root)
        await _tell(children, b"report\n")
        reports = await _read(children)
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            await child.wait()
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    frames = [n for report in reports for n in report["frames"]]
    lost = [n for report in reports for n in report["lost"]]
    return {
        "viewers": count,
        "connected": sum(answer["connected"] for answer in ready),
        **used,
        "fps_per_viewer": sum(frames) / len(frames) / WINDOW if frames else 0.0,
        "lost_per_viewer": sum(lost) / len(lost) if lost else 0.0,
        "lost_max": max(lost, default=0),
        "viewer_processes_cpu_core": sum(report["cpu"] for report in reports) / WINDOW,
        "viewer_processes_wait": sum(report["waited"] for report in reports) / WINDOW,
    }


# ------------------------------------------------------------------------------------ the UDP floor


def _packet_schedule(clip: Path) -> list[tuple[float, list[int]]]:
    """(seconds from start, RTP packet sizes) per media frame of the clip, as WebRTC would send them:
    H.264 access units in RTP_PAYLOAD pieces (+12 bytes RTP header), audio as 20 ms Opus packets."""
    from pentad.apps.streams.media import flv
    from pentad.apps.streams.media.frames import VIDEO

    schedule: list[tuple[float, list[int]]] = []
    for frame in flv.read_tags(clip.read_bytes()):
        if frame.kind != VIDEO or frame.config:
            continue
        size = len(frame.payload) - 5
        pieces = [RTP_PAYLOAD + 12] * (size // RTP_PAYLOAD) + [size % RTP_PAYLOAD + 12]
        schedule.append((frame.timestamp / 1000, pieces))
    start = schedule[0][0]
    schedule = [(at - start, sizes) for at, sizes in schedule]
    span = schedule[-1][0] + 1 / FPS
    audio = [(n * 0.02, [96 + 12]) for n in range(int(span / 0.02))]  # ~96 kbit/s Opus at 20 ms
    return sorted(schedule + audio, key=lambda item: item[0])


async def floor_sender(clip: Path, ports: list[int]) -> None:
    """Send the clip's packet sizes in real time, looped, to every port, until stdin closes."""
    loop = asyncio.get_running_loop()
    schedule = _packet_schedule(clip)
    span = schedule[-1][0] + 1 / FPS
    transports = []
    for port in ports:
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
        )
        transports.append(transport)
    payload = os.urandom(RTP_PAYLOAD + 12)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.ensure_future(reader.read())
    start, turn = time.monotonic(), 0
    while not stop.done():
        for at, sizes in schedule:
            delay = start + turn * span + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for transport in transports:
                for size in sizes:
                    transport.sendto(payload[:size])
            if stop.done():
                break
        turn += 1


async def floor_receiver(count: int) -> None:
    """`count` UDP sockets counting datagrams: their ports on stdout, the counts on stdin's close."""
    loop = asyncio.get_running_loop()
    received = [0] * count

    class Counter(asyncio.DatagramProtocol):
        def __init__(self, index: int) -> None:
            self.index = index

        def datagram_received(self, data: bytes, addr: Any) -> None:
            received[self.index] += 1

    ports = []
    for index in range(count):
        transport, _ = await loop.create_datagram_endpoint(
            lambda i=index: Counter(i), local_addr=("127.0.0.1", 0)
        )
        ports.append(transport.get_extra_info("sockname")[1])
    sys.stdout.write(json.dumps({"ports": ports}) + "\n")
    sys.stdout.flush()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    sys.stdout.write(json.dumps({"received": sum(received)}) + "\n")
    sys.stdout.flush()


async def _floor_step(clip: Path, count: int) -> dict[str, Any]:
    me = [sys.executable, __file__]
    receiver = await asyncio.create_subprocess_exec(
        *_pinned(LOAD_CORE, [*me, "--floor-receive", str(max(count, 1))]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert receiver.stdout is not None
    assert receiver.stdin is not None
    ports = json.loads(await receiver.stdout.readline())["ports"][:count]
    sender = await asyncio.create_subprocess_exec(
        *_pinned(SERVER_CORE, [*me, "--floor-send", str(clip), ",".join(map(str, ports)) or "-"]),
        stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert sender.stdin is not None
    await asyncio.sleep(1)
    used = await _window(sender.pid)
    sender.stdin.close()
    await sender.wait()
    receiver.stdin.close()
    received = json.loads(await receiver.stdout.readline())["received"]
    await receiver.wait()
    return {"viewers": count, **used, "packets_per_viewer_s": received / max(count, 1) / WINDOW}


# ------------------------------------------------------------------------------------------- the run


async def measure(work: Path) -> dict[str, Any]:
    clip = work / "clip.flv"
    _clip(clip)
    floor = {"0": await _floor_step(clip, 0)}
    for count in VIEWERS:
        floor[str(count)] = await _floor_step(clip, count)
    pentad: dict[str, Any] = {}

    def replay(url: str) -> list[str]:
        return [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
            "-i", str(clip), "-c", "copy", "-f", "flv", url,
        ]  # fmt: skip

    with server(work, replay, viewers=max(VIEWERS) + 10) as (node, base, camera_id):
        await asyncio.sleep(2)
        pentad["0"] = {"viewers": 0, **await _window(node.pid)}
        command = [sys.executable, __file__, "--viewers", base, camera_id]
        for count in VIEWERS:
            pentad[str(count)] = await _step(node.pid, command, count)
            await asyncio.sleep(2)  # the sessions ended
    for rows in (floor, pentad):
        idle = rows["0"]["cpu_core"]
        for key, row in rows.items():
            if key != "0":
                row["cpu_per_viewer"] = (row["cpu_core"] - idle) / row["viewers"]
    return {"floor": floor, "pentad": pentad}


def _table(figures: dict[str, Any]) -> list[str]:
    floor, pentad = figures["floor"], figures["pentad"]
    lines = [
        "| viewers | connected | frames/s per viewer | frames lost per viewer (max) | server CPU (cores) "
        "| server waited for a CPU | viewers' processes: CPU, waited "
        "| CPU per viewer | floor: UDP fan-out CPU per viewer | ratio | viewers per core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| 0 (ingest, HLS packager, Opus) | - | - | - | {pentad['0']['cpu_core']:.3f} "
        f"| {pentad['0']['cpu_wait'] * 100:.0f} % | - | - "
        f"| {floor['0']['cpu_core']:.3f} cores idle | - | - |",
    ]
    for key, row in pentad.items():
        if key == "0":
            continue
        base = floor[key]
        per, per_floor = row["cpu_per_viewer"], base["cpu_per_viewer"]
        ratio = f"{per / per_floor:.1f}x" if per_floor > 0 else "-"
        # A viewer short of the stream's frame rate means the machine could not keep up (the load core
        # with N aiortc receivers, or the server's core taken by others): no per-core figure from it.
        starved = row["fps_per_viewer"] < FPS * 0.9 or row["connected"] < row["viewers"]
        per_core = "-" if per <= 0 else f"{1 / per:.0f}" + (" (starved)" if starved else "")
        lines.append(
            f"| {row['viewers']} | {row['connected']} | {row['fps_per_viewer']:.1f} "
            f"| {row['lost_per_viewer']:.1f} ({row['lost_max']}) | {row['cpu_core']:.3f} "
            f"| {row['cpu_wait'] * 100:.0f} % "
            f"| {row['viewer_processes_cpu_core']:.2f}, {row['viewer_processes_wait'] * 100:.0f} % "
            f"| {per * 100:.2f} % "
            f"| {per_floor * 100:.3f} % | {ratio} | {per_core} |"
        )
    return lines


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--viewers":
        asyncio.run(viewers_child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--floor-send":
        ports = [] if sys.argv[3] == "-" else [int(p) for p in sys.argv[3].split(",")]
        asyncio.run(floor_sender(Path(sys.argv[2]), ports))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--floor-receive":
        asyncio.run(floor_receiver(int(sys.argv[2])))
        return 0
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # this process is load: off the server's core
    missing = [tool for tool in ("ffmpeg", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.stderr.write(f"streams_webrtc_fanout: {', '.join(missing)} not installed\n")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-streams-fanout-") as work:
        figures = asyncio.run(measure(Path(work)))
    load = os.getloadavg()[0]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "# streams: WebRTC (WHEP) viewers of one 720p 2 Mbit/s H.264 stream on one core",
        "",
        f"{when} · load average {load:.2f} · {os.cpu_count()} cores · {WINDOW:.0f} s windows · "
        "`.venv/bin/python bench/streams_webrtc_fanout.py`",
        "",
        "`pentad serve` (1 worker, built-in RTMP engine) pinned to core 1 with its children; publisher "
        "(ffmpeg `-re -c copy`), aiortc viewers (decoder replaced by a counter) and the floor's receivers "
        "on core 0. Server CPU from /proc (the server's process tree). Floor: a plain asyncio UDP fan-out "
        "of the same RTP packet sizes, on core 1, same run; ratio = CPU per viewer / floor's.",
        "",
        *_table(figures),
        "",
        'Aim (issue 10): 50 WebRTC viewers of one 2 Mbit/s stream within one core. "viewers per core" '
        "is 1 / CPU per viewer; frames lost are gaps in the RTP timestamps a viewer got (a whole frame "
        "missing), over the window.",
    ]
    text_out = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    result = {"measured_at": when, "load_average": load, "window_s": WINDOW, "figures": figures}
    (RESULTS / "streams_fanout.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "streams_fanout.md").write_text(text_out)
    sys.stdout.write(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
