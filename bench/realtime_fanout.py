"""Realtime fan-out through Pentad's hub, beside a plain `websockets` broadcast server, in one run.

Five parts, all with the server on CPU 0 and the load generator on CPU 1:

1. fan-out: 1,000 authenticated subscribers of one topic, 10 events/s (10,000 deliveries/s) for
   BENCH_DURATION seconds: delivered %, publish-to-receive latency, server CPU and RSS;
2. the same load against bench/plain_ws_app.py (`websockets.serve` + `websockets.broadcast`);
3. saturation: the publish rate raised step by step on both servers, up to the highest rate still
   delivered in full (>= 99.9 %) with p99 <= 250 ms; and the ratio Pentad / plain;
4. memory: server RSS before and after opening 10,000 authenticated idle connections (and the same
   number of plain connections, for reference);
5. cross-node: two `pentad serve` nodes sharing one SQLite file and a redis-server of our own; the
   subscribers on node B, the publishes on node A.

Pentad runs as `pentad serve` (through bench/realtime_fanout_app.py, which adds a topic family and a
publishing route) with a fresh data directory and database prepared with the real CLI (`migrate`,
`user create`, `apikey create`); each subscriber sends the API key in the `auth` frame, then subscribes.
Events are published over HTTP through the app's route, i.e. the server-side path an app uses
(`publish(session, topic, payload)`, handed to the hub when the request's transaction commits).

The load generator is this file run as `realtime_fanout.py loadgen` (a JSON configuration on stdin, one
`LOADGEN_RESULT {...}` line on stdout): one process, one uvloop event loop, a minimal WebSocket client on
asyncio.Protocol that parses frames itself and decodes each event only for its seq, send time and number.

Writes bench/results/realtime_fanout.json and bench/results/realtime_fanout.md and prints the table. The
figures are reported, never judged: the exit status says only whether the benchmark could run.

Environment: BENCH_DURATION (seconds of the measured fan-out runs, default 20, 1 to 300).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PENTAD_APP = BENCH_DIR / "realtime_fanout_app.py"
PLAIN_APP = BENCH_DIR / "plain_ws_app.py"

HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
DEFAULT_DURATION = 20
MAX_DURATION = 300
STARTUP_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
EMAIL = "bench@example.com"
OPEN_FILES = 65_536
"""RLIMIT_NOFILE wanted for every process (10,000 sockets on each side of part 4, plus some)."""

SUBSCRIBERS = 1_000
RATE = 10.0
"""Events per second of the fan-out runs (parts 1, 2 and 5): 10,000 deliveries/s to 1,000 subscribers."""
WARMUP_SECONDS = 3.0
DRAIN_SECONDS = 5.0
TEXT_BYTES = 100
"""Filler text in each event, so a frame is about as large as a short chat message (~210 bytes)."""
STREAM = "main"
TOPIC = f"bench.fanout.{STREAM}"
PUBLISH_PATH = f"/api/rtbench/streams/{STREAM}/events"

SATURATION_STEP_SECONDS = 5.0
SATURATION_DRAIN_SECONDS = 3.0
SATURATION_BUDGET_SECONDS = 120.0
SATURATION_MAX_STEPS = 12
SATURATION_MIN_DELIVERED_PCT = 99.9
SATURATION_MAX_P99_MS = 250.0
SATURATION_MIN_PUBLISH_RATIO = 0.95
SATURATION_GROWTH = 1.2
SATURATION_RESOLUTION = 1.08
CLIENT_SATURATED_PCT = 90.0
DISTURBED_PCT = 10.0
"""A step that fails while other processes used more than this % of the server's or the load generator's
core is run again (up to DISTURBED_RETRIES times): the machine is shared, and a neighbour's burst is not a
limit of the server."""
DISTURBED_RETRIES = 2

IDLE_CONNECTIONS = 10_000
IDLE_WARMUP_CONNECTIONS = 200
IDLE_SETTLE_SECONDS = 3.0
IDLE_BUDGET = 300.0
CONNECT_CONCURRENCY = 200
LOADGEN_MARGIN_SECONDS = 180.0

AIM = {
    "delivered_pct": 100.0,
    "fanout_deliveries_per_s": int(SUBSCRIBERS * RATE),
    "max_p99_ms": 100.0,
    "min_saturation_ratio_to_plain": 0.7,
    "max_kb_per_idle_connection": 30.0,
}


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""


# =====================================================================================================
# The orchestrator: servers, the load generator, the results.
# =====================================================================================================


def _terminate_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so every `finally` (which stops the processes) still runs.
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def can_pin() -> bool:
    return shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)


def pinned(cpu: str, command: Sequence[str]) -> list[str]:
    """`command` run on one CPU when the machine has CPUs 0 and 1 to give, else unchanged."""
    if can_pin():
        return ["taskset", "-c", cpu, *command]
    return list(command)


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE (inherited by every process started from here); the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES
    with contextlib.suppress(ValueError, OSError):
        # Raising the hard limit needs privileges; without them, go as far as the hard limit allows.
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Process:
    """A process of ours (server, redis), its output in a log file; `stop` ends it however we end."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ready_path: str | None = None
    """An HTTP path that answers 200 once the server is ready (Pentad: /readyz, which includes the
    realtime broker); without one, accepting TCP connections is enough."""
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                pinned(SERVER_CPU, self.command),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def wait_listening(self, port: int) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise BenchmarkError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self._ready(port):
                    return
            time.sleep(0.1)
        raise BenchmarkError(f"{self.name} was not ready within {STARTUP_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def _ready(self, port: int) -> bool:
        if self.ready_path is None:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            connection.request("GET", self.ready_path)
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def check_alive(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise BenchmarkError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        process = self.popen
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def running(*processes: Process, ports: Sequence[int]) -> Iterator[None]:
    """Start the processes in order (each listening on its port before the next starts); stop them all."""
    started: list[Process] = []
    try:
        for process, port in zip(processes, ports, strict=True):
            started.append(process.start())
            process.wait_listening(port)
        yield
    finally:
        for process in reversed(started):
            process.stop()


def pentad_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env.update(
        {
            "PENTAD_DATA_DIR": str(data_dir),
            "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
            "PENTAD_APPS": "rtbench",
            # Limits stay on (their cost is part of the stack) but high enough never to refuse the load.
            "PENTAD_RATELIMIT__PER_ADDRESS": "100000000/minute",
            "PENTAD_RATELIMIT__PER_PRINCIPAL": "100000000/minute",
            # Every subscriber comes from 127.0.0.1, CONNECT_CONCURRENCY at a time, each awaiting `auth`.
            "PENTAD_REALTIME__MAX_UNAUTHENTICATED": str(IDLE_CONNECTIONS),
            "PENTAD_REALTIME__MAX_UNAUTHENTICATED_PER_ADDRESS": str(IDLE_CONNECTIONS),
            "PENTAD_LOG__LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def pentad_cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """`pentad ARGS` with the benchmark's app installed (bench/realtime_fanout_app.py is that command)."""
    command = [sys.executable, str(PENTAD_APP), *args]
    shown = " ".join(args[:2])  # the sub-command only: later arguments may hold a password
    try:
        finished = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"`pentad {shown}` did not finish within {CLI_TIMEOUT:.0f} s") from None
    if finished.returncode != 0:
        raise BenchmarkError(
            f"`pentad {shown}` failed ({finished.returncode}):\n{finished.stderr or finished.stdout}"
        )
    return finished.stdout


def api_key_from(output: str) -> str:
    keys = [word for word in output.split() if word.startswith("pak_")]
    if len(keys) != 1:
        raise BenchmarkError(f"expected one pak_ word in `pentad apikey create` output, found {len(keys)}")
    return keys[0]


def prepare_pentad(data_dir: Path) -> str:
    """A migrated database with a member and an API key of theirs (returned), made with the CLI."""
    data_dir.mkdir()
    env = pentad_env(data_dir)
    password = secrets.token_urlsafe(24)
    # Run from the data directory so a developer's ./.env cannot leak into the measured configuration.
    pentad_cli(["migrate"], env, data_dir)
    pentad_cli(
        ["user", "create", "--email", EMAIL, "--password", password, "--role", "member"], env, data_dir
    )
    return api_key_from(pentad_cli(["apikey", "create", "--email", EMAIL, "--name", "bench"], env, data_dir))


def pentad_server(name: str, data_dir: Path, work_dir: Path, port: int, **env: str) -> Process:
    command = [sys.executable, str(PENTAD_APP), "serve", "--host", HOST, "--port", str(port)]
    command += ["--workers", "1"]
    env_ = pentad_env(data_dir, **env)
    return Process(name, command, work_dir / f"{name}.log", env_, data_dir, ready_path="/readyz")


def plain_server(work_dir: Path, port: int) -> Process:
    return Process("plain", [sys.executable, str(PLAIN_APP), str(port)], work_dir / "plain.log")


def redis_server(work_dir: Path, port: int) -> Process:
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchmarkError("redis-server is not installed (apt-get install -y redis-server)")
    command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    command += ["--dir", str(work_dir)]
    return Process("redis", command, work_dir / "redis.log", cwd=work_dir)


def run_loadgen(config: dict[str, Any], budget: float, servers: Sequence[Process]) -> dict[str, Any]:
    """Run the load generator on CPU 1 with `config`; its result. Fails if it fails or overruns."""
    command = pinned(CLIENT_CPU, [sys.executable, str(Path(__file__).resolve()), "loadgen"])
    timeout = budget + LOADGEN_MARGIN_SECONDS
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True
    ) as process:
        try:
            stdout, _ = process.communicate(json.dumps(config), timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
            raise BenchmarkError(f"the load generator did not finish within {timeout:.0f} s") from None
        except BaseException:
            process.kill()
            raise
    for server in servers:
        server.check_alive()
    for line in stdout.splitlines():
        if line.startswith("LOADGEN_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("LOADGEN_RESULT "))
            if "error" in result:
                raise BenchmarkError(f"load generator: {result['error']}{server_logs(servers)}")
            return result
    raise BenchmarkError(
        f"the load generator failed ({process.returncode}):\n{stdout[-3000:]}{server_logs(servers)}"
    )


def server_logs(servers: Sequence[Process]) -> str:
    """The end of each server's log, to go with an error."""
    return "".join(f"\n--- {server.name} log:\n{server.log_tail(15)}" for server in servers)


def fanout_config(
    *,
    ws_port: int,
    publish: dict[str, Any],
    token: str | None,
    server_pids: Sequence[int],
    duration: float,
    saturation: bool,
) -> dict[str, Any]:
    return {
        "mode": "fanout",
        "host": HOST,
        "ws_port": ws_port,
        "ws_path": "/ws" if token else "/",
        "token": token,
        "topic": TOPIC if token else None,
        "publish": publish,
        "server_pids": list(server_pids),
        "subscribers": SUBSCRIBERS,
        "rate": RATE,
        "warmup_s": WARMUP_SECONDS,
        "duration_s": duration,
        "drain_s": DRAIN_SECONDS,
        "text_bytes": TEXT_BYTES,
        "connect_concurrency": CONNECT_CONCURRENCY,
        "server_cpu": SERVER_CPU if can_pin() else None,
        "client_cpu": CLIENT_CPU if can_pin() else None,
        "saturation": {
            "step_s": min(SATURATION_STEP_SECONDS, duration),
            "drain_s": SATURATION_DRAIN_SECONDS,
            "budget_s": SATURATION_BUDGET_SECONDS,
            "max_steps": SATURATION_MAX_STEPS,
            "min_delivered_pct": SATURATION_MIN_DELIVERED_PCT,
            "max_p99_ms": SATURATION_MAX_P99_MS,
            "min_publish_ratio": SATURATION_MIN_PUBLISH_RATIO,
            "growth": SATURATION_GROWTH,
            "resolution": SATURATION_RESOLUTION,
            "client_saturated_pct": CLIENT_SATURATED_PCT,
            "disturbed_pct": DISTURBED_PCT,
            "disturbed_retries": DISTURBED_RETRIES,
        }
        if saturation
        else None,
    }


def fanout_budget(duration: float, *, saturation: bool) -> float:
    return WARMUP_SECONDS + duration + 2 * DRAIN_SECONDS + (SATURATION_BUDGET_SECONDS if saturation else 0)


def http_publish(port: int, token: str) -> dict[str, Any]:
    return {"kind": "http", "port": port, "path": PUBLISH_PATH, "token": token}


def bench_fanout_pentad(work_dir: Path, data_dir: Path, api_key: str, duration: float) -> dict[str, Any]:
    port = free_port()
    server = pentad_server("pentad", data_dir, work_dir, port)
    with running(server, ports=[port]):
        config = fanout_config(
            ws_port=port,
            publish=http_publish(port, api_key),
            token=api_key,
            server_pids=[server.pid],
            duration=duration,
            saturation=True,
        )
        return run_loadgen(config, fanout_budget(duration, saturation=True), [server])


def bench_fanout_plain(work_dir: Path, duration: float) -> dict[str, Any]:
    port = free_port()
    server = plain_server(work_dir, port)
    with running(server, ports=[port]):
        config = fanout_config(
            ws_port=port,
            publish={"kind": "ws", "port": port, "path": "/publish"},
            token=None,
            server_pids=[server.pid],
            duration=duration,
            saturation=True,
        )
        return run_loadgen(config, fanout_budget(duration, saturation=True), [server])


def idle_config(port: int, path: str, token: str | None, server_pid: int) -> dict[str, Any]:
    return {
        "mode": "idle",
        "host": HOST,
        "ws_port": port,
        "ws_path": path,
        "token": token,
        "server_pids": [server_pid],
        "connections": IDLE_CONNECTIONS,
        "warmup_connections": IDLE_WARMUP_CONNECTIONS,
        "settle_s": IDLE_SETTLE_SECONDS,
        "connect_concurrency": CONNECT_CONCURRENCY,
    }


def bench_memory(work_dir: Path, data_dir: Path, api_key: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    port = free_port()
    server = pentad_server("pentad-idle", data_dir, work_dir, port)
    with running(server, ports=[port]):
        results["pentad"] = run_loadgen(idle_config(port, "/ws", api_key, server.pid), IDLE_BUDGET, [server])
    port = free_port()
    plain = plain_server(work_dir, port)
    with running(plain, ports=[port]):
        results["plain"] = run_loadgen(idle_config(port, "/", None, plain.pid), IDLE_BUDGET, [plain])
    return results


def bench_cross_node(work_dir: Path, data_dir: Path, api_key: str, duration: float) -> dict[str, Any]:
    redis_port, port_a, port_b = free_port(), free_port(), free_port()
    redis = redis_server(work_dir, redis_port)
    broker = {"PENTAD_REALTIME__BROKER_URL": f"redis://{HOST}:{redis_port}/0"}
    node_a = pentad_server("pentad-node-a", data_dir, work_dir, port_a, **broker)
    node_b = pentad_server("pentad-node-b", data_dir, work_dir, port_b, **broker)
    # One after the other: both create the first admin if the database has none (it has one by now).
    with running(redis, node_a, node_b, ports=[redis_port, port_a, port_b]):
        config = fanout_config(
            ws_port=port_b,
            publish=http_publish(port_a, api_key),
            token=api_key,
            server_pids=[node_b.pid, node_a.pid, redis.pid],
            duration=duration,
            saturation=False,
        )
        result = run_loadgen(config, fanout_budget(duration, saturation=False), [redis, node_a, node_b])
    result["server_pids_order"] = ["node_b", "node_a", "redis"]
    return result


# ----------------------------------------------------------------------------- results


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("pentad", "uvicorn", "websockets", "uvloop", "redis"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    redis = shutil.which("redis-server")
    if redis:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([redis, "--version"], capture_output=True, text=True, timeout=10).stdout
            found["redis-server"] = next((w[2:] for w in out.split() if w.startswith("v=")), out.strip())
    return found


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def report(parts: dict[str, Any], duration: float, load_before: float, open_files: int) -> dict[str, Any]:
    fanout = parts["fanout"]
    saturation = {
        name: fanout[name]["saturation"] for name in ("pentad", "plain") if fanout[name].get("saturation")
    }
    pentad_max = saturation.get("pentad", {}).get("max_deliveries_per_s")
    plain_max = saturation.get("plain", {}).get("max_deliveries_per_s")
    return {
        "benchmark": "realtime_fanout",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": versions(),
            # Anything else running skews the figures; a 1-minute load well above 0 says the run was shared.
            "load_average_1m_before": round(load_before, 2),
            "open_files_limit": open_files,
        },
        "load": {
            "subscribers": SUBSCRIBERS,
            "rate_events_per_s": RATE,
            "offered_deliveries_per_s": int(SUBSCRIBERS * RATE),
            "duration_s": duration,
            "warmup_s": WARMUP_SECONDS,
            "drain_s": DRAIN_SECONDS,
            "event_text_bytes": TEXT_BYTES,
            "topic": TOPIC,
            "pentad_publish": f"POST {PUBLISH_PATH} (API key), publish(session, ...) after commit",
            "plain_publish": "text frame on a WebSocket to /publish, websockets.broadcast to all",
            "server_cpu": SERVER_CPU if can_pin() else None,
            "client_cpu": CLIENT_CPU if can_pin() else None,
            "saturation_rule": {
                "min_delivered_pct": SATURATION_MIN_DELIVERED_PCT,
                "max_p99_ms": SATURATION_MAX_P99_MS,
                "min_publish_ratio": SATURATION_MIN_PUBLISH_RATIO,
                "step_s": min(SATURATION_STEP_SECONDS, duration),
                "drain_s": SATURATION_DRAIN_SECONDS,
            },
        },
        "fanout": {name: fanout[name]["fanout"] for name in ("pentad", "plain")},
        "saturation": {
            **saturation,
            "ratio_pentad_to_plain": ratio(pentad_max, plain_max),
        },
        "connect": {name: fanout[name]["connect"] for name in ("pentad", "plain")},
        "memory": parts["memory"],
        "cross_node": parts["cross_node"],
        "aim": AIM,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _others(step: dict[str, Any]) -> str:
    others = step.get("others_pct") or {}
    return f"{others.get('server_core', '-')} / {others.get('client_core', '-')}"


def _mib(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def markdown(result: dict[str, Any]) -> str:
    load = result["load"]
    host = result["host"]
    pinning = (
        f"server on CPU {load['server_cpu']}, load generator on CPU {load['client_cpu']}"
        if load["server_cpu"] is not None
        else "not pinned (fewer than 2 CPUs)"
    )
    lines = [
        "# realtime_fanout: one topic, many subscribers",
        "",
        f"{result['date']} · {host['cpu_count']} CPUs ({host['cpu_model']}) · {pinning} · "
        f"load average before: {host['load_average_1m_before']}",
        "",
        f"## Fan-out: {load['subscribers']} subscribers, {load['rate_events_per_s']:g} events/s "
        f"({load['offered_deliveries_per_s']} deliveries/s), {load['duration_s']:g} s",
        "",
        "| target | delivered % | full subscribers | p50 ms | p90 ms | p99 ms | max ms "
        "| server CPU % | server RSS MiB | client CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("Pentad", result["fanout"]["pentad"]), ("plain websockets", result["fanout"]["plain"])]
    cross = result["cross_node"]
    rows.append(("Pentad, 2 nodes via Redis", cross["fanout"]))
    for title, step in rows:
        lines.append(
            f"| {title} | {step['delivered_pct']:.3f} | {step['full_subscribers']}/{step['subscribers']} | "
            f"{_ms(step['p50_ms'])} | {_ms(step['p90_ms'])} | {_ms(step['p99_ms'])} | "
            f"{_ms(step['max_ms'])} | "
            f"{step['server_cpu_pct']:.0f} | {_mib(step['server_rss_kb'])} | {step['client_cpu_pct']:.0f} |"
        )
    pentad = result["fanout"]["pentad"]
    noise = ", ".join(f"{title} {_others(step)}" for title, step in rows)
    lines += [
        "",
        f"CPU % used by other processes on the server's / load generator's core during these runs: {noise}.",
        "",
        "Pentad's publishes (HTTP POST, from send to response): "
        f"p50 {_ms(pentad['publish_request_p50_ms'])} ms, "
        f"p99 {_ms(pentad['publish_request_p99_ms'])} ms, max {_ms(pentad['publish_request_max_ms'])} ms "
        "(a delivery cannot start before its publish is handled).",
    ]
    cross_cpu = cross["fanout"].get("server_cpu_pct_each", [])
    if cross_cpu:
        lines += [
            "",
            f"Two nodes: server CPU % is node B's (subscribers); node A {cross_cpu[1]:.0f} %, "
            f"redis {cross_cpu[2]:.0f} %.",
        ]
    saturation = result["saturation"]
    lines += [
        "",
        "## Saturation: highest rate delivered in full "
        f"(>= {load['saturation_rule']['min_delivered_pct']} %, p99 <= "
        f"{load['saturation_rule']['max_p99_ms']:g} ms, {load['saturation_rule']['step_s']:g} s steps)",
        "",
        "| target | deliveries/s | events/s | p50 ms | p99 ms | server CPU % | client CPU % | steps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, title in (("pentad", "Pentad"), ("plain", "plain websockets")):
        found = saturation.get(name)
        if not found:
            continue
        best = found.get("best")
        if best is None:
            lines.append(f"| {title} | - | - | - | - | - | - | {len(found['steps'])} |")
            continue
        disturbed = sum(1 for step in found["steps"] if step.get("disturbed"))
        lines.append(
            f"| {title} | {found['max_deliveries_per_s']:.0f} | {best['published_per_s']:.1f} | "
            f"{_ms(best['p50_ms'])} | {_ms(best['p99_ms'])} | {best['server_cpu_pct']:.0f} | "
            f"{best['client_cpu_pct']:.0f} | {len(found['steps'])} ({disturbed} disturbed) |"
        )
    lines += ["", f"Pentad / plain: {saturation.get('ratio_pentad_to_plain')}"]
    for name in ("pentad", "plain"):
        found = saturation.get(name) or {}
        if found.get("limited_by"):
            lines.append(f"{name}: {found['limited_by']}")
    memory = result["memory"]
    lines += [
        "",
        f"## Memory: {IDLE_CONNECTIONS} idle connections to one server process",
        "",
        "| target | connections | RSS before MiB | RSS after MiB | KB per connection | opened per s "
        "| server CPU ms per connection |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, title in (("pentad", "Pentad (authenticated)"), ("plain", "plain websockets")):
        found = memory[name]
        lines.append(
            f"| {title} | {found['open']} | {_mib(found['rss_before_kb'])} | {_mib(found['rss_after_kb'])} | "
            f"{found['kb_per_connection']:.1f} | {found['opened_per_s']:.0f} | "
            f"{found['server_cpu_ms_per_connection']:.2f} |"
        )
    aim = result["aim"]
    lines += [
        "",
        f"Aim (not checked): {aim['delivered_pct']:g} % delivered at {aim['fanout_deliveries_per_s']} "
        f"deliveries/s, p99 <= {aim['max_p99_ms']:g} ms, saturation >= "
        f"{aim['min_saturation_ratio_to_plain']}x plain, <= {aim['max_kb_per_idle_connection']:g} KB per "
        "idle connection.",
        "",
    ]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def benchmark_duration() -> int:
    raw = os.environ.get("BENCH_DURATION", str(DEFAULT_DURATION))
    try:
        duration = int(raw)
    except ValueError:
        raise BenchmarkError(f"BENCH_DURATION must be a whole number of seconds, not {raw!r}") from None
    if not 1 <= duration <= MAX_DURATION:
        raise BenchmarkError(f"BENCH_DURATION must be between 1 and {MAX_DURATION} seconds, not {duration}")
    return duration


def orchestrate() -> int:
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    try:
        duration = benchmark_duration()
        open_files = raise_open_files_limit()
        if open_files < IDLE_CONNECTIONS + 1000:
            raise BenchmarkError(f"RLIMIT_NOFILE is {open_files}; part 4 needs {IDLE_CONNECTIONS + 1000}")
        if shutil.which("redis-server") is None:
            raise BenchmarkError("redis-server is not installed (apt-get install -y redis-server)")
        load_before = os.getloadavg()[0]
        parts: dict[str, Any] = {"fanout": {}}
        with tempfile.TemporaryDirectory(prefix="pentad-bench-") as work:
            work_dir = Path(work)
            data_dir = work_dir / "pentad"
            api_key = prepare_pentad(data_dir)
            print(f"== fan-out and saturation: plain websockets ({duration} s)", flush=True)
            parts["fanout"]["plain"] = bench_fanout_plain(work_dir, duration)
            print(f"== fan-out and saturation: Pentad ({duration} s)", flush=True)
            parts["fanout"]["pentad"] = bench_fanout_pentad(work_dir, data_dir, api_key, duration)
            print(f"== memory: {IDLE_CONNECTIONS} idle connections", flush=True)
            parts["memory"] = bench_memory(work_dir, data_dir, api_key)
            print("== cross-node: two Pentad nodes through Redis", flush=True)
            parts["cross_node"] = bench_cross_node(work_dir, data_dir, api_key, duration)
    except BenchmarkError as exc:
        print(f"realtime_fanout: could not run: {exc}", file=sys.stderr)
        return 1
    result = report(parts, duration, load_before, open_files)
    RESULTS_DIR.mkdir(exist_ok=True)
    table = markdown(result)
    write_atomically(RESULTS_DIR / "realtime_fanout.json", json.dumps(result, indent=2) + "\n")
    write_atomically(RESULTS_DIR / "realtime_fanout.md", table)
    print("\n" + table, end="")
    return 0


# =====================================================================================================
# The load generator: `realtime_fanout.py loadgen`, configuration on stdin, result on stdout.
# Everything below runs in that process, on CPU 1; every wait in it is bounded.
# =====================================================================================================

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNECT_TIMEOUT = 30.0
OPEN_ALL_TIMEOUT = 240.0
"""Upper bound for opening every connection of a part (10,000 in part 4)."""
REQUEST_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PONG = b'{"op":"pong"}'
loads = orjson.loads
dumps = orjson.dumps


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (every thread), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def core_times() -> dict[str, tuple[int, int, int]]:
    """(busy, process time, total) jiffies of each CPU, from /proc/stat. Process time is user + nice +
    system + steal: what processes (or other virtual machines) used, without interrupt handling, which
    our own loopback traffic causes."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in values[:8])
            total = user + nice + system + idle + iowait + irq + softirq + steal
            times[name[3:]] = (total - idle - iowait, user + nice + system + steal, total)
    return times


def core_busy_pct(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]], index: int = 0
) -> dict[str, float]:
    """% of each CPU busy between two core_times() (index 0: anything; 1: processes only)."""
    busy = {}
    for cpu, now in after.items():
        then = before.get(cpu, (0, 0, 0))
        span = now[2] - then[2]
        busy[cpu] = round(100 * (now[index] - then[index]) / span, 1) if span else 0.0
    return busy


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as a client must send it."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    key = os.urandom(4)
    if not length:
        return header + key
    mask = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(length, "big")
    return header + key + masked


@dataclass
class Stats:
    """Shared by every connection of the load generator; read by the steps."""

    n_low: int = 1 << 62
    """Events numbered below this belong to an earlier step and are not counted."""
    latencies: list[float] = field(default_factory=list)
    last_receive: float = 0.0
    closes: dict[int, int] = field(default_factory=dict)
    other_frames: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    subscribe_retries: int = 0


class RequestRefused(ConnectionError):
    def __init__(self, op: str, error: dict[str, Any]) -> None:
        super().__init__(f"{op} refused: {error}")
        self.code = error.get("code")


SUBSCRIBE_ATTEMPTS = 5


class WsClient(asyncio.Protocol):
    """A minimal WebSocket client: handshake, masked text frames out, unmasked frames in (no extensions,
    no fragmentation from the servers measured here). Incoming events are decoded only to count them, check
    their seq and take the publish-to-receive latency."""

    def __init__(self, stats: Stats, host: str, port: int, path: str) -> None:
        self.stats = stats
        self.latencies = stats.latencies
        self.request_head = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        )
        self.key = base64.b64encode(os.urandom(16))
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.upgraded = False
        self.alive = True
        self.buffer = b""
        self.acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 1
        self.received = 0
        self.last_seq = -1
        self.gaps = 0
        self.close_code: int | None = None

    # --------------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        head = self.request_head + (
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.transport.write(head.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the handshake: {exc!r}"))
        for future in self.acks.values():
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))
        self.acks.clear()

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            self._handshake(data[: end + 4])
            data = data[end + 4 :]
            if not data:
                return
        now = time.monotonic()
        self.stats.last_receive = now
        position = 0
        size = len(data)
        while size - position >= 2:
            first = data[position]
            length = data[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(data[position + 2 : position + 4], "big")
                start = position + 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(data[position + 2 : position + 10], "big")
                start = position + 10
            end = start + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode == 1:
                self._text(data[start:end], now)
            elif opcode == 9:
                self._send(0xA, data[start:end])
            elif opcode == 8:
                self._closed(data[start:end])
            elif opcode != 0xA:
                self.stats.failures.append(f"unexpected frame opcode {opcode}")
            position = end
        if position < size:
            self.buffer = data[position:]

    # --------------------------------------------------------------------- frames

    def _handshake(self, head: bytes) -> None:
        status = head.split(b"\r\n", 1)[0]
        expected = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest())  # noqa: S324 (RFC 6455)
        accepted = any(
            line.lower().startswith(b"sec-websocket-accept:") and line.split(b":", 1)[1].strip() == expected
            for line in head.split(b"\r\n")
        )
        extensions = [line for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-ext")]
        failure = None
        if not status.startswith(b"HTTP/1.1 101") or not accepted:
            failure = f"handshake refused: {status.decode(errors='replace')}"
        elif extensions:
            failure = f"unexpected extension: {extensions[0]!r}"
        if failure is not None:
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(failure))
            self.abort()
            return
        self.upgraded = True
        if not self.opened.done():  # cancelled when another connection failed first
            self.opened.set_result(None)

    def _text(self, payload: bytes, now: float) -> None:
        frame = loads(payload)
        op = frame["op"]
        if op == "event":
            seq = frame["seq"]
            if seq != self.last_seq + 1 and self.last_seq >= 0:
                self.gaps += 1
            self.last_seq = seq
            data = frame["data"]
            if data["n"] >= self.stats.n_low:
                self.received += 1
                self.latencies.append(now - data["t"])
        elif op == "ping":
            self._send(0x1, PONG)
        elif op == "ack":
            future = self.acks.pop(frame["id"], None)
            if future is not None and not future.done():
                future.set_result(frame)
        else:
            others = self.stats.other_frames
            others[op] = others.get(op, 0) + 1

    def _closed(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self.close_code = code
        self.stats.closes[code] = self.stats.closes.get(code, 0) + 1
        self.alive = False
        with contextlib.suppress(Exception):
            self._send(0x8, payload[:2])
        if self.transport is not None:
            self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, payload: bytes) -> None:
        self._send(0x1, payload)

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send `op` with a fresh id; the acknowledgement (which must say ok)."""
        request_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[request_id] = future
        self.send_text(dumps({"op": op, "id": request_id, **fields}))
        async with asyncio.timeout(REQUEST_TIMEOUT):
            ack = await future
        if not ack.get("ok"):
            raise RequestRefused(op, ack.get("error") or {})
        return ack

    def abort(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()


async def open_client(
    stats: Stats, host: str, port: int, path: str, token: str | None, topic: str | None
) -> WsClient:
    """A connected (authenticated, subscribed, when asked) client."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT):
        _, client = await loop.create_connection(lambda: WsClient(stats, host, port, path), host, port)
        try:
            await client.opened
            if token is not None:
                await client.request("auth", token=token)
            if topic is not None:
                for attempt in range(1, SUBSCRIBE_ATTEMPTS + 1):
                    try:
                        await client.request("subscribe", topic=topic)
                        break
                    except RequestRefused as exc:
                        # `unavailable`: the broker could not take the subscription now; the protocol
                        # says to try again shortly, as a real client would (counted in the results).
                        if exc.code != "unavailable" or attempt == SUBSCRIBE_ATTEMPTS:
                            raise
                        stats.subscribe_retries += 1
                        await asyncio.sleep(0.2 * attempt)
        except BaseException:
            client.abort()
            raise
    return client


async def open_clients(config: dict[str, Any], stats: Stats, count: int, topic: str | None) -> list[WsClient]:
    """`count` clients, `connect_concurrency` at a time; fails on the first that cannot connect."""
    semaphore = asyncio.Semaphore(config["connect_concurrency"])
    host, port, path, token = config["host"], config["ws_port"], config["ws_path"], config["token"]

    async def one() -> WsClient:
        async with semaphore:
            return await open_client(stats, host, port, path, token, topic)

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    try:
        async with asyncio.timeout(OPEN_ALL_TIMEOUT):
            return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().abort()
        raise


# ----------------------------------------------------------------------------- publishers


class HttpPublisher:
    """Publishes through Pentad's HTTP route on a few keep-alive connections (open loop: each publish is
    a task; when every connection is busy the next waits, and the achieved rate shows it)."""

    POOL = 16

    def __init__(self, host: str, port: int, path: str, token: str, text: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self.text = text
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.connections: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.published = 0
        self.errors: list[str] = []
        self.request_seconds: list[float] = []

    async def open(self) -> None:
        for _ in range(self.POOL):
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(self.host, self.port)
            self.connections.append(writer)
            self.free.put_nowait((reader, writer))

    def launch(self, n: int) -> None:
        task = asyncio.ensure_future(self._publish(n))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _publish(self, n: int) -> None:
        reader, writer = await self.free.get()
        try:
            for attempt in (1, 2):
                try:
                    await self._request(n, reader, writer)
                    break
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    writer.close()
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                    self.connections.append(writer)
                    # The server closes keep-alive connections idle for 5 s (uvicorn's default): a request
                    # on one fails before any answer, and goes again on a new connection. Anything else
                    # (a timeout: the server may have published it) is an error, never sent twice.
                    closed = isinstance(exc, ConnectionError | asyncio.IncompleteReadError)
                    if attempt == 1 and closed:
                        continue
                    if len(self.errors) < 5:
                        self.errors.append(repr(exc))
                    break
        finally:
            self.free.put_nowait((reader, writer))

    async def _request(self, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = time.monotonic()
        body = dumps({"n": n, "t": sent, "text": self.text})
        writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        async with asyncio.timeout(REQUEST_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length) if length else b""
        status = int(head[9:12])
        self.request_seconds.append(time.monotonic() - sent)
        if status == 200:
            self.published += 1
        elif len(self.errors) < 5:
            self.errors.append(f"HTTP {status}: {answer[:300]!r}")

    async def settle(self, limit: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=limit)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.connections:
            writer.close()


class WsPublisher:
    """Publishes to the plain server: one text frame per event on a WebSocket to /publish."""

    def __init__(self, stats: Stats, host: str, port: int, path: str, text: str) -> None:
        self.stats, self.host, self.port, self.path = stats, host, port, path
        self.text = text
        self.client: WsClient | None = None
        self.published = 0
        self.errors: list[str] = []
        self.request_seconds: list[float] = []

    async def open(self) -> None:
        self.client = await open_client(self.stats, self.host, self.port, self.path, None, None)

    def launch(self, n: int) -> None:
        assert self.client is not None
        if not self.client.alive:
            if len(self.errors) < 5:
                self.errors.append("the publishing connection was closed")
            return
        self.client.send_text(dumps({"n": n, "t": time.monotonic(), "text": self.text}))
        self.published += 1

    async def settle(self, limit: float) -> None:
        return None

    def close(self) -> None:
        if self.client is not None:
            self.client.abort()


Publisher = HttpPublisher | WsPublisher


# ----------------------------------------------------------------------------- steps


def percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Load:
    config: dict[str, Any]
    stats: Stats
    subscribers: list[WsClient]
    publisher: Publisher
    next_n: int = 0

    def alive(self) -> list[WsClient]:
        return [client for client in self.subscribers if client.alive]


async def run_step(load: Load, rate: float, seconds: float, drain: float) -> dict[str, Any]:
    """Publish `rate` events/s for `seconds`, wait up to `drain` s for the deliveries; the figures."""
    stats, publisher = load.stats, load.publisher
    pids = load.config["server_pids"]
    subscribers = load.alive()
    for client in load.subscribers:
        client.received = 0
        client.gaps = 0
    stats.latencies.clear()
    stats.n_low = load.next_n
    closes_before = sum(stats.closes.values())
    published_before = publisher.published
    count = max(1, round(rate * seconds))
    server_cpu_before = [process_cpu_seconds(pid) for pid in pids]
    own_cpu_before = own_cpu_seconds()
    cores_before = core_times()
    publisher.request_seconds.clear()
    started = time.monotonic()
    behind = 0.0
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind = max(behind, -delay)
        publisher.launch(load.next_n)
        load.next_n += 1
    await publisher.settle(REQUEST_TIMEOUT)
    published_at = time.monotonic()
    published = publisher.published - published_before
    expected = published * len(subscribers)
    deadline = published_at + drain
    while time.monotonic() < deadline:
        if sum(client.received for client in subscribers) >= expected:
            break
        await asyncio.sleep(0.01)
    received = sum(client.received for client in subscribers)
    busy_until = max(published_at, stats.last_receive if received else published_at)
    busy = max(busy_until - started, 1e-9)
    server_seconds = [
        process_cpu_seconds(pid) - before for pid, before in zip(pids, server_cpu_before, strict=True)
    ]
    own_seconds = own_cpu_seconds() - own_cpu_before
    server_cpu = [round(100 * used / busy, 1) for used in server_seconds]
    own_cpu = round(100 * own_seconds / busy, 1)
    # Busy % of every core over the whole step, whoever used it: the server's and the load generator's
    # core well above their own CPU % means something else ran there (a shared, noisy machine).
    cores_after = core_times()
    cores = core_busy_pct(cores_before, cores_after)
    processes = core_busy_pct(cores_before, cores_after, 1)
    window = max(time.monotonic() - started, 1e-9)
    others = {}
    for role, cpu, used in (
        ("server_core", load.config.get("server_cpu"), sum(server_seconds)),
        ("client_core", load.config.get("client_cpu"), own_seconds),
    ):
        if cpu is not None and cpu in processes:
            others[role] = round(max(0.0, processes[cpu] - 100 * used / window), 1)
    requests = sorted(publisher.request_seconds)
    publish_seconds = max(published_at - started, count / rate)
    ordered = sorted(stats.latencies)
    stats.n_low = 1 << 62
    return {
        "rate_target": round(rate, 2),
        "seconds": round(seconds, 2),
        "published": published,
        "published_per_s": round(published / publish_seconds, 2),
        "publisher_behind_max_ms": round(behind * 1000, 1),
        "publish_errors": list(publisher.errors),
        "subscribers": len(subscribers),
        "expected": expected,
        "received": received,
        "delivered_pct": round(100 * received / expected, 3) if expected else 0.0,
        "full_subscribers": sum(1 for client in subscribers if client.received >= published),
        "min_per_subscriber": min((client.received for client in subscribers), default=0),
        "seq_gaps": sum(client.gaps for client in subscribers),
        "closed_during_step": sum(stats.closes.values()) - closes_before,
        "deliveries_per_s": round(received / publish_seconds, 1),
        "p50_ms": _round_ms(percentile(ordered, 0.50)),
        "p90_ms": _round_ms(percentile(ordered, 0.90)),
        "p99_ms": _round_ms(percentile(ordered, 0.99)),
        "max_ms": _round_ms(ordered[-1] if ordered else None),
        "server_cpu_pct": server_cpu[0],
        "server_cpu_pct_each": server_cpu,
        "server_cpu_s": round(server_seconds[0], 4),
        "server_rss_kb": process_rss_kb(pids[0]),
        "client_cpu_pct": own_cpu,
        "core_busy_pct": cores,
        "others_pct": others,
        "publish_request_p50_ms": _round_ms(percentile(requests, 0.50)),
        "publish_request_p99_ms": _round_ms(percentile(requests, 0.99)),
        "publish_request_max_ms": _round_ms(requests[-1] if requests else None),
    }


def _round_ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def quiesce(load: Load, limit: float) -> None:
    """Wait (at most `limit` s) until nothing has arrived for half a second: a step's leftovers are in."""
    deadline = time.monotonic() + limit
    while True:
        now = time.monotonic()
        if now >= deadline or now - load.stats.last_receive >= 0.5:
            return
        await asyncio.sleep(0.05)


def step_verdict(step: dict[str, Any], rule: dict[str, Any]) -> str | None:
    """Why the step does not count as sustained, or None."""
    if step["closed_during_step"]:
        return f"{step['closed_during_step']} subscribers closed by the server"
    if step["delivered_pct"] < rule["min_delivered_pct"]:
        return f"delivered {step['delivered_pct']} %"
    if step["p99_ms"] is None or step["p99_ms"] > rule["max_p99_ms"]:
        return f"p99 {step['p99_ms']} ms"
    if step["published_per_s"] < rule["min_publish_ratio"] * step["rate_target"]:
        return f"published {step['published_per_s']}/s of {step['rate_target']}/s"
    return None


async def saturate(load: Load, base: dict[str, Any]) -> dict[str, Any]:
    """Raise the rate until a step is not sustained, then narrow down between the last good and first bad.

    Starts near the rate the fan-out run's server CPU suggests (rate x 100 / CPU %), so few steps are
    spent far below the limit."""
    rule = load.config["saturation"]
    rate0 = load.config["rate"]
    estimate = rate0 * 100 / max(base["server_cpu_pct"], 1.0)
    rate = max(rate0, 0.7 * estimate)
    good: float | None = None
    bad: float | None = None
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    retries = 0
    deadline = time.monotonic() + rule["budget_s"]
    while len(steps) < rule["max_steps"]:
        if time.monotonic() + rule["step_s"] + rule["drain_s"] > deadline:
            break
        step = await run_step(load, rate, rule["step_s"], rule["drain_s"])
        verdict = step_verdict(step, rule)
        disturbed = max(step["others_pct"].values(), default=0.0) > rule["disturbed_pct"]
        step["sustained"] = verdict is None
        step["why_not"] = verdict
        step["disturbed"] = disturbed
        step["client_saturated"] = step["client_cpu_pct"] >= rule["client_saturated_pct"]
        steps.append(step)
        log(
            f"  {rate:8.1f} ev/s: {step['deliveries_per_s']:9.0f} deliveries/s, "
            f"delivered {step['delivered_pct']:7.3f} %, p99 {step['p99_ms']} ms, "
            f"server {step['server_cpu_pct']:.0f} %, client {step['client_cpu_pct']:.0f} %, "
            f"others {step['others_pct']}" + (f"  ({verdict})" if verdict else "")
        )
        if verdict is not None and disturbed and retries < rule["disturbed_retries"]:
            # Another process took a share of a core during this step: measure the same rate again.
            retries += 1
            await quiesce(load, 10.0)
            await asyncio.sleep(1.0)
            continue
        retries = 0
        if step["closed_during_step"]:
            break
        if verdict is None:
            good = rate if good is None else max(good, rate)
            if best is None or step["deliveries_per_s"] > best["deliveries_per_s"]:
                best = step
        else:
            bad = rate if bad is None else min(bad, rate)
        await quiesce(load, 10.0)
        if good is not None and bad is not None:
            if bad / good <= rule["resolution"]:
                break
            rate = (good * bad) ** 0.5
        elif bad is not None:
            rate = bad / rule["growth"] ** 2
            if rate < rate0 / 4:
                break
        else:
            rate = rate * rule["growth"]
    limited_by = None
    if best is not None:
        above = [s for s in steps if not s["sustained"] and s["rate_target"] > best["rate_target"]]
        calm = [s for s in above if not s["disturbed"]]
        above = calm or above
        limiting = min(above, key=lambda s: s["rate_target"], default=None)
        if limiting is not None and limiting["client_saturated"]:
            limited_by = (
                f"the load generator was at {limiting['client_cpu_pct']:.0f} % CPU in the first step not "
                "sustained: the figure is a lower bound of the server's capacity"
            )
        elif limiting is not None and limiting["disturbed"]:
            limited_by = (
                f"other processes used {limiting['others_pct']} % of the cores in the first step not "
                f"sustained ({limiting['why_not']}): a noisy machine; the figure is a lower bound"
            )
        elif limiting is not None:
            limited_by = f"server CPU {limiting['server_cpu_pct']:.0f} % ({limiting['why_not']})"
        else:
            limited_by = "no step failed within the time budget: the figure is a lower bound"
    return {
        "max_deliveries_per_s": best["deliveries_per_s"] if best else None,
        "max_events_per_s": best["published_per_s"] if best else None,
        "best": best,
        "limited_by": limited_by,
        "steps": steps,
    }


async def fanout_mode(config: dict[str, Any]) -> dict[str, Any]:
    stats = Stats()
    text = "x" * config["text_bytes"]
    started = time.monotonic()
    subscribers = await open_clients(config, stats, config["subscribers"], config["topic"])
    opened = time.monotonic() - started
    log(f"{len(subscribers)} subscribers connected in {opened:.1f} s")
    spec = config["publish"]
    publisher: Publisher
    if spec["kind"] == "http":
        publisher = HttpPublisher(config["host"], spec["port"], spec["path"], spec["token"], text)
    else:
        publisher = WsPublisher(stats, config["host"], spec["port"], spec["path"], text)
    load = Load(config, stats, subscribers, publisher)
    try:
        await publisher.open()
        rate = config["rate"]
        await run_step(load, rate, config["warmup_s"], config["drain_s"])
        await quiesce(load, 5.0)
        fanout = await run_step(load, rate, config["duration_s"], config["drain_s"])
        log(
            f"fan-out: delivered {fanout['delivered_pct']} %, p50 {fanout['p50_ms']} ms, "
            f"p99 {fanout['p99_ms']} ms, server CPU {fanout['server_cpu_pct']} %, "
            f"client CPU {fanout['client_cpu_pct']} %"
        )
        await quiesce(load, 5.0)
        saturation = await saturate(load, fanout) if config["saturation"] else None
    finally:
        publisher.close()
        for client in subscribers:
            client.abort()
    return {
        "fanout": fanout,
        "saturation": saturation,
        "connect": {
            "subscribers": len(subscribers),
            "seconds": round(opened, 2),
            "subscribe_retries": stats.subscribe_retries,
        },
        "closes": {str(code): count for code, count in stats.closes.items()},
        "other_frames": stats.other_frames,
        "failures": stats.failures[:10],
    }


async def idle_mode(config: dict[str, Any]) -> dict[str, Any]:
    """Open `connections` authenticated idle connections; the server's RSS before and after."""
    stats = Stats()
    pid = config["server_pids"][0]
    warm = await open_clients(config, stats, config["warmup_connections"], None)
    for client in warm:
        client.abort()
    await asyncio.sleep(config["settle_s"])
    rss_before = process_rss_kb(pid)
    cpu_before = process_cpu_seconds(pid)
    started = time.monotonic()
    clients = await open_clients(config, stats, config["connections"], None)
    opened = time.monotonic() - started
    cpu_open = process_cpu_seconds(pid) - cpu_before
    try:
        await asyncio.sleep(config["settle_s"])
        rss_after = process_rss_kb(pid)
        still_open = sum(1 for client in clients if client.alive)
    finally:
        for client in clients:
            client.abort()
    count = len(clients)
    log(
        f"{count} connections in {opened:.1f} s: RSS {rss_before} -> {rss_after} KB, "
        f"{(rss_after - rss_before) / count:.1f} KB each"
    )
    return {
        "open": count,
        "still_open_after_settle": still_open,
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "kb_per_connection": round((rss_after - rss_before) / count, 2),
        "open_seconds": round(opened, 2),
        "opened_per_s": round(count / opened, 1),
        "server_cpu_ms_per_connection": round(1000 * cpu_open / count, 3),
        "closes": {str(code): n for code, n in stats.closes.items()},
    }


def loadgen() -> int:
    """Entry point of the load generator process."""
    import uvloop

    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    config = json.loads(sys.stdin.read())
    mode = {"fanout": fanout_mode, "idle": idle_mode}[config["mode"]]
    try:
        result = uvloop.run(mode(config))
    except Exception as exc:  # reported to the orchestrator, which fails the benchmark with it
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print("LOADGEN_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(loadgen() if sys.argv[1:] == ["loadgen"] else orchestrate())
