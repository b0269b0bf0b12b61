"""Server CPU per realtime delivery: the hub's ASGI send per subscriber ("before") against its
pre-encoded frames written straight to idle sockets ("after", core/realtime/wsserver.py), in one run.

The same Pentad app (`rtbench`, bench/realtime_fanout_app.py) is served by uvicorn with the options
`pentad serve` uses, once with uvicorn's own WebSocket protocol (`ws="auto"`, the hub falls back to the
ASGI send) and once with Pentad's (`SERVE_PROTOCOL`, what `pentad serve` runs), and for reference
bench/plain_ws_app.py (`websockets.broadcast`, events published over a WebSocket); alternately, ROUNDS
times each. Each run: 1,000 subscribers of one topic (bench/realtime_fanout.py's load generator, CPU 1;
Pentad's authenticated), RATE events/s for BENCH_CPU_SECONDS (default 8) after a warm-up; the server's
CPU time over the measured step (CPU 0) divided by the deliveries received. Pentad's figure includes
each event's HTTP publish through the whole stack (the same for both of its variants).

    .venv/bin/python bench/realtime_fanout_cpu.py    # writes bench/results/realtime_fanout_cpu.{json,md}
    BENCH_CPU_RATE=60 BENCH_CPU_BASE_SRC=/tmp/perf-base/src .venv/bin/python bench/realtime_fanout_cpu.py

BENCH_CPU_RATE sets the events per second (default 20; near the hub's saturation, about 60, frames start to
share a loop turn and the hub writes them to a socket together). BENCH_CPU_BASE_SRC adds a variant `base`:
the `after` server run from another checkout's `src` (e.g. a `git worktree` of main), to compare a change
with what it changes in the same run.

Figures are reported, never judged; the exit status says only whether the benchmark could run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from realtime_fanout import (
    HOST,
    RESULTS_DIR,
    BenchmarkError,
    Process,
    fanout_budget,
    fanout_config,
    free_port,
    http_publish,
    pentad_env,
    plain_server,
    prepare_pentad,
    raise_open_files_limit,
    run_loadgen,
    running,
    write_atomically,
)

VARIANTS = {
    "before": "auto",
    "after": "pentad.core.realtime.wsserver:PentadWebSocketProtocol",
    "plain": "bench/plain_ws_app.py (websockets.broadcast)",
}
ROUNDS = 2
RATE = float(os.environ.get("BENCH_CPU_RATE", "20"))
BASE_SRC = os.environ.get("BENCH_CPU_BASE_SRC", "")
if BASE_SRC:
    VARIANTS = {"base": f"{VARIANTS['after']} from {BASE_SRC}", **VARIANTS}
ONLY = [name for name in os.environ.get("BENCH_CPU_VARIANTS", "").split(",") if name]
"""BENCH_CPU_VARIANTS=base,after runs only those (the ratios then say None where a side is missing)."""


def serve(port: int, ws: str) -> None:
    """The benchmark's server: the rtbench app under uvicorn as `pentad serve` runs it, but for `ws`."""
    import uvicorn

    import realtime_fanout_app
    from pentad import apps
    from pentad.core.config import load_settings

    apps.INSTALLED[realtime_fanout_app.APP_NAME] = apps.InstalledApp("realtime_fanout_app:APP")
    uvicorn.run(
        "pentad.app:create_app_from_env",
        factory=True,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        ws=ws,
        ws_per_message_deflate=False,
        ws_max_size=load_settings().realtime.max_message_bytes,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=None,
    )


def measure(work_dir: Path, data_dir: Path, api_key: str, name: str, seconds: float) -> dict[str, Any]:
    port = free_port()
    if name == "plain":
        server = plain_server(work_dir, port)
        publish, token = {"kind": "ws", "port": port, "path": "/publish"}, None
    else:
        ws = VARIANTS["after" if name == "base" else name]
        command = [sys.executable, str(Path(__file__).resolve()), "serve", str(port), ws]
        env = pentad_env(data_dir)
        if name == "base":
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [BASE_SRC, env.get("PYTHONPATH", "")]))
        server = Process(name, command, work_dir / f"{name}.log", env, data_dir, "/readyz")
        publish, token = http_publish(port, api_key), api_key
    with running(server, ports=[port]):
        config = fanout_config(
            ws_port=port,
            publish=publish,
            token=token,
            server_pids=[server.pid],
            duration=seconds,
            saturation=False,
        )
        config["rate"] = RATE
        step = run_loadgen(config, fanout_budget(seconds, saturation=False), [server])["fanout"]
    received = step["received"]
    return {
        "variant": name,
        "ws": VARIANTS[name],
        "received": received,
        "delivered_pct": step["delivered_pct"],
        "server_cpu_s": step["server_cpu_s"],
        "us_per_delivery": round(1e6 * step["server_cpu_s"] / received, 2) if received else None,
        "p50_ms": step["p50_ms"],
        "p99_ms": step["p99_ms"],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Realtime: server CPU per delivery",
        "",
        f"{result['subscribers']} subscribers, {RATE:.0f} events/s for {result['seconds']} s per run, "
        f"{ROUNDS} runs per variant, alternating.",
        "",
        "| variant | server | µs CPU / delivery (median) | runs | delivered % | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, summary in result["variants"].items():
        runs = ", ".join(f"{run['us_per_delivery']}" for run in summary["runs"])
        delivered = min(run["delivered_pct"] for run in summary["runs"])
        p99 = max(run["p99_ms"] or 0 for run in summary["runs"])
        lines.append(
            f"| {name} | `{VARIANTS[name]}` | {summary['median_us']} | {runs} | {delivered} | {p99} |"
        )
    lines += [
        "",
        f"after / before: {result['after_over_before']}; after / plain: {result['after_over_plain']}"
        + (f"; after / base: {result['after_over_base']}" if "after_over_base" in result else ""),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3])
        return 0
    seconds = float(os.environ.get("BENCH_CPU_SECONDS", "8"))
    try:
        raise_open_files_limit()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        with tempfile.TemporaryDirectory(prefix="pentad-bench-cpu-") as work:
            work_dir = Path(work)
            data_dir = work_dir / "pentad"
            api_key = prepare_pentad(data_dir)
            for round_number in range(ROUNDS):
                for name in VARIANTS:
                    if ONLY and name not in ONLY:
                        continue
                    print(f"== {name} ({VARIANTS[name]}), round {round_number + 1}", flush=True)
                    run = measure(work_dir, data_dir, api_key, name, seconds)
                    print(
                        f"   {run['us_per_delivery']} µs per delivery, {run['delivered_pct']} %", flush=True
                    )
                    runs[name].append(run)
    except BenchmarkError as exc:
        print(f"realtime_fanout_cpu: could not run: {exc}", file=sys.stderr)
        return 1
    medians = {
        name: statistics.median(r["us_per_delivery"] for r in results if r["us_per_delivery"] is not None)
        for name, results in runs.items()
        if results
    }
    medians.update({name: 0.0 for name in runs if name not in medians})
    result = {
        "subscribers": 1000,
        "seconds": seconds,
        "variants": {
            name: {"median_us": round(medians[name], 2), "runs": runs[name]} for name in runs if runs[name]
        },
        "after_over_before": round(medians["after"] / medians["before"], 3) if medians["before"] else None,
        "after_over_plain": round(medians["after"] / medians["plain"], 3) if medians["plain"] else None,
    }
    if BASE_SRC:
        result["base_src"] = BASE_SRC
        result["after_over_base"] = round(medians["after"] / medians["base"], 3) if medians["base"] else None
    RESULTS_DIR.mkdir(exist_ok=True)
    table = markdown(result)
    write_atomically(RESULTS_DIR / "realtime_fanout_cpu.json", json.dumps(result, indent=2) + "\n")
    write_atomically(RESULTS_DIR / "realtime_fanout_cpu.md", table)
    print("\n" + table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
