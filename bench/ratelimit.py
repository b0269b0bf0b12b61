"""The rate limiter's cost per call: `limits`' async MemoryStorage (what Pentad used before) against
Pentad's own counters, at 1, 1,000 and 10,000 active keys, in one run on one event loop.

A call is what one `enforce` costs a request: for `limits`, `hit` plus `get_window_stats` through its
SlidingWindowCounterRateLimiter (the two calls the old limiter made); for Pentad, `RateLimiter.enforce`.
Before measuring, every key gets one hit; then the calls go round the keys. After each call the loop runs
once (`await asyncio.sleep(0)`), as it would between two requests of a server, so work a storage leaves
to the loop (MemoryStorage's expiry task walks every key after each hit) is counted too; that pause alone
is measured as well (`loop_pause_us`) and is included in every figure.

When `redis-server` is installed, the same comparison runs against a redis-server of our own on a free
loopback port (no persistence), at 1 key: `limits`' RedisStorage against Pentad's one-script hit.

Writes bench/results/ratelimit.json and bench/results/ratelimit.md. Reported, never judged.
Environment: BENCH_RATELIMIT_SECONDS (time per measurement, default 1.0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio
from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from pentad.core.config import RateLimitSettings
from pentad.core.ratelimit import RateLimiter

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
KEY_COUNTS = (1, 1_000, 10_000)
LIMIT = "1000000/minute"
MIN_CALLS = 200
Call = Callable[[str], Awaitable[None]]


class BenchmarkError(Exception):
    """The benchmark could not run; the message says why."""


def limits_call(storage: Storage) -> Call:
    """One hit as the old limiter made it: hit, then the window's stats for the headers."""
    strategy = SlidingWindowCounterRateLimiter(storage)
    item = parse(LIMIT)

    async def call(key: str) -> None:
        await strategy.hit(item, "address", key)
        await strategy.get_window_stats(item, "address", key)

    return call


def pentad_call(limiter: RateLimiter) -> Call:
    async def call(key: str) -> None:
        await limiter.enforce(LIMIT, "address", key)

    return call


async def loop_pause(seconds: float) -> float:
    """Microseconds one `await asyncio.sleep(0)` costs on its own."""
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds / 4:
        for _ in range(1000):
            await asyncio.sleep(0)
        calls += 1000
    return elapsed / calls * 1e6


async def per_call(call: Call, key_count: int, seconds: float) -> dict[str, float]:
    """Microseconds per call (wall clock and this process' CPU, every thread) with `key_count` keys."""
    keys = [f"2001:db8:{index:x}::/64" for index in range(key_count)]
    for key in keys:
        await call(key)
    await asyncio.sleep(0)
    calls = 0
    cpu_before, started = time.process_time(), time.perf_counter()
    while calls < MIN_CALLS or time.perf_counter() - started < seconds:
        for _ in range(50):
            await call(keys[calls % key_count])
            await asyncio.sleep(0)
            calls += 1
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    return {"us_per_call": round(wall / calls * 1e6, 2), "cpu_us_per_call": round(cpu / calls * 1e6, 2)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throw-away redis-server on a free loopback port; None when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pentad-bench-") as work:
        command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(
            [*command, "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BenchmarkError("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://{HOST}:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def ratios(old: dict[str, float], ours: dict[str, float]) -> dict[str, float]:
    return {
        "ratio_limits_to_pentad": round(old["us_per_call"] / ours["us_per_call"], 2),
        "cpu_ratio_limits_to_pentad": round(old["cpu_us_per_call"] / ours["cpu_us_per_call"], 2),
    }


async def measure(seconds: float, redis_url: str | None) -> dict[str, Any]:
    pause = await loop_pause(seconds)
    memory: dict[str, Any] = {}
    for key_count in KEY_COUNTS:
        print(f"  memory, {key_count} keys", file=sys.stderr, flush=True)
        old = await per_call(limits_call(MemoryStorage()), key_count, seconds)
        limiter = RateLimiter(RateLimitSettings())
        ours = await per_call(pentad_call(limiter), key_count, seconds)
        await limiter.close()
        memory[str(key_count)] = {"limits_memory": old, "pentad": ours, **ratios(old, ours)}
    result: dict[str, Any] = {"loop_pause_us": round(pause, 2), "memory": memory, "redis": None}
    if redis_url is not None:
        print("  redis, 1 key", file=sys.stderr, flush=True)
        pool = redis.asyncio.ConnectionPool.from_url(redis_url)
        storage = RedisStorage("async+" + redis_url, implementation="redispy", connection_pool=pool)
        old = await per_call(limits_call(storage), 1, seconds)
        await pool.disconnect()
        limiter = RateLimiter(RateLimitSettings(storage_url=redis_url))
        ours = await per_call(pentad_call(limiter), 1, seconds)
        await limiter.close()
        result["redis"] = {"limits_redis": old, "pentad": ours, **ratios(old, ours)}
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# ratelimit: microseconds per enforce",
        "",
        f"{result['date']} · {result['host']['cpu_model']} · Python {result['host']['python']} · "
        f"load average before: {result['host']['load_average_1m_before']} · "
        f"each figure includes one loop pass of {result['loop_pause_us']} us",
        "",
        "| storage | keys | limits µs/call | Pentad µs/call | limits / Pentad "
        "| limits CPU µs/call | Pentad CPU µs/call | limits / Pentad (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("memory", int(key_count), row, row["limits_memory"]) for key_count, row in result["memory"].items()
    ]
    if result["redis"] is not None:
        rows.append(("redis", 1, result["redis"], result["redis"]["limits_redis"]))
    for storage, key_count, row, old in rows:
        ours = row["pentad"]
        lines.append(
            f"| {storage} | {key_count:,} | {old['us_per_call']} | {ours['us_per_call']} | "
            f"{row['ratio_limits_to_pentad']}x | {old['cpu_us_per_call']} | {ours['cpu_us_per_call']} | "
            f"{row['cpu_ratio_limits_to_pentad']}x |"
        )
    if result["redis"] is None:
        lines.append("| redis | - | not measured: redis-server is not installed | | | | | |")
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def main() -> int:
    import uvloop

    try:
        seconds = float(os.environ.get("BENCH_RATELIMIT_SECONDS", "1.0"))
    except ValueError:
        print("ratelimit: BENCH_RATELIMIT_SECONDS must be a number of seconds", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    try:
        with redis_server() as redis_url:
            figures = uvloop.run(measure(seconds, redis_url))
    except BenchmarkError as exc:
        print(f"ratelimit: could not run: {exc}", file=sys.stderr)
        return 1
    result = {
        "benchmark": "ratelimit",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "load_average_1m_before": round(load_before, 2),
        },
        "limit": LIMIT,
        "seconds_per_measurement": seconds,
        **figures,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    table = markdown(result)
    write_atomically(RESULTS_DIR / "ratelimit.json", json.dumps(result, indent=2) + "\n")
    write_atomically(RESULTS_DIR / "ratelimit.md", table)
    print("\n" + table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
