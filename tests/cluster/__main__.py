"""`make cluster`: the multi-node topology of the cluster tests, for a person to try. It needs PostgreSQL
(PENTAD_TEST_POSTGRES_URL, default the local server), Debian's nginx and redis-server, and runs until
Ctrl-C: 3 `pentad serve` nodes and 2 workers behind nginx, on a scratch database dropped at the end."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path

from tests.cluster.harness import cluster
from tests.databases import scratch_database
from tests.factories import DEFAULT_PASSWORD


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with tempfile.TemporaryDirectory(prefix="pentad-cluster-") as folder:
        root = Path(folder)
        async with scratch_database("postgresql", root) as url, cluster(root, url) as running:
            nodes, workers = len(running.serve), len(running.work)
            print(f"Pentad cluster at {running.url} (nginx, {nodes} nodes, {workers} workers)")
            print(f"  sign in as {running.admin_email} / {DEFAULT_PASSWORD}")
            print(f"  logs in {root}; Ctrl-C stops everything")
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
