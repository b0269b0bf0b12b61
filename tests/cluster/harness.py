"""The multi-node topology of docs/deploy.md as processes on loopback: a Redis of its own (so a test may
restart it), a PostgreSQL database of its own, N `pentad serve` nodes, M `pentad worker` processes and
Debian's nginx in front (round robin, WebSocket upgrade, no sticky sessions, an access log naming the
upstream of every request). `python -m tests.cluster` starts it for a person to try (`make cluster`).

Every process is a real one, started and stopped as in production: SIGTERM for a rolling restart,
SIGKILL for a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.factories import DEFAULT_PASSWORD, TEST_CRYPTO_KEYS, TEST_SECRET_KEY, free_port
from tests.sdk.live_chat import create_tenant_key
from tests.servers import HOST, STARTUP_TIMEOUT_SECONDS, VENV_BIN, log_tail, wait_until_ready

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 5
"""Job leases in the cluster: a killed worker's job runs again on the other after at most this."""


RESTART_TIMEOUT_SECONDS = 2 * STARTUP_TIMEOUT_SECONDS
"""A node restarted mid-scenario starts while the others carry the load on the same small machine."""


class ClusterError(Exception):
    pass


@dataclass
class Process:
    """One child process with its log; started with `start()`, ended with `stop()` (SIGTERM) or `kill()`."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    ready_url: str | None = None
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    async def start(self) -> None:
        assert self.process is None, f"{self.name} is running"
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        if self.ready_url is not None:
            await self._wait_ready(self.ready_url)

    async def _wait_ready(self, url: str) -> None:
        assert self.process is not None
        failure = await wait_until_ready(
            url, self.process, self.log_path, name=self.name, within=RESTART_TIMEOUT_SECONDS
        )
        if failure is not None:
            raise ClusterError(failure)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def kill(self) -> None:
        """SIGKILL: nothing is flushed, closed or handed back."""
        if self.process is None:
            return
        self.process.kill()
        await self.process.wait()
        self.process = None

    async def stop(self, grace: float = 30) -> int | None:
        """SIGTERM and wait (SIGKILL after `grace` seconds); the exit code."""
        if self.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        self.process = None
        return code

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def _binary(name: str, fallback: str) -> str:
    found = shutil.which(name) or fallback
    if not Path(found).exists():
        raise ClusterError(f"{name} is missing (Debian: apt-get install nginx redis-server)")
    return found


def _nginx_config(prefix: Path, port: int, upstreams: list[int]) -> str:
    # max_fails=0, as deploy/compose/nginx/pentad.conf: no passive marking down. A node that refuses
    # costs one refused connect and the request goes to the next; marking it down would keep a restarted
    # node out for fail_timeout per WebSocket (a WebSocket counts as a success only when it closes), so the
    # clients of the next node to die would find "no live upstreams" for tens of seconds.
    servers = "\n".join(f"        server {HOST}:{p} max_fails=0;" for p in upstreams)
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_processes 1;
events {{ worker_connections 4096; }}
http {{
    log_format cluster '$status $request_method $uri $upstream_addr $upstream_status';
    access_log {prefix}/access.log cluster;
    client_body_temp_path {prefix}/body;
{temp}
    upstream pentad {{
{servers}
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}
    server {{
        listen {HOST}:{port};
        client_max_body_size 50m;
        location / {{
            proxy_pass http://pentad;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


@dataclass
class Cluster:
    """The topology; `url` is nginx, the only address clients use."""

    root: Path
    database_url: str
    nodes: int = 3
    workers: int = 2
    redis: Process = field(init=False)
    nginx: Process = field(init=False)
    serve: list[Process] = field(init=False, default_factory=list)
    work: list[Process] = field(init=False, default_factory=list)
    server_key: str = ""
    admin_email: str = field(default_factory=lambda: f"admin-{uuid.uuid4().hex[:8]}@example.com")
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}"

    @property
    def access_log(self) -> Path:
        return self.root / "nginx" / "access.log"

    def environment(self) -> dict[str, str]:
        """What every Pentad process of the cluster gets (docs/deploy.md's settings, on loopback)."""
        keep = {name: value for name, value in os.environ.items() if not name.startswith("PENTAD_")}
        return {
            **keep,
            "PYTHONPATH": str(REPO),
            "PENTAD_ENVIRONMENT": "test",
            "PENTAD_APPS": "chat",
            "PENTAD_DATABASE__URL": self.database_url,
            "PENTAD_AUTH__SECRET_KEY": TEST_SECRET_KEY,
            "PENTAD_CRYPTO__KEYS": TEST_CRYPTO_KEYS,
            "PENTAD_REDIS__URL": f"{self.redis_url}/0",
            "PENTAD_REALTIME__BROKER_URL": f"{self.redis_url}/1",
            "PENTAD_RATELIMIT__STORAGE_URL": f"{self.redis_url}/2",
            "PENTAD_CACHE__URL": f"{self.redis_url}/3",
            "PENTAD_RATELIMIT__PER_ADDRESS": "1000000/minute",
            "PENTAD_RATELIMIT__PER_PRINCIPAL": "1000000/minute",
            "PENTAD_SECURITY__TRUSTED_PROXIES": HOST,
            "PENTAD_JOBS__IN_PROCESS_WORKER": "false",
            "PENTAD_JOBS__LEASE_SECONDS": str(LEASE_SECONDS),
            "PENTAD_JOBS__POLL_INTERVAL": "0.2",
            "PENTAD_LOG__LEVEL": "WARNING",
            "PENTAD_ADMIN__EMAIL": self.admin_email,
            "PENTAD_ADMIN__PASSWORD": DEFAULT_PASSWORD,
        }

    async def start(self) -> None:
        nginx_binary = _binary("nginx", "/usr/sbin/nginx")
        redis_binary = _binary("redis-server", "/usr/bin/redis-server")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "redis").mkdir(exist_ok=True)
        self.redis = Process(
            "redis",
            [
                redis_binary,
                "--port",
                str(self.redis_port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            dict(os.environ),
            self.root / "redis.log",
            self.root / "redis",
        )
        await self.redis.start()
        await self.wait_for_redis()
        self.server_key = await create_tenant_key(
            self.root, self.database_url, f"cluster-{uuid.uuid4().hex[:6]}"
        )
        environment = self.environment()
        ports = [free_port() for _ in range(self.nodes)]
        for index, port in enumerate(ports):
            data = self.root / f"node{index}"
            data.mkdir(exist_ok=True)
            command = [
                str(VENV_BIN / "pentad"),
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
            ]
            self.serve.append(
                Process(
                    f"node{index}",
                    command,
                    {**environment, "PENTAD_DATA_DIR": str(data)},
                    self.root / f"node{index}.log",
                    data,
                    ready_url=f"http://{HOST}:{port}/readyz",
                )
            )
        for index in range(self.workers):
            data = self.root / f"worker{index}"
            data.mkdir(exist_ok=True)
            self.work.append(
                Process(
                    f"worker{index}",
                    [sys.executable, "-m", "tests.core.jobs.worker_app", "worker"],
                    {**environment, "PENTAD_DATA_DIR": str(data), "PENTAD_APPS": "chat,jobtest"},
                    self.root / f"worker{index}.log",
                    REPO,
                )
            )
        # One at a time: the first node creates the first admin, and starting Python processes side by side
        # on a small machine only makes each slower.
        for process in [*self.serve, *self.work]:
            await process.start()
        prefix = self.root / "nginx"
        prefix.mkdir(exist_ok=True)
        (prefix / "nginx.conf").write_text(_nginx_config(prefix, self.port, ports))
        self.nginx = Process(
            "nginx",
            [nginx_binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            dict(os.environ),
            self.root / "nginx.log",
            prefix,
            ready_url=f"{self.url}/healthz",
        )
        await self.nginx.start()

    async def wait_for_redis(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                reader, writer = await asyncio.open_connection(HOST, self.redis_port)
                writer.write(b"PING\r\n")
                if (await reader.readline()).startswith(b"+PONG"):
                    writer.close()
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"redis did not come up:\n{log_tail(self.root / 'redis.log')}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        processes = [getattr(self, "nginx", None), *self.serve, *self.work, getattr(self, "redis", None)]
        await asyncio.gather(*(p.stop() for p in processes if p is not None), return_exceptions=True)

    def access_lines(self) -> list[list[str]]:
        """The nginx access log: [status, method, uri, upstream(s), upstream status(es)] per request."""
        if not self.access_log.exists():
            return []
        return [line.split(" ", 4) for line in self.access_log.read_text().splitlines()]


@contextlib.asynccontextmanager
async def cluster(
    root: Path, database_url: str, *, nodes: int = 3, workers: int = 2
) -> AsyncIterator[Cluster]:
    topology = Cluster(root, database_url, nodes=nodes, workers=workers)
    try:
        await topology.start()
        yield topology
    finally:
        await topology.stop()
