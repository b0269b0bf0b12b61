"""The cluster at work, through nginx: chat send throughput and fan-out latency with 1, 2 and 3 `pentad
serve` nodes, and how long a client takes to be back and caught up after its node dies.

Each topology is tests/cluster/harness.py's (Debian's nginx in front, a Redis of its own, PostgreSQL, one
`pentad worker`), started fresh for each node count:

- throughput: SENDERS closed-loop senders post for BENCH_DURATION s (default 15) into one group channel
  of SUBSCRIBERS members who are all connected on /ws through nginx (so the sockets spread over the
  nodes); sends/s completed, and the send-to-receive latency of every delivery (the send time is in the
  message text; one host, one monotonic clock). The 1-node run is the baseline of the same run: the
  figure is the ratio N-node / 1-node. On this 2-core machine every node shares the same two cores, so the
  ratio shows what spreading costs (the Redis hop, more processes on the same cores), not what more hosts
  would add: docs/deploy.md says what it predicts.
- recovery (3 nodes): KILLS times, SIGKILL one node while SUBSCRIBERS clients are connected, post one
  message through a surviving node, and time until every client has it (live or by its resume sync),
  from the kill; p50/p95/p99 over all clients and kills. Aim: p99 < 3 s.

    .venv/bin/python bench/cluster.py            # results in bench/results/cluster.{json,md}
    BENCH_DURATION=5 BENCH_CLUSTER_NODES=1,3 .venv/bin/python bench/cluster.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.harness import Cluster, cluster  # noqa: E402
from tests.databases import scratch_database  # noqa: E402

from pentad_chat import ChatClient, ChatServer, MessageEvent  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DURATION = int(os.environ.get("BENCH_DURATION", "15"))
NODE_COUNTS = [int(n) for n in os.environ.get("BENCH_CLUSTER_NODES", "1,2,3").split(",")]
SENDERS = int(os.environ.get("BENCH_CLUSTER_SENDERS", "8"))
SUBSCRIBERS = int(os.environ.get("BENCH_CLUSTER_SUBSCRIBERS", "30"))
KILLS = int(os.environ.get("BENCH_CLUSTER_KILLS", "5"))


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def _channel(topology: Cluster, members: int) -> tuple[uuid.UUID, list[str]]:
    names = [f"b{n}-{uuid.uuid4().hex[:4]}" for n in range(members)]
    async with ChatServer(topology.url, topology.server_key) as backend:
        for name in names:
            await backend.upsert_user(name, name=name)
        channel = await backend.create_channel(names[0], kind="group", members=names[1:])
        tokens = [(await backend.create_user_token(name)).token for name in names]
    return channel.id, tokens


async def _connected(topology: Cluster, tokens: list[str], channel_id: uuid.UUID) -> list[ChatClient]:
    clients = [
        ChatClient(topology.url, token, backoff_initial=0.05, backoff_max=0.5, timeout=10) for token in tokens
    ]
    for client in clients:
        await client.connect()
    for client in clients:
        await client.subscribe(channel_id)
    return clients


async def throughput(topology: Cluster) -> dict[str, Any]:
    channel_id, tokens = await _channel(topology, SUBSCRIBERS)
    clients = await _connected(topology, tokens, channel_id)
    latencies: list[float] = []
    stop = asyncio.Event()

    async def listen(client: ChatClient) -> None:
        events = client.events("message.new")
        while True:
            event = await events.get()
            if isinstance(event, MessageEvent) and event.message.text.startswith("t "):
                latencies.append(time.monotonic() - float(event.message.text.split()[1]))

    listeners = [asyncio.create_task(listen(client)) for client in clients]
    sent = 0

    async def send(client: ChatClient) -> None:
        nonlocal sent
        while not stop.is_set():
            await client.send(channel_id, f"t {time.monotonic()}")
            sent += 1

    senders = [asyncio.create_task(send(client)) for client in clients[:SENDERS]]
    started = time.monotonic()
    await asyncio.sleep(DURATION)
    stop.set()
    await asyncio.gather(*senders)
    elapsed = time.monotonic() - started
    await asyncio.sleep(2)  # the last deliveries
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(client.close() for client in clients))
    expected = sent * len(clients)
    return {
        "sends_per_second": sent / elapsed,
        "deliveries": len(latencies),
        "delivered_pct": 100 * len(latencies) / expected if expected else 0.0,
        "fanout_p50_ms": 1000 * percentile(latencies, 0.5),
        "fanout_p99_ms": 1000 * percentile(latencies, 0.99),
    }


async def _caught_up(stream: Any, message_id: uuid.UUID, since: float) -> float:
    """Seconds from `since` until `stream` delivers the message `message_id`."""
    while True:
        event = await stream.get()
        if isinstance(event, MessageEvent) and event.message.id == message_id:
            return time.monotonic() - since


async def recovery(topology: Cluster) -> dict[str, Any]:
    channel_id, tokens = await _channel(topology, SUBSCRIBERS + 1)
    clients = await _connected(topology, tokens[1:], channel_id)
    poster = ChatClient(topology.url, tokens[0], timeout=10)
    samples: list[float] = []
    streams = [client.events("message.new") for client in clients]
    try:
        for kill in range(KILLS):
            victim = topology.serve[kill % len(topology.serve)]
            killed_at = time.monotonic()
            await victim.kill()
            message = await poster.send(channel_id, f"after kill {kill}")

            async with asyncio.timeout(60):
                samples += await asyncio.gather(
                    *(_caught_up(stream, message.id, killed_at) for stream in streams)
                )
            await victim.start()
            await asyncio.sleep(1)
    finally:
        await poster.close()
        await asyncio.gather(*(client.close() for client in clients))
    return {
        "kills": KILLS,
        "clients": len(clients),
        "p50_s": percentile(samples, 0.5),
        "p95_s": percentile(samples, 0.95),
        "p99_s": percentile(samples, 0.99),
        "max_s": max(samples),
        "mean_s": statistics.fmean(samples),
    }


async def main() -> dict[str, Any]:
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        for nodes in NODE_COUNTS:
            root = Path(folder) / f"n{nodes}"
            log(f"{nodes} node(s): starting")
            async with (
                scratch_database("postgresql", root) as url,
                cluster(root, url, nodes=nodes, workers=1) as topology,
            ):
                runs[str(nodes)] = await throughput(topology)
                log(f"{nodes} node(s): {runs[str(nodes)]}")
                if nodes == max(NODE_COUNTS) and nodes > 1:
                    runs["recovery"] = await recovery(topology)
                    log(f"recovery: {runs['recovery']}")
    return runs


def _command() -> str:
    """The command of this run, with the settings it was given."""
    given = [f"{name}={os.environ[name]}" for name in sorted(os.environ) if name.startswith("BENCH_")]
    return " ".join([*given, ".venv/bin/python bench/cluster.py"])


def report(runs: dict[str, Any]) -> str:
    base = runs.get("1")
    lines = [
        "# cluster: chat through nginx on 1, 2 and 3 nodes",
        "",
        f"Run {datetime.now(UTC).isoformat(timespec='seconds')} (load average {runs['load_average_1m']:.2f} "
        "at the end of the run), "
        f"{DURATION} s per run, {SENDERS} closed-loop senders, {SUBSCRIBERS} subscribers on /ws, "
        f"PostgreSQL + Redis, one worker. `{_command()}`",
        "",
        "| nodes | sends/s | ratio to 1 node | fan-out p50 | fan-out p99 | delivered |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for nodes in NODE_COUNTS:
        run = runs[str(nodes)]
        ratio = f"{run['sends_per_second'] / base['sends_per_second']:.2f}x" if base else "—"
        lines.append(
            f"| {nodes} | {run['sends_per_second']:.1f} | {ratio} | {run['fanout_p50_ms']:.1f} ms | "
            f"{run['fanout_p99_ms']:.1f} ms | {run['delivered_pct']:.1f} % |"
        )
    if "recovery" in runs:
        rec = runs["recovery"]
        top = max(NODE_COUNTS)
        live = runs[str(top)]["fanout_p99_ms"] / 1000
        lines += [
            "",
            f"Back and caught up after a node is killed (SIGKILL), {rec['kills']} kills x "
            f"{rec['clients']} clients: p50 {rec['p50_s']:.2f} s, p95 {rec['p95_s']:.2f} s, "
            f"**p99 {rec['p99_s']:.2f} s**, max {rec['max_s']:.2f} s (aim p99 < 3 s); baseline of the same "
            f"run: a live delivery's p99 on {top} nodes is {live:.2f} s, so recovery p99 is "
            f"{rec['p99_s'] / live:.1f}x a live delivery's.",
        ]
    if runs["load_average_1m"] > (os.cpu_count() or 1):
        lines += [
            "",
            f"The machine was busy (load average above its {os.cpu_count()} cores, other work on it): the "
            "sends/s and fan-out figures are mostly that load's and the ratios are noise; compare runs on a "
            "quiet machine.",
        ]
    lines += [
        "",
        "All nodes share this machine's two cores, so the N-node/1-node ratio is the cost of spreading "
        "(the Redis hop, more processes on the same cores), not the gain of more hosts; docs/deploy.md "
        "explains what it predicts.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    results = asyncio.run(main())
    results["load_average_1m"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report(results)
    (RESULTS / "cluster.md").write_text(table)
    print(table)
