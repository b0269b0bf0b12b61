"""Authenticated JSON GET through Pentad's full stack, beside bare Starlette and plain FastAPI, in one run.

Four targets, each loaded with `wrk -t1 -c200 --latency` after a warm-up (its capacity):

* bare:            bench/bare_app.py under uvicorn (uvloop, httptools, 1 worker, access log off)
* fastapi:         bench/fastapi_app.py the same way: FastAPI with Pentad's number of routers, no middleware
* pentad_api_key:  `pentad serve`, GET /api/me with `Authorization: Bearer pak_...`
* pentad_jwt:      the same server, GET /api/me with an access token from POST /api/auth/login

Flat out, latency is queueing (and wrk's coordinated-omission correction turns a few stalls into seconds),
so the FastAPI and Pentad targets are then also loaded open loop at a fixed rate below saturation
(FIXED_RATE_SHARE of the capacity just measured, for the same duration) by bench/chat.py's load generator:
request i is due at start + i / rate whatever happened before, and its latency counts from then.

The server runs on CPU 0 and the load on CPU 1, so the two never compete for a core. Pentad gets a fresh
data directory and SQLite database under a temporary folder, set up through the `pentad` CLI. Its rate
limits stay on (their cost is part of every request) with limits far above the load, so none refuses it.

Writes bench/results/http_auth.json and bench/results/http_auth.md and prints the table. The figures are
reported, never judged: the exit status says only whether the benchmark could run.

Environment: BENCH_DURATION (seconds per measured run, default 10).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import chat
from realtime_fanout import BenchmarkError as LoadgenError

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk_report.lua"
VENV_BIN = Path(sys.executable).parent

HOST = "127.0.0.1"
PATH = "/api/me"
CONNECTIONS = 200
WARMUP_SECONDS = 2
MAX_DURATION = 300
SERVER_CPU = "0"
CLIENT_CPU = "1"
STARTUP_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
EMAIL = "bench@example.com"
FIXED_RATE_SHARE = 0.5
FIXED_RATE_CONNECTIONS = 64
FIXED_RATE_WARMUP_SECONDS = 1.0
FIXED_RATE_TARGETS = ("fastapi", "pentad_api_key", "pentad_jwt")
# The aim, recorded next to the figures so a reader can compare; nothing here checks it.
AIM = {
    "min_ratio_to_fastapi": 0.7,
    "max_p99_ms_at_half_capacity": 100.0,
    "max_ms_below_capacity": 1000.0,
}

TARGET_TITLES = {
    "bare": "bare Starlette",
    "fastapi": "plain FastAPI",
    "pentad_api_key": "Pentad, API key",
    "pentad_jwt": "Pentad, JWT access token",
}


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""


def _terminate_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so every `finally` (which stops the servers) still runs.
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def pinned(cpu: str, command: Sequence[str]) -> list[str]:
    """`command` run on one CPU when the machine has CPUs 0 and 1 to give, else unchanged."""
    if can_pin():
        return ["taskset", "-c", cpu, *command]
    return list(command)


def can_pin() -> bool:
    return shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)


def request(
    port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        all_headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Server:
    """A server process on CPU 0, its output in a log file, stopped however the benchmark ends."""

    name: str
    command: list[str]
    port: int
    log_path: Path
    env: dict[str, str]
    cwd: Path
    pid: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        with self.log_path.open("wb") as log:
            process = subprocess.Popen(
                pinned(SERVER_CPU, self.command),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.pid = process.pid
            try:
                self._wait_until_listening(process)
                yield self
            finally:
                _stop(process)

    def _wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchmarkError(f"{self.name} exited with {process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                request(self.port, "GET", "/")
                return
            time.sleep(0.2)
        raise BenchmarkError(f"{self.name} did not answer within {STARTUP_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def run_wrk(port: int, authorization: str | None, duration: int) -> dict[str, Any]:
    """One wrk run; the figures come from the summary line wrk_report.lua prints."""
    env = dict(os.environ)
    env["BENCH_AUTHORIZATION"] = authorization or ""
    command = pinned(
        CLIENT_CPU,
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(WRK_SCRIPT),
            f"http://{HOST}:{port}{PATH}",
        ],
    )
    try:
        finished = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"wrk did not finish within {duration + 60} s") from None
    if finished.returncode != 0:
        raise BenchmarkError(f"wrk failed ({finished.returncode}):\n{finished.stderr or finished.stdout}")
    for line in finished.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return _figures(json.loads(line.removeprefix("BENCH_RESULT ")))
    raise BenchmarkError(f"wrk printed no BENCH_RESULT line:\n{finished.stdout}")


def _figures(raw: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1_000_000
    latency = raw["latency_us"]
    errors = raw["errors"]
    return {
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p90_ms": round(latency["p90"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
        "max_ms": round(latency["max"] / 1000, 2),
        "mean_ms": round(latency["mean"] / 1000, 2),
        "requests": raw["requests"],
        "duration_s": round(seconds, 3),
        "non_2xx": errors["status"],
        "socket_errors": {name: errors[name] for name in ("connect", "read", "write", "timeout")},
    }


def measure(name: str, server: Server, authorization: str | None, duration: int) -> dict[str, Any]:
    """Check one request succeeds, warm the server up, load it flat out, then (for the targets the aim
    compares) at a fixed share of the capacity found."""
    port = server.port
    headers = {"Authorization": authorization} if authorization else {}
    status, body = request(port, "GET", PATH, headers=headers)
    if status != 200:
        raise BenchmarkError(f"{name}: GET {PATH} answered {status} before the load: {body[:300]!r}")
    print(f"  {name}: warming up {WARMUP_SECONDS} s, measuring {duration} s", flush=True)
    run_wrk(port, authorization, WARMUP_SECONDS)
    figures = run_wrk(port, authorization, duration)
    print(
        f"  {name}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms",
        flush=True,
    )
    if figures["non_2xx"] or any(figures["socket_errors"].values()):
        print(
            f"  {name}: WARNING {figures['non_2xx']} non-2xx responses, "
            f"socket errors {figures['socket_errors']}",
            flush=True,
        )
    if name in FIXED_RATE_TARGETS:
        rate = figures["rps"] * FIXED_RATE_SHARE
        figures["fixed_rate"] = fixed_rate(name, server, authorization, rate, duration)
    return figures


def fixed_rate(
    name: str, server: Server, authorization: str | None, rate: float, duration: int
) -> dict[str, Any]:
    """Open-loop load at `rate` requests/s for `duration` s (after a short warm-up at the same rate):
    latency from each request's due time, so a stall shows in full instead of slowing the load down."""
    rate = max(1.0, round(rate))
    token = authorization.removeprefix("Bearer ") if authorization else None
    config = {
        "mode": "http",
        "host": HOST,
        "port": server.port,
        "requests": [chat.request("GET", PATH, token, label="get")],
        "expect": [200],
        "warmup": int(rate * FIXED_RATE_WARMUP_SECONDS),
        "count": int(rate * duration),
        "rate": rate,
        "connections": FIXED_RATE_CONNECTIONS,
        "server_pid": server.pid,
    }
    print(f"  {name}: {rate:.0f} req/s open loop for {duration} s", flush=True)
    budget = FIXED_RATE_WARMUP_SECONDS + duration + chat.OVERLOAD_WAIT_SECONDS + chat.LOADGEN_MARGIN_SECONDS
    try:
        with chat.loadgens([config]) as (process,):
            raw = process.expect("RESULT", budget)
    except LoadgenError as exc:
        raise BenchmarkError(f"{name}: fixed-rate load: {exc}") from None
    figures = {
        "rate_target": rate,
        "achieved_rate": raw["achieved_rate"],
        "completed_per_s": raw["completed_per_s"],
        **chat.percentiles(raw["latencies_ms"].get("get", [])),
        "ok": raw["ok"],
        "failed": raw["failed"],
        "behind_max_ms": raw["behind_max_ms"],
        "server_cpu_pct": raw["server_cpu_pct"],
        "client_cpu_pct": raw["client_cpu_pct"],
    }
    print(
        f"  {name}: at {rate:.0f} req/s: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms, {figures['failed']} failed",
        flush=True,
    )
    return figures


def uvicorn_command(port: int, module: str) -> list[str]:
    # The uvicorn options `pentad serve` passes (see pentad.cli.serve), so only the application differs.
    return [
        str(VENV_BIN / "uvicorn"),
        "--app-dir",
        str(BENCH_DIR),
        f"{module}:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-proxy-headers",
        "--no-server-header",
        "--log-level",
        "warning",
    ]


def pentad_env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env.update(
        {
            "PENTAD_DATA_DIR": str(data_dir),
            "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
            # Limits stay on (their cost is part of the stack) but high enough never to refuse the load.
            "PENTAD_RATELIMIT__PER_ADDRESS": "100000000/minute",
            "PENTAD_RATELIMIT__PER_PRINCIPAL": "100000000/minute",
            "PENTAD_LOG__LEVEL": "WARNING",
        }
    )
    return env


def pentad_cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    command = [str(VENV_BIN / "pentad"), *args]
    shown = " ".join(args[:2])  # the sub-command only: later arguments may hold a password
    try:
        finished = subprocess.run(
            command, env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise BenchmarkError(f"{command[0]} not found; run `make install`") from None
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


def login(port: int, password: str) -> str:
    status, body = request(port, "POST", "/api/auth/login", body={"email": EMAIL, "password": password})
    if status != 200:
        raise BenchmarkError(f"POST /api/auth/login answered {status}: {body[:300]!r}")
    token: str = json.loads(body)["access_token"]
    return token


def bench_baseline(name: str, module: str, work_dir: Path, duration: int) -> dict[str, Any]:
    port = free_port()
    command = uvicorn_command(port, module)
    server = Server(TARGET_TITLES[name], command, port, work_dir / f"{name}.log", dict(os.environ), work_dir)
    with server.running():
        return measure(name, server, None, duration)


def bench_pentad(work_dir: Path, duration: int) -> dict[str, dict[str, Any]]:
    data_dir = work_dir / "pentad"
    data_dir.mkdir()
    env = pentad_env(data_dir)
    password = secrets.token_urlsafe(24)
    # Run from the data directory so a developer's ./.env cannot leak into the measured configuration.
    pentad_cli(["migrate"], env, data_dir)
    pentad_cli(
        ["user", "create", "--email", EMAIL, "--password", password, "--role", "member"], env, data_dir
    )
    api_key = api_key_from(
        pentad_cli(["apikey", "create", "--email", EMAIL, "--name", "bench"], env, data_dir)
    )

    port = free_port()
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    server = Server("pentad serve", command, port, work_dir / "pentad.log", env, data_dir)
    with server.running():
        results = {"pentad_api_key": measure("pentad_api_key", server, f"Bearer {api_key}", duration)}
        # Log in only now, so the access token is fresh for the whole measured run.
        access_token = login(port, password)
        results["pentad_jwt"] = measure("pentad_jwt", server, f"Bearer {access_token}", duration)
    return results


def wrk_version() -> str:
    finished = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False, timeout=10)
    first_line = (finished.stdout or finished.stderr).splitlines()[:1]
    return first_line[0].split(" [")[0].strip() if first_line else "wrk"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ratio(target: dict[str, Any], baseline: dict[str, Any]) -> float:
    return round(target["rps"] / baseline["rps"], 3) if baseline["rps"] else 0.0


def report(targets: dict[str, dict[str, Any]], duration: int, load_before: float) -> dict[str, Any]:
    bare, fastapi = targets["bare"], targets["fastapi"]
    return {
        "benchmark": "http_auth",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Anything else running skews the figures; a 1-minute load well above 0 says the run was shared.
            "load_average_1m_before": round(load_before, 2),
        },
        "load": {
            "tool": wrk_version(),
            "threads": 1,
            "connections": CONNECTIONS,
            "duration_s": duration,
            "warmup_s": WARMUP_SECONDS,
            "path": PATH,
            "server_cpu": SERVER_CPU if can_pin() else None,
            "client_cpu": CLIENT_CPU if can_pin() else None,
            "fixed_rate_share_of_capacity": FIXED_RATE_SHARE,
            "fixed_rate_connections": FIXED_RATE_CONNECTIONS,
        },
        "targets": targets,
        "ratios": {
            "api_key": ratio(targets["pentad_api_key"], bare),
            "jwt": ratio(targets["pentad_jwt"], bare),
            "fastapi": ratio(fastapi, bare),
            "api_key_to_fastapi": ratio(targets["pentad_api_key"], fastapi),
            "jwt_to_fastapi": ratio(targets["pentad_jwt"], fastapi),
        },
        "aim": AIM,
    }


def markdown(result: dict[str, Any]) -> str:
    load = result["load"]
    pinning = (
        f"server on CPU {load['server_cpu']}, wrk on CPU {load['client_cpu']}"
        if load["server_cpu"] is not None
        else "not pinned (fewer than 2 CPUs)"
    )
    lines = [
        "# http_auth: authenticated GET /api/me",
        "",
        f"{result['date']} · {result['host']['cpu_count']} CPUs ({result['host']['cpu_model']}) · "
        f"{load['tool']} -t{load['threads']} -c{load['connections']} -d{load['duration_s']}s "
        f"after {load['warmup_s']} s warm-up · {pinning} · "
        f"load average before: {result['host']['load_average_1m_before']}",
        "",
        "Flat out (capacity):",
        "",
        "| target | requests/s | p50 ms | p99 ms | vs bare | vs FastAPI | non-2xx | socket errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bare, fastapi = result["targets"]["bare"], result["targets"]["fastapi"]
    for name, figures in result["targets"].items():
        errors = sum(figures["socket_errors"].values())
        lines.append(
            f"| {TARGET_TITLES[name]} | {figures['rps']:.0f} | {figures['p50_ms']:.2f} | "
            f"{figures['p99_ms']:.2f} | {ratio(figures, bare):.2f} | {ratio(figures, fastapi):.2f} | "
            f"{figures['non_2xx']} | {errors} |"
        )
    lines += [
        "",
        f"Open loop at {load['fixed_rate_share_of_capacity']:.0%} of each target's capacity above "
        f"(latency from the due time; {load['fixed_rate_connections']} connections):",
        "",
        "| target | offered req/s | achieved req/s | p50 ms | p99 ms | max ms | failed | server CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in result["targets"].items():
        fixed = figures.get("fixed_rate")
        if fixed is None:
            continue
        lines.append(
            f"| {TARGET_TITLES[name]} | {fixed['rate_target']:.0f} | {fixed['achieved_rate'] or 0:.0f} | "
            f"{fixed['p50_ms']} | {fixed['p99_ms']} | {fixed['max_ms']} | {fixed['failed']} | "
            f"{fixed['server_cpu_pct']} |"
        )
    aim = result["aim"]
    lines += [
        "",
        f"Aim (not checked): Pentad >= {aim['min_ratio_to_fastapi']}x plain FastAPI throughput, "
        f"p99 < {aim['max_p99_ms_at_half_capacity']:g} ms at half its capacity, "
        f"no request slower than {aim['max_ms_below_capacity']:g} ms below capacity.",
        "",
    ]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def benchmark_duration() -> int:
    raw = os.environ.get("BENCH_DURATION", "10")
    try:
        duration = int(raw)
    except ValueError:
        raise BenchmarkError(f"BENCH_DURATION must be a whole number of seconds, not {raw!r}") from None
    # The JWT target's access token must outlive its warm-up and run (PENTAD_AUTH__ACCESS_TOKEN_TTL, 600 s).
    if not 1 <= duration <= MAX_DURATION:
        raise BenchmarkError(f"BENCH_DURATION must be between 1 and {MAX_DURATION} seconds, not {duration}")
    return duration


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    try:
        duration = benchmark_duration()
        if shutil.which("wrk") is None:
            raise BenchmarkError("wrk is not installed (apt-get install -y wrk)")
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="pentad-bench-") as work:
            work_dir = Path(work)
            targets = {
                "bare": bench_baseline("bare", "bare_app", work_dir, duration),
                "fastapi": bench_baseline("fastapi", "fastapi_app", work_dir, duration),
            }
            targets.update(bench_pentad(work_dir, duration))
    except BenchmarkError as exc:
        print(f"http_auth: could not run: {exc}", file=sys.stderr)
        return 1
    result = report(targets, duration, load_before)
    RESULTS_DIR.mkdir(exist_ok=True)
    table = markdown(result)
    write_atomically(RESULTS_DIR / "http_auth.json", json.dumps(result, indent=2) + "\n")
    write_atomically(RESULTS_DIR / "http_auth.md", table)
    print("\n" + table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
