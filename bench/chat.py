"""Chat benchmarks: persisted send, fan-out, history and search, on SQLite and on PostgreSQL, in one run.

Four parts per database, each against a real `pentad serve` process (PENTAD_APPS=chat) on CPU 0, with the
load generators on CPU 1 (`taskset -c`), each part beside a baseline measured by the same server in the
same run:

1. send: an open-loop load of SEND_RATE messages/s for BENCH_DURATION s (after a warm-up) from 1,000 users
   into 50 channels of 20 members, `POST /api/chat/channels/{id}/messages` with each user's `pcu_` token;
   latency from the moment each request was due to its 201. Baseline: the same load of
   `GET /api/chat/me` (authentication, the chat user lookup, the request's transaction: the floor every
   chat request pays). Also the SQL statements per plain send, counted over STATEMENT_SAMPLES sends by an
   app built in the benchmark's own process from the server's configuration and database.
2. fan-out: one channel with 1,000 members, each connected on /ws with its own user token and subscribed
   to `chat.channel.{id}` (FANOUT_PROCESSES subscriber processes); FANOUT_RATE messages/s sent for
   BENCH_DURATION s, measured from a quiet start (once the presence joins of the connect storm have all
   arrived); send-to-receive latency of every delivery (the send time is in the message text; one host,
   one monotonic clock) and delivered %. Baseline: the same number of subscribers of a topic of the
   rtbench app (bench/realtime_fanout_app.py, installed in the same server for this part), whose route
   only calls `publish(session, ...)`: the hub's own cost, without chat's.
3. history: a channel of HISTORY_MESSAGES messages, bulk-loaded with SQL (SQLAlchemy core executemany on
   SQLite, its FTS5 triggers off during the load and the index rebuilt after it; COPY on PostgreSQL, its
   GIN search index dropped during the load and built after it, then VACUUM ANALYZE as autovacuum
   would), then
   `GET /api/chat/channels/{id}/messages?before=<random seq>&limit=50`, one request at a time.
   Baseline: `GET /healthz` the same way. History and search are read by HISTORY_MEMBERS users who are
   members of that channel only (the send part's channels are private), so what they read and search
   does not depend on how many messages the send part managed to store.
4. search: `GET /api/chat/search?q=<word>` over the same messages, whose words follow a Zipf distribution
   over a vocabulary of common English words and a long tail of rarer ones; the words searched come from
   three bands (common, medium, rare). Baseline: `GET /healthz`.

Every database is fresh: SQLite in a temporary folder; on PostgreSQL a database `bench_chat_<random>`
created on BENCH_CHAT_POSTGRES_URL's server and dropped afterwards (skipped, and said so, when the server
is not reachable). It is migrated and given an admin with an API key through the `pentad` CLI; the tenant,
its server key, users, user tokens and channels are made through the HTTP API, as a tenant's backend
would. Rate limits stay on, set too high to refuse the load (as in bench/http_auth.py).

The load generators are this file run as `chat.py loadgen` (a JSON configuration on the first line of
stdin; `READY {...}` / `RESULT {...}` lines on stdout): an open- or closed-loop HTTP/1.1 client on
keep-alive connections, and a WebSocket subscriber built on bench/realtime_fanout.py's minimal client.

Writes bench/results/chat.json and bench/results/chat.md and prints the tables. The figures are reported,
never judged: the exit status says only whether the benchmark could run.

Environment: BENCH_DURATION (seconds of the send and fan-out runs, default 20, 1 to 300),
BENCH_CHAT_DATABASES (default `sqlite,postgresql`), BENCH_CHAT_POSTGRES_URL (a database on the server to
create the benchmark's database from; default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres),
BENCH_CHAT_MESSAGES (messages in the history channel, default 1,000,000), BENCH_CHAT_PARTS (default
`send,fanout,history,search`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import os
import platform
import queue
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

import orjson

from realtime_fanout import (
    CONNECT_TIMEOUT,
    OPEN_ALL_TIMEOUT,
    PONG,
    REQUEST_TIMEOUT,
    SUBSCRIBE_ATTEMPTS,
    BenchmarkError,
    Process,
    RequestRefused,
    Stats,
    WsClient,
    can_pin,
    core_busy_pct,
    core_times,
    cpu_model,
    free_port,
    own_cpu_seconds,
    pinned,
    process_cpu_seconds,
    raise_open_files_limit,
    running,
    versions,
    write_atomically,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RTBENCH_APP = BENCH_DIR / "realtime_fanout_app.py"
VENV_BIN = Path(sys.executable).parent

HOST = "127.0.0.1"
CLIENT_CPU = "1"
DEFAULT_DURATION = 20
MAX_DURATION = 300
CLI_TIMEOUT = 120.0
LOADGEN_MARGIN_SECONDS = 120.0
OVERLOAD_WAIT_SECONDS = 60.0
"""How long an open-loop run waits for the answers still due after its last request went out."""
IDLE_CPU_FRACTION = 0.15
IDLE_WAIT_LIMIT_SECONDS = 120.0
ADMIN_EMAIL = "bench-admin@example.com"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DATABASES = ("sqlite", "postgresql")
PARTS = ("send", "fanout", "history", "search")

USERS = 1_000
SETUP_THREADS = 4
SEND_CHANNELS = 50
"""Channels of the send part; every user is a member of exactly one (USERS / SEND_CHANNELS members each)."""
SEND_RATE = 500.0
SEND_WARMUP_SECONDS = 3.0
SEND_CONNECTIONS = 64
"""Keep-alive connections of the send load: enough that a free one is always there while the server keeps up
(at 500/s and 20 ms, 10 are busy); when it does not keep up, requests wait for one, and the latency, taken
from the moment a request was due, shows it."""
STATEMENT_SAMPLES = 20
"""Plain sends whose SQL statements are counted (after one more that caches the sender's credential)."""

SUSTAINED_START = 0.8
"""The first rate tried for the sustained figure, as a share of the server's CPU capacity for sends."""
SUSTAINED_GROWTH = 1.4
SUSTAINED_RESOLUTION = 1.15
SUSTAINED_STEPS = 5
SUSTAINED_SECONDS = 5.0

FANOUT_MEMBERS = 1_000
FANOUT_RATE = 10.0
FANOUT_WARMUP_SECONDS = 3.0
FANOUT_DRAIN_SECONDS = 5.0
FANOUT_PROCESSES = 2
FANOUT_SENDERS = 10
"""Members who send the fan-out messages, in turn (each also subscribed, like everyone else)."""
FANOUT_FILLER = "the quick brown fox jumps over the lazy dog while the build keeps running on the ci box"
CONNECT_CONCURRENCY = 100
QUIET_SECONDS = 1.0
QUIET_LIMIT_SECONDS = 120.0
RTBENCH_TOPIC = "bench.fanout.main"
RTBENCH_PATH = "/api/rtbench/streams/main/events"

HISTORY_MESSAGES = 1_000_000
HISTORY_MEMBERS = 50
HISTORY_PAGE = 50
HISTORY_REQUESTS = 2_000
HISTORY_WARMUP = 100
LOAD_BATCH = 20_000
MESSAGE_SPACING_SECONDS = 30
"""Time between two loaded messages: a million of them span about a year."""

VOCABULARY_SIZE = 20_000
ZIPF_EXPONENT = 1.0
WORDS_PER_MESSAGE = (3, 20)
SEARCH_BANDS = {"common": (0, 30), "medium": (200, 2_000), "rare": (5_000, VOCABULARY_SIZE)}
"""Zipf ranks (0 = most frequent) the searched words are drawn from."""
SEARCH_PER_BAND = 80
SEARCH_WARMUP = 15
CORPUS_SEED = 20_240_601

AIM = {
    "send_p99_ms": 50.0,
    "send_rate_per_s": SEND_RATE,
    "fanout_p99_ms": 150.0,
    "fanout_delivered_pct": 100.0,
    "history_p99_ms": 20.0,
    "search_p95_ms": 200.0,
}

COMMON_TEXT = """
the i to you a and it is that of in we for on this be have with not but are so just can what do at was
if my me no your can't don't it's i'm all will get like from there about up one out know think they how
now time good yes ok okay thanks going would need let see make back then work when today here some
go an or by our did has been more want got should could also really still fix check look new test
build deploy release branch merge review issue bug error log server client api database query index
team meeting call tomorrow morning afternoon week monday friday update status done working sure great
thing maybe right well last next first after before again because same other any only very much many
people user users data file files change changes code version please sorry help question answer idea
plan problem support customer ticket feature design page link email message messages channel chat
push pull request commit main staging production prod dev local config setting settings cache memory
disk cpu latency slow fast timeout retry failed failing passing green red ci pipeline job jobs queue
worker workers cluster node nodes network dns cert token auth login password key keys secret access
report metrics dashboard alert alerts incident outage rollback hotfix patch upgrade migration schema
table column row rows backup restore sync async event events stream topic send sent read unread
lunch coffee home office remote travel holiday vacation sick weekend tonight later soon early late
"""
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["an", "el", "or", "is", "un", "ar"]


class Corpus:
    """Realistic-looking chat text: words of a fixed vocabulary drawn with Zipf frequencies (rank r has
    weight 1 / (r + 1) ** ZIPF_EXPONENT). The head is common English chat words; the tail (ranks past
    them) pronounceable made-up words, like project and product names: the rarer, the more selective."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        words = list(dict.fromkeys(COMMON_TEXT.split()))
        seen = set(words)
        while len(words) < VOCABULARY_SIZE:
            word = "".join(self.random.choice(SYLLABLES) for _ in range(self.random.randint(2, 4)))
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.words = words
        self.cumulative = list(
            itertools.accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(words)))
        )

    def texts(self, count: int) -> list[str]:
        low, high = WORDS_PER_MESSAGE
        lengths = [self.random.randint(low, high) for _ in range(count)]
        drawn = self.random.choices(self.words, cum_weights=self.cumulative, k=sum(lengths))
        texts = []
        position = 0
        for length in lengths:
            texts.append(" ".join(drawn[position : position + length]))
            position += length
        return texts

    def band(self, name: str, count: int, picker: random.Random) -> list[str]:
        """`count` words of a band of ranks (SEARCH_BANDS), drawn uniformly within it."""
        low, high = SEARCH_BANDS[name]
        # Words with an apostrophe tokenise as two words; search what a user would type.
        pool = [word for word in self.words[low:high] if word.isalpha()]
        return [picker.choice(pool) for _ in range(count)]

    def share_of_messages(self, rank: int) -> float:
        """The expected share of messages that hold the word of this rank at least once."""
        below = self.cumulative[rank - 1] if rank else 0.0
        p = (self.cumulative[rank] - below) / self.cumulative[-1]
        return float(1 - (1 - p) ** (sum(WORDS_PER_MESSAGE) / 2))


# =====================================================================================================
# The orchestrator: databases, servers, setup through the API, the load generators, the results.
# =====================================================================================================


def _terminate_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so every `finally` (which stops the processes) still runs.
    raise SystemExit(128 + signum)


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def environment_list(name: str, default: Sequence[str], allowed: Sequence[str]) -> list[str]:
    raw = os.environ.get(name)
    chosen = [item.strip() for item in raw.split(",") if item.strip()] if raw else list(default)
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise BenchmarkError(f"{name} must list some of {', '.join(allowed)}, not {raw!r}")
    return chosen


def environment_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise BenchmarkError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise BenchmarkError(f"{name} must be between {low} and {high}, not {value}")
    return value


# ----------------------------------------------------------------------------- databases


def reachable(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or HOST, parsed.port or 5432), timeout=2):
            return True
    except OSError:
        return False


async def _postgres_admin(admin_url: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def database(kind: str, work_dir: Path, postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database of this kind, removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{work_dir / 'chat.db'}"
        return
    from sqlalchemy.engine import make_url

    name = f"bench_chat_{secrets.token_hex(6)}"
    try:
        asyncio.run(_postgres_admin(postgres_url, f"CREATE DATABASE {name}"))
    except Exception as exc:
        raise BenchmarkError(f"could not create the PostgreSQL database: {exc}") from None
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_postgres_admin(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# ----------------------------------------------------------------------------- pentad


def pentad_env(data_dir: Path, url: str, apps: str = "chat") -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env.update(
        {
            "PENTAD_DATA_DIR": str(data_dir),
            "PENTAD_DATABASE__URL": url,
            "PENTAD_APPS": apps,
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


def prepare(data_dir: Path, url: str) -> str:
    """Migrate the database and make an admin with an API key (returned), through the CLI."""
    data_dir.mkdir()
    env = pentad_env(data_dir, url)
    password = secrets.token_urlsafe(24)
    # Run from the data directory so a developer's ./.env cannot leak into the measured configuration.
    pentad_cli(["migrate"], env, data_dir)
    pentad_cli(
        ["user", "create", "--email", ADMIN_EMAIL, "--password", password, "--role", "admin"], env, data_dir
    )
    output = pentad_cli(["apikey", "create", "--email", ADMIN_EMAIL, "--name", "bench"], env, data_dir)
    keys = [word for word in output.split() if word.startswith("pak_")]
    if len(keys) != 1:
        raise BenchmarkError(f"expected one pak_ word in `pentad apikey create` output, found {len(keys)}")
    return keys[0]


def chat_server(name: str, data_dir: Path, work_dir: Path, url: str, port: int) -> Process:
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    env = pentad_env(data_dir, url)
    return Process(name, command, work_dir / f"{name}.log", env, data_dir, ready_path="/readyz")


def fanout_server(name: str, data_dir: Path, work_dir: Path, url: str, port: int) -> Process:
    """`pentad serve` with the rtbench app installed next to chat, for the hub-only baseline."""
    command = [sys.executable, str(RTBENCH_APP), "serve", "--host", HOST, "--port", str(port)]
    command += ["--workers", "1"]
    env = pentad_env(data_dir, url, apps="chat,rtbench")
    return Process(name, command, work_dir / f"{name}.log", env, data_dir, ready_path="/readyz")


class Api:
    """A blocking JSON client for the setup, one keep-alive connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def call(
        self, method: str, path: str, token: str, body: Any = None, expect: Sequence[int] = (200, 201)
    ) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
                self.local.connection = connection
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
        if response.status not in expect:
            raise BenchmarkError(f"{method} {path} answered {response.status}: {data[:300]!r}")
        return json.loads(data) if data else None


@dataclass
class ChatUser:
    external_id: str
    id: str
    token: str


@dataclass
class World:
    """What the setup made through the API."""

    users: list[ChatUser]
    readers: list[ChatUser]
    """Members of the history channel only (besides the public fan-out channel): what they search is the
    loaded messages, whatever the send part managed to store in its (private) channels."""
    send_channels: list[tuple[str, list[int]]]
    """(channel id, indexes of its members in `users`)."""
    fanout_channel: str
    history_channel: str
    setup_seconds: float


def make_world(port: int, admin_key: str) -> World:
    started = time.monotonic()
    api = Api(port)
    tenant = api.call("POST", "/api/chat/tenants", admin_key, {"slug": "bench", "name": "Benchmark"})
    key = api.call("POST", f"/api/chat/tenants/{tenant['id']}/keys", admin_key, {"name": "bench"})["key"]

    def make_user(index: int) -> ChatUser:
        external_id = f"user{index:04d}" if index < USERS else f"reader{index - USERS:02d}"
        api.call("PUT", f"/api/chat/server/users/{external_id}", key, {"name": f"User {index}"})
        minted = api.call("POST", f"/api/chat/server/users/{external_id}/tokens", key, {"ttl": 7200})
        return ChatUser(external_id, minted["user"]["id"], minted["token"])

    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        users = list(pool.map(make_user, range(USERS + HISTORY_MEMBERS)))

    def make_channel(name: str, members: Sequence[int], kind: str = "public") -> str:
        first, *rest = members
        body = {
            "kind": kind,
            "name": name,
            "created_by": users[first].external_id,
            "members": [users[i].external_id for i in rest[:500]],
        }
        channel_id: str = api.call("POST", "/api/chat/server/channels", key, body)["id"]
        for start in range(500, len(rest), 500):
            more = {"user_ids": [users[i].external_id for i in rest[start : start + 500]]}
            api.call("POST", f"/api/chat/server/channels/{channel_id}/members", key, more)
        return channel_id

    size = USERS // SEND_CHANNELS
    send_channels = []
    for number in range(SEND_CHANNELS):
        members = list(range(number * size, (number + 1) * size))
        send_channels.append((make_channel(f"send-{number}", members, "private"), members))
    fanout = make_channel("fanout", range(FANOUT_MEMBERS))
    history = make_channel("history", range(USERS, USERS + HISTORY_MEMBERS))
    return World(
        users[:USERS], users[USERS:], send_channels, fanout, history, round(time.monotonic() - started, 1)
    )


# ----------------------------------------------------------------------------- load generator processes


class Loadgen:
    """A load generator process on CPU 1: its configuration on the first line of stdin, commands on the
    following lines, `TAG {json}` lines on stdout (read by a thread, so every wait here is bounded)."""

    def __init__(self, config: dict[str, Any]) -> None:
        command = pinned(CLIENT_CPU, [sys.executable, str(Path(__file__).resolve()), "loadgen"])
        self.popen = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(json.dumps(config))

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def expect(self, tag: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkError(f"the load generator sent no {tag} within {timeout:.0f} s") from None
            if line is None:
                raise BenchmarkError(f"the load generator ended ({self.popen.wait()}) before {tag}")
            if line.startswith(tag + " "):
                result: dict[str, Any] = json.loads(line.removeprefix(tag + " "))
                if "error" in result:
                    raise BenchmarkError(f"load generator: {result['error']}")
                return result

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


@contextlib.contextmanager
def loadgens(configs: Sequence[dict[str, Any]]) -> Iterator[list[Loadgen]]:
    started: list[Loadgen] = []
    try:
        for config in configs:
            started.append(Loadgen(config))
        yield started
    finally:
        for process in started:
            process.stop()


def request(
    method: str, path: str, token: str | None, body: str | None = None, label: str = ""
) -> dict[str, Any]:
    return {"method": method, "path": path, "token": token, "body": body, "label": label}


def run_http(
    server: Process,
    port: int,
    requests: list[dict[str, Any]],
    *,
    expect: Sequence[int],
    warmup: int,
    count: int,
    rate: float | None = None,
    connections: int = 1,
) -> dict[str, Any]:
    """One HTTP load: open loop at `rate` requests/s over `connections`, or closed loop (rate None) with
    `connections` requests in flight; `warmup` requests, then `count` measured ones."""
    config = {
        "mode": "http",
        "host": HOST,
        "port": port,
        "requests": requests,
        "expect": list(expect),
        "warmup": warmup,
        "count": count,
        "rate": rate,
        "connections": connections,
        "server_pid": server.pid,
    }
    budget = (warmup + count) / rate + OVERLOAD_WAIT_SECONDS if rate else (warmup + count) * 0.5
    wait_idle(server)
    with loadgens([config]) as (process,):
        raw = process.expect("RESULT", budget + LOADGEN_MARGIN_SECONDS)
    server.check_alive()
    figures = http_figures(raw)
    if figures["failed"]:
        figures["server_errors"] = server_errors(server)
    return figures


def server_errors(server: Process, most: int = 5) -> list[str]:
    """The last distinct errors the server logged (type and message, without the traceback)."""
    found: list[str] = []
    for line in server.log_tail(200).splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            if record.get("level") in ("error", "critical"):
                lines = (record.get("exception") or "").strip().splitlines()
                # The traceback's last "...Error: message" line, not SQLAlchemy's trailing notes.
                named = [line for line in lines if "Error" in line.split(":", 1)[0]]
                summary = f"{record.get('event')}: {(named or lines or [''])[-1].strip()}"
                if summary not in found:
                    found.append(summary)
    return found[-most:]


def wait_idle(server: Process) -> None:
    """Wait (bounded) until the server's CPU use falls below IDLE_CPU_FRACTION: a run that overloaded it
    leaves requests still being served, which must not count against the next run."""
    deadline = time.monotonic() + IDLE_WAIT_LIMIT_SECONDS
    used, clock = process_cpu_seconds(server.pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now_used, now = process_cpu_seconds(server.pid), time.monotonic()
        if (now_used - used) / (now - clock) < IDLE_CPU_FRACTION:
            return
        used, clock = now_used, now


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def at(fraction: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)

    return {
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 2) if ordered else None,
        "mean_ms": round(sum(ordered) / len(ordered), 2) if ordered else None,
    }


def http_figures(raw: dict[str, Any]) -> dict[str, Any]:
    latencies = raw.pop("latencies_ms")
    service = raw.pop("service_ms")
    figures = {**raw, **percentiles([v for values in latencies.values() for v in values])}
    figures["service"] = percentiles([v for values in service.values() for v in values])
    if len(latencies) > 1:
        figures["by_label"] = {
            label: {"requests": len(v), **percentiles(v)} for label, v in latencies.items()
        }
    return figures


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


# ----------------------------------------------------------------------------- the parts


def bench_send(server: Process, port: int, world: World, duration: int) -> dict[str, Any]:
    me = [request("GET", "/api/chat/me", user.token) for user in world.users]
    sends = []
    for channel_id, members in world.send_channels:
        for index in members:
            body = '{"text":"@P@ message @N@ from ' + world.users[index].external_id + ' about the release"}'
            sends.append(
                request("POST", f"/api/chat/channels/{channel_id}/messages", world.users[index].token, body)
            )
    shuffler = random.Random(1)
    shuffler.shuffle(me)
    shuffler.shuffle(sends)
    warmup, count = int(SEND_RATE * SEND_WARMUP_SECONDS), int(SEND_RATE * duration)
    log(f"send baseline: GET /api/chat/me at {SEND_RATE:g}/s for {duration} s")
    baseline = run_http(
        server,
        port,
        me,
        expect=[200],
        warmup=warmup,
        count=count,
        rate=SEND_RATE,
        connections=SEND_CONNECTIONS,
    )
    log(_line(baseline))
    log(f"send: POST messages at {SEND_RATE:g}/s for {duration} s")
    send = run_http(
        server,
        port,
        sends,
        expect=[201],
        warmup=warmup,
        count=count,
        rate=SEND_RATE,
        connections=SEND_CONNECTIONS,
    )
    log(_line(send))
    sustained = sustained_rate(server, port, sends, send)
    return {
        "baseline": baseline,
        "send": send,
        "sustained": sustained,
        "ratios": {
            "p50": ratio(send["p50_ms"], baseline["p50_ms"]),
            "p99": ratio(send["p99_ms"], baseline["p99_ms"]),
            "server_cpu_per_request": ratio(
                send["server_cpu_ms_per_request"], baseline["server_cpu_ms_per_request"]
            ),
        },
    }


def statements_per_send(data_dir: Path, url: str, world: World) -> dict[str, Any]:
    """The SQL statements of a plain text send (its round trips to the database). The server process cannot
    be observed from outside, so an app built in this process from the server's configuration sends over
    the ASGI interface into the same database and counts what it executes."""
    return asyncio.run(_count_send_statements(pentad_env(data_dir, url), world))


async def _count_send_statements(env: dict[str, str], world: World) -> dict[str, Any]:
    from unittest import mock

    import httpx
    from sqlalchemy import event

    from pentad.app import create_app
    from pentad.core.config import load_settings

    with mock.patch.dict(os.environ, env, clear=True):
        settings = load_settings(_env_file=None)
    app = create_app(settings)
    engine = app.state.platform.database.engine.sync_engine
    executed: list[str] = []

    def count(*args: object) -> None:
        executed.append(str(args[2]))

    channel_id, members = world.send_channels[0]
    headers = {"authorization": f"Bearer {world.users[members[0]].token}"}
    transport = httpx.ASGITransport(app=app, client=(HOST, 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
            for number in range(STATEMENT_SAMPLES + 1):
                if number == 1:
                    event.listen(engine, "before_cursor_execute", count)
                response = await client.post(
                    f"/api/chat/channels/{channel_id}/messages",
                    json={"text": f"counting statements, message {number}"},
                    headers=headers,
                )
                if response.status_code != 201:
                    raise BenchmarkError(f"statement count: a send answered {response.status_code}")
    finally:
        if event.contains(engine, "before_cursor_execute", count):
            event.remove(engine, "before_cursor_execute", count)
        await app.state.platform.close()
    return {"per_send": round(len(executed) / STATEMENT_SAMPLES, 2), "sends": STATEMENT_SAMPLES}


def sustained_rate(
    server: Process, port: int, sends: list[dict[str, Any]], full: dict[str, Any]
) -> dict[str, Any]:
    """When the full rate missed the aim: the highest rate found, in a few short steps, that met it with
    every message stored, so the report says how far off the aim is. The first step is a share of what
    the server's CPU cost per message allowed at the full rate (which overload inflates); then down while
    steps miss the aim, and between the best rate that met it and the lowest that missed it."""
    if full["failed"] == 0 and (full["p99_ms"] or 0) <= AIM["send_p99_ms"]:
        return {"rate_per_s": SEND_RATE, "steps": []}
    capacity = full["server_capacity_per_s"] or SEND_RATE
    rate = float(max(10, round(min(SEND_RATE, SUSTAINED_START * capacity))))
    best: float | None = None
    missed = SEND_RATE
    steps: list[dict[str, Any]] = []
    for _ in range(SUSTAINED_STEPS):
        log(f"send: trying {rate:g} messages/s for {SUSTAINED_SECONDS:g} s")
        step = run_http(
            server,
            port,
            sends,
            expect=[201],
            warmup=int(rate),
            count=int(rate * SUSTAINED_SECONDS),
            rate=rate,
            connections=SEND_CONNECTIONS,
        )
        met = step["failed"] == 0 and (step["p99_ms"] or 0) <= AIM["send_p99_ms"]
        steps.append({"rate_per_s": rate, "met": met, "p50_ms": step["p50_ms"], "p99_ms": step["p99_ms"]})
        log(f"  p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, errors {step['failed']}")
        if met:
            best = rate
        else:
            missed = min(missed, rate)
        if best is None:
            rate = float(max(10, round(rate / SUSTAINED_GROWTH)))
        elif missed / best <= SUSTAINED_RESOLUTION:
            break
        else:
            # Between the highest rate that met the aim and the lowest that missed it.
            rate = float(round(min(best * SUSTAINED_GROWTH, (best * missed) ** 0.5)))
    return {"rate_per_s": best, "steps": steps}


def _line(figures: dict[str, Any]) -> str:
    achieved = figures["achieved_rate"]
    return (
        f"  {achieved or 0:.0f} req/s launched, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms, server CPU {figures['server_cpu_pct']} %, "
        f"client CPU {figures['client_cpu_pct']} %, errors {figures['failed']}"
    )


def fanout_run(
    server: Process,
    port: int,
    tokens: Sequence[str],
    topic: str,
    sender: list[dict[str, Any]],
    expect: int,
    duration: int,
) -> dict[str, Any]:
    subscribers = [
        {
            "mode": "subscribe",
            "host": HOST,
            "port": port,
            "tokens": list(tokens[index::FANOUT_PROCESSES]),
            "topic": topic,
            "connect_concurrency": CONNECT_CONCURRENCY,
        }
        for index in range(FANOUT_PROCESSES)
    ]
    started = time.monotonic()
    with loadgens(subscribers) as processes:
        ready = [
            process.expect("READY", OPEN_ALL_TIMEOUT + QUIET_LIMIT_SECONDS + 30) for process in processes
        ]
        connect_seconds = max(r["seconds"] for r in ready)
        quiet_seconds = round(time.monotonic() - started, 1)
        log(
            f"{sum(r['connected'] for r in ready)} subscribers connected in {connect_seconds} s, "
            f"quiet after {quiet_seconds} s"
        )
        sent = run_http(
            server,
            port,
            sender,
            expect=[expect],
            warmup=int(FANOUT_RATE * FANOUT_WARMUP_SECONDS),
            count=int(FANOUT_RATE * duration),
            rate=FANOUT_RATE,
            connections=4,
        )
        for process in processes:
            process.send(f"EXPECT {sent['ok']} {FANOUT_DRAIN_SECONDS}")
        results = [process.expect("RESULT", FANOUT_DRAIN_SECONDS + 60) for process in processes]
    server.check_alive()
    latencies = [v for result in results for v in result["latencies_ms"]]
    subscribers_count = sum(result["subscribers"] for result in results)
    received = sum(result["received"] for result in results)
    expected = sent["ok"] * subscribers_count
    other_events: dict[str, int] = {}
    for result in results:
        for name, number in result["other_frames"].items():
            other_events[name] = other_events.get(name, 0) + number
    return {
        "subscribers": subscribers_count,
        "messages_sent": sent["ok"],
        "send_errors": sent["failed"],
        "expected": expected,
        "received": received,
        "delivered_pct": round(100 * received / expected, 3) if expected else 0.0,
        "full_subscribers": sum(result["full_subscribers"] for result in results),
        "seq_gaps": sum(result["seq_gaps"] for result in results),
        "closed": sum(result["closed"] for result in results),
        **percentiles(latencies),
        "server_cpu_pct": sent["server_cpu_pct"],
        "core_busy_pct": sent["core_busy_pct"],
        "subscriber_cpu_pct": [result["cpu_pct"] for result in results],
        "send_request_p50_ms": sent["service"]["p50_ms"],
        "send_request_p99_ms": sent["service"]["p99_ms"],
        "connect_seconds": connect_seconds,
        "quiet_after_connect_s": quiet_seconds,
        "subscribe_retries": sum(r["subscribe_retries"] for r in ready),
        "other_frames": other_events,
        "failures": [f for result in results for f in result["failures"]][:5],
    }


def bench_fanout(server: Process, port: int, world: World, admin_key: str, duration: int) -> dict[str, Any]:
    text = f"bench @P@ @N@ @T@ {FANOUT_FILLER}"
    log(
        f"fan-out baseline: {FANOUT_MEMBERS} subscribers of {RTBENCH_TOPIC}, "
        f"{FANOUT_RATE:g} events/s, {duration} s"
    )
    baseline = fanout_run(
        server,
        port,
        [admin_key] * FANOUT_MEMBERS,
        RTBENCH_TOPIC,
        [request("POST", RTBENCH_PATH, admin_key, '{"n":@N@,"t":@T@,"text":"' + text + '"}')],
        200,
        duration,
    )
    log(_fanout_line(baseline))
    members = world.users[:FANOUT_MEMBERS]
    path = f"/api/chat/channels/{world.fanout_channel}/messages"
    senders = [
        request("POST", path, user.token, '{"text":"' + text + '"}') for user in members[:FANOUT_SENDERS]
    ]
    log(f"fan-out: {FANOUT_MEMBERS} members of one channel, {FANOUT_RATE:g} messages/s, {duration} s")
    chat = fanout_run(
        server,
        port,
        [user.token for user in members],
        f"chat.channel.{world.fanout_channel}",
        senders,
        201,
        duration,
    )
    log(_fanout_line(chat))
    return {
        "baseline": baseline,
        "chat": chat,
        "ratios": {
            "p50": ratio(chat["p50_ms"], baseline["p50_ms"]),
            "p99": ratio(chat["p99_ms"], baseline["p99_ms"]),
            "server_cpu": ratio(chat["server_cpu_pct"], baseline["server_cpu_pct"]),
        },
    }


def _fanout_line(figures: dict[str, Any]) -> str:
    return (
        f"  delivered {figures['delivered_pct']} %, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms, server CPU {figures['server_cpu_pct']} %, gaps {figures['seq_gaps']}"
    )


def bench_history(server: Process, port: int, world: World, messages: int) -> dict[str, Any]:
    picker = random.Random(2)
    members = world.readers
    path = f"/api/chat/channels/{world.history_channel}/messages"
    pages = [
        request(
            "GET",
            f"{path}?before={picker.randint(2, messages + 1)}&limit={HISTORY_PAGE}",
            picker.choice(members).token,
        )
        for _ in range(HISTORY_REQUESTS + HISTORY_WARMUP)
    ]
    log(f"history baseline: GET /healthz, {HISTORY_REQUESTS} requests one at a time")
    baseline = run_http(
        server,
        port,
        [request("GET", "/healthz", None)],
        expect=[200],
        warmup=HISTORY_WARMUP,
        count=HISTORY_REQUESTS,
    )
    log(_line(baseline))
    log(f"history: {HISTORY_REQUESTS} pages of {HISTORY_PAGE} at random points of {messages} messages")
    history = run_http(server, port, pages, expect=[200], warmup=HISTORY_WARMUP, count=HISTORY_REQUESTS)
    log(_line(history))
    return {
        "baseline": baseline,
        "history": history,
        "ratios": {
            "p50": ratio(history["p50_ms"], baseline["p50_ms"]),
            "p99": ratio(history["p99_ms"], baseline["p99_ms"]),
        },
    }


def bench_search(server: Process, port: int, world: World, corpus: Corpus) -> dict[str, Any]:
    picker = random.Random(3)
    members = world.readers
    queries = []
    for band in SEARCH_BANDS:
        for word in corpus.band(band, SEARCH_PER_BAND, picker):
            queries.append(
                request("GET", f"/api/chat/search?q={quote(word)}", picker.choice(members).token, label=band)
            )
    picker.shuffle(queries)
    warm = [
        request("GET", f"/api/chat/search?q={quote(w)}", members[0].token, label="warmup")
        for w in corpus.band("medium", SEARCH_WARMUP, picker)
    ]
    count = len(queries)
    log(f"search baseline: GET /healthz, {count} requests one at a time")
    baseline = run_http(
        server, port, [request("GET", "/healthz", None)], expect=[200], warmup=SEARCH_WARMUP, count=count
    )
    log(_line(baseline))
    log(f"search: {count} queries ({SEARCH_PER_BAND} per band: {', '.join(SEARCH_BANDS)}) one at a time")
    search = run_http(server, port, warm + queries, expect=[200], warmup=SEARCH_WARMUP, count=count)
    log(_line(search))
    bands = {
        band: {
            "ranks": [low, high],
            # Frequencies fall with rank: the band's last word is the rarest, its first the most common.
            "expected_matching_pct": [
                round(100 * corpus.share_of_messages(high - 1), 4),
                round(100 * corpus.share_of_messages(low), 4),
            ],
        }
        for band, (low, high) in SEARCH_BANDS.items()
    }
    return {
        "baseline": baseline,
        "search": search,
        "bands": bands,
        "ratios": {
            "p50": ratio(search["p50_ms"], baseline["p50_ms"]),
            "p95": ratio(search["p95_ms"], baseline["p95_ms"]),
        },
    }


# ----------------------------------------------------------------------------- bulk load


def _message_id(millis: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7, as the app gives its rows (pentad.core.db.base.uuid7), for the message's own time."""
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    return uuid.UUID(int=value | 0b10 << 62 | rng.getrandbits(62))


async def bulk_load(
    url: str, channel_id: str, user_ids: Sequence[str], count: int, corpus: Corpus
) -> dict[str, Any]:
    """Insert `count` messages into the channel with SQL, as if sent over a year; the timings."""
    from sqlalchemy import text, update
    from sqlalchemy.ext.asyncio import create_async_engine

    from pentad.apps.chat.models import ChatChannel, ChatMessage

    channel = uuid.UUID(channel_id)
    users = [uuid.UUID(u) for u in user_ids]
    rng = random.Random(CORPUS_SEED + 1)
    first = datetime.now(UTC) - timedelta(seconds=MESSAGE_SPACING_SECONDS * (count + 1))
    timings: dict[str, float] = {"generate_s": 0.0, "insert_s": 0.0}
    postgres = url.startswith("postgresql")
    engine = create_async_engine(url)
    started = time.monotonic()
    try:
        async with engine.begin() as connection:
            rebuild_search_index = await _set_search_index_aside(connection)
            if postgres:
                driver = (await connection.get_raw_connection()).driver_connection
            else:
                await connection.execute(text("PRAGMA cache_size = -262144"))
            for start in range(0, count, LOAD_BATCH):
                clock = time.monotonic()
                size = min(LOAD_BATCH, count - start)
                texts = corpus.texts(size)
                rows = []
                for offset, body in enumerate(texts):
                    seq = start + offset + 1
                    created = first + timedelta(seconds=MESSAGE_SPACING_SECONDS * seq)
                    rows.append(
                        (
                            _message_id(int(created.timestamp() * 1000), rng),
                            channel,
                            seq,
                            seq,
                            rng.choice(users),
                            "text",
                            body,
                            f"<p>{body}</p>",
                            False,
                            False,
                            0,
                            created,
                        )
                    )
                timings["generate_s"] += time.monotonic() - clock
                clock = time.monotonic()
                if postgres:
                    await driver.copy_records_to_table("chat_messages", records=rows, columns=COPY_COLUMNS)
                else:
                    await connection.execute(
                        ChatMessage.__table__.insert(),
                        [dict(zip(COPY_COLUMNS, row, strict=True)) for row in rows],
                    )
                timings["insert_s"] += time.monotonic() - clock
                if (start // LOAD_BATCH) % 10 == 9:
                    log(f"  {start + size} messages loaded ({time.monotonic() - started:.0f} s)")
            last = first + timedelta(seconds=MESSAGE_SPACING_SECONDS * count)
            await connection.execute(
                update(ChatChannel)
                .where(ChatChannel.id == channel)
                .values(last_seq=count, last_message_at=last)
            )
            clock = time.monotonic()
            await rebuild_search_index()
            timings["search_index_s"] = time.monotonic() - clock
        clock = time.monotonic()
        if postgres:
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM ANALYZE chat_messages"))
        else:
            async with engine.connect() as connection:
                # Fold the load out of the WAL into the database file, as the server's checkpoints would.
                await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        timings["vacuum_or_checkpoint_s"] = time.monotonic() - clock
    finally:
        await engine.dispose()
    timings["total_s"] = time.monotonic() - started
    return {name: round(value, 1) for name, value in timings.items()} | {
        "messages": count,
        "method": "COPY, then the GIN index built"
        if postgres
        else "executemany without the FTS5 triggers, then FTS5 'rebuild'",
    }


async def _set_search_index_aside(connection: Any) -> Callable[[], Awaitable[None]]:
    """Take the full-text index off chat_messages for a bulk load (PostgreSQL: its GIN indexes; SQLite:
    the triggers that feed FTS5); the coroutine function that puts it back, built over all rows at once,
    which is far faster than row by row. Read from the catalog, so it follows whatever the migrations made."""
    from sqlalchemy import text

    if connection.dialect.name == "postgresql":
        found = await connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = 'chat_messages' AND indexdef ILIKE '%USING gin%'"
            )
        )
        indexes = [(row[0], row[1]) for row in found]
        for name, _ in indexes:
            await connection.exec_driver_sql(f'DROP INDEX "{name}"')

        async def build_indexes() -> None:
            await connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
            for _, definition in indexes:
                await connection.exec_driver_sql(definition)

        return build_indexes
    found = await connection.execute(
        text(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND lower(sql) LIKE '%using fts5%' "
            "AND sql LIKE '%chat_messages%'"
        )
    )
    tables = [row[0] for row in found]
    found = await connection.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'chat_messages'")
    )
    triggers = [(row[0], row[1]) for row in found if any(table in row[1] for table in tables)]
    for name, _ in triggers:
        await connection.exec_driver_sql(f'DROP TRIGGER "{name}"')

    async def rebuild() -> None:
        for _, definition in triggers:
            await connection.exec_driver_sql(definition)
        for table in tables:
            # The table's name comes from sqlite_master, not from outside.
            rebuild_sql = f'INSERT INTO "{table}"("{table}") VALUES (\'rebuild\')'  # noqa: S608
            await connection.exec_driver_sql(rebuild_sql)

    return rebuild


COPY_COLUMNS = (
    "id",
    "channel_id",
    "seq",
    "revision",
    "user_id",
    "type",
    "text",
    "html",
    "mentions_channel",
    "has_attachments",
    "reply_count",
    "created_at",
)


# ----------------------------------------------------------------------------- one database


def bench_database(
    kind: str, work_dir: Path, postgres_url: str, parts: Sequence[str], duration: int, messages: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    corpus = Corpus(CORPUS_SEED)
    with database(kind, work_dir, postgres_url) as url:
        data_dir = work_dir / "pentad"
        admin_key = prepare(data_dir, url)
        port = free_port()
        server = chat_server(f"{kind}-chat", data_dir, work_dir, url, port)
        with running(server, ports=[port]):
            log(
                f"setup: {USERS + HISTORY_MEMBERS} users with tokens, {SEND_CHANNELS + 2} channels, "
                "through the API"
            )
            world = make_world(port, admin_key)
            results["setup_s"] = world.setup_seconds
            if "send" in parts:
                results["send"] = bench_send(server, port, world, duration)
                results["send"]["statements"] = statements_per_send(data_dir, url, world)
                log(f"send: {results['send']['statements']['per_send']:g} SQL statements per plain send")
        if "fanout" in parts:
            port = free_port()
            server = fanout_server(f"{kind}-fanout", data_dir, work_dir, url, port)
            with running(server, ports=[port]):
                results["fanout"] = bench_fanout(server, port, world, admin_key, duration)
        if "history" in parts or "search" in parts:
            log(f"loading {messages} messages into one channel")
            members = [user.id for user in world.readers]
            results["load"] = asyncio.run(bulk_load(url, world.history_channel, members, messages, corpus))
            log(f"loaded in {results['load']['total_s']} s: {results['load']}")
            port = free_port()
            server = chat_server(f"{kind}-history", data_dir, work_dir, url, port)
            with running(server, ports=[port]):
                if "history" in parts:
                    results["history"] = bench_history(server, port, world, messages)
                if "search" in parts:
                    results["search"] = bench_search(server, port, world, corpus)
    return results


# ----------------------------------------------------------------------------- results


def report(
    databases: dict[str, Any], duration: int, messages: int, load_before: float, open_files: int
) -> dict[str, Any]:
    return {
        "benchmark": "chat",
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
            "users": USERS,
            "readers": HISTORY_MEMBERS,
            "send": {
                "rate_per_s": SEND_RATE,
                "duration_s": duration,
                "warmup_s": SEND_WARMUP_SECONDS,
                "channels": SEND_CHANNELS,
                "members_per_channel": USERS // SEND_CHANNELS,
                "connections": SEND_CONNECTIONS,
                "loop": "open (latency from the moment each request was due)",
            },
            "fanout": {
                "members": FANOUT_MEMBERS,
                "rate_per_s": FANOUT_RATE,
                "duration_s": duration,
                "warmup_s": FANOUT_WARMUP_SECONDS,
                "subscriber_processes": FANOUT_PROCESSES,
                "senders": FANOUT_SENDERS,
            },
            "history": {
                "messages": messages,
                "page": HISTORY_PAGE,
                "requests": HISTORY_REQUESTS,
                "loop": "closed, 1 in flight",
            },
            "search": {
                "messages": messages,
                "vocabulary": VOCABULARY_SIZE,
                "zipf_exponent": ZIPF_EXPONENT,
                "words_per_message": list(WORDS_PER_MESSAGE),
                "queries_per_band": SEARCH_PER_BAND,
                "loop": "closed, 1 in flight",
            },
            "server_cpu": "0" if can_pin() else None,
            "client_cpu": CLIENT_CPU if can_pin() else None,
        },
        "databases": databases,
        "aim": AIM,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "none of the rates tried" if value is None else f"{value:g}/s"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(result: dict[str, Any]) -> str:
    host, load = result["host"], result["load"]
    pinning = (
        f"server on CPU {load['server_cpu']}, load generators on CPU {load['client_cpu']}"
        if load["server_cpu"] is not None
        else "not pinned (fewer than 2 CPUs)"
    )
    databases = result["databases"]
    lines = [
        "# chat: send, fan-out, history, search",
        "",
        f"{result['date']} · {host['cpu_count']} CPUs ({host['cpu_model']}) · {pinning} · "
        f"load average before: {host['load_average_1m_before']}",
    ]
    for kind, found in databases.items():
        if "skipped" in found:
            lines += ["", f"{kind}: skipped ({found['skipped']})."]
    ran = {kind: found for kind, found in databases.items() if "skipped" not in found}

    send = {kind: found["send"] for kind, found in ran.items() if "send" in found}
    if send:
        spec = load["send"]
        lines += [
            "",
            f"## Send: {spec['rate_per_s']:g} messages/s open loop for {spec['duration_s']} s, "
            f"{load['users']} users in {spec['channels']} channels",
            "",
            "| database | request | launched/s | answered/s | p50 ms | p99 ms | max ms | server CPU % "
            "| server CPU ms/request | capacity/s at that cost | client CPU % | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, found in send.items():
            for title, figures in (
                ("GET /api/chat/me (baseline)", found["baseline"]),
                ("POST message", found["send"]),
            ):
                lines.append(
                    f"| {kind} | {title} | {figures['achieved_rate'] or 0:.0f} | "
                    f"{figures['completed_per_s']:.0f} | {_ms(figures['p50_ms'])} | "
                    f"{_ms(figures['p99_ms'])} | {_ms(figures['max_ms'])} | "
                    f"{figures['server_cpu_pct']:.0f} | {figures['server_cpu_ms_per_request']:.2f} | "
                    f"{figures['server_capacity_per_s'] or 0:.0f} | {figures['client_cpu_pct']:.0f} | "
                    f"{figures['failed']} |"
                )
        lines.append("")
        for kind, found in send.items():
            r = found["ratios"]
            sustained = found["sustained"]
            steps = ", ".join(
                f"{step['rate_per_s']:g}/s: p99 {_ms(step['p99_ms'])} ms" for step in sustained["steps"]
            )
            lines.append(
                f"{kind}: send / baseline: p50 {_x(r['p50'])}, p99 {_x(r['p99'])}, "
                f"server CPU per request {_x(r['server_cpu_per_request'])}. Highest rate tried that met "
                f"p99 <= {AIM['send_p99_ms']:g} ms with every message stored: "
                f"{_rate(sustained['rate_per_s'])}"
                + (f" ({steps}, {SUSTAINED_SECONDS:g} s each)." if steps else ".")
                + f" SQL statements per plain send: {found['statements']['per_send']:g}."
            )

    fanout = {kind: found["fanout"] for kind, found in ran.items() if "fanout" in found}
    if fanout:
        spec = load["fanout"]
        lines += [
            "",
            f"## Fan-out: {spec['members']} members connected, {spec['rate_per_s']:g} messages/s for "
            f"{spec['duration_s']} s",
            "",
            "| database | what is sent | delivered % | full subscribers | p50 ms | p90 ms | p99 ms | max ms "
            "| server CPU % | send request p99 ms | seq gaps | connect s | quiet after s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, found in fanout.items():
            for title, f in (
                ("core publish, no DB (baseline)", found["baseline"]),
                ("chat message", found["chat"]),
            ):
                lines.append(
                    f"| {kind} | {title} | {f['delivered_pct']:.3f} | "
                    f"{f['full_subscribers']}/{f['subscribers']} | "
                    f"{_ms(f['p50_ms'])} | {_ms(f['p90_ms'])} | {_ms(f['p99_ms'])} | {_ms(f['max_ms'])} | "
                    f"{f['server_cpu_pct']:.0f} | {_ms(f['send_request_p99_ms'])} | {f['seq_gaps']} | "
                    f"{f['connect_seconds']:.1f} | {f['quiet_after_connect_s']:.1f} |"
                )
        lines.append("")
        for kind, found in fanout.items():
            r = found["ratios"]
            lines.append(
                f"{kind}: chat / baseline: p50 {_x(r['p50'])}, p99 {_x(r['p99'])}, "
                f"server CPU {_x(r['server_cpu'])}. "
                f"Other frames per subscriber run: {found['chat']['other_frames']}."
            )
        lines += [
            "",
            "connect s: until every subscriber was authenticated and subscribed; quiet after s: until the "
            "last presence `join` had arrived (chat channel topics have presence, so each member's join "
            "goes to every member already there). The measured sending starts after that.",
        ]

    history = {kind: found for kind, found in ran.items() if "history" in found}
    if history:
        spec = load["history"]
        lines += [
            "",
            f"## History: pages of {spec['page']} at random points of a {spec['messages']:,}-message "
            f"channel, {spec['requests']} requests one at a time",
            "",
            "| database | request | p50 ms | p90 ms | p99 ms | max ms | p99 vs baseline |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for kind, found in history.items():
            part = found["history"]
            for title, f in (
                ("GET /healthz (baseline)", part["baseline"]),
                ("GET messages?before=", part["history"]),
            ):
                lines.append(
                    f"| {kind} | {title} | {_ms(f['p50_ms'])} | {_ms(f['p90_ms'])} | {_ms(f['p99_ms'])} | "
                    f"{_ms(f['max_ms'])} | {_x(ratio(f['p99_ms'], part['baseline']['p99_ms']))} |"
                )
        lines.append("")
        for kind, found in history.items():
            lines.append(f"{kind}: loaded in {found['load']['total_s']} s ({found['load']}).")

    search = {kind: found["search"] for kind, found in ran.items() if "search" in found}
    if search:
        spec = load["search"]
        lines += [
            "",
            f"## Search: {spec['messages']:,} messages, {spec['vocabulary']:,}-word Zipf vocabulary, "
            f"{spec['queries_per_band']} one-word queries per band, one at a time",
            "",
            "| database | queries | p50 ms | p95 ms | p99 ms | max ms | p95 vs baseline |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for kind, part in search.items():
            base = part["baseline"]
            rows = [("GET /healthz (baseline)", base), ("all bands", part["search"])]
            bands = part["search"].get("by_label", {})
            rows += [
                (
                    f"{band} ({part['bands'][band]['expected_matching_pct'][0]}-"
                    f"{part['bands'][band]['expected_matching_pct'][1]} % of messages)",
                    bands[band],
                )
                for band in SEARCH_BANDS
                if band in bands
            ]
            for title, f in rows:
                lines.append(
                    f"| {kind} | {title} | {_ms(f['p50_ms'])} | {_ms(f['p95_ms'])} | {_ms(f['p99_ms'])} | "
                    f"{_ms(f['max_ms'])} | {_x(ratio(f['p95_ms'], base['p95_ms']))} |"
                )
    aim = result["aim"]
    lines += [
        "",
        f"Aims (not checked): send p99 <= {aim['send_p99_ms']:g} ms at {aim['send_rate_per_s']:g}/s; fan-out "
        f"{aim['fanout_delivered_pct']:g} % delivered, p99 <= {aim['fanout_p99_ms']:g} ms; history p99 <= "
        f"{aim['history_p99_ms']:g} ms; search p95 <= {aim['search_p95_ms']:g} ms.",
        "",
    ]
    return "\n".join(lines)


def orchestrate() -> int:
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    try:
        duration = environment_int("BENCH_DURATION", DEFAULT_DURATION, 1, MAX_DURATION)
        messages = environment_int("BENCH_CHAT_MESSAGES", HISTORY_MESSAGES, 1_000, 100_000_000)
        kinds = environment_list("BENCH_CHAT_DATABASES", DATABASES, DATABASES)
        parts = environment_list("BENCH_CHAT_PARTS", PARTS, PARTS)
        postgres_url = os.environ.get("BENCH_CHAT_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        open_files = raise_open_files_limit()
        if open_files < 2 * FANOUT_MEMBERS + 500:
            raise BenchmarkError(
                f"RLIMIT_NOFILE is {open_files}; the fan-out needs {2 * FANOUT_MEMBERS + 500}"
            )
        load_before = os.getloadavg()[0]
        databases: dict[str, Any] = {}
        for kind in kinds:
            if kind == "postgresql" and not reachable(postgres_url):
                databases[kind] = {"skipped": "the PostgreSQL server is not reachable"}
                print(f"== {kind}: skipped (not reachable)", flush=True)
                continue
            print(f"== {kind}", flush=True)
            with tempfile.TemporaryDirectory(prefix="pentad-bench-chat-") as work:
                databases[kind] = bench_database(kind, Path(work), postgres_url, parts, duration, messages)
    except BenchmarkError as exc:
        print(f"chat: could not run: {exc}", file=sys.stderr)
        return 1
    result = report(databases, duration, messages, load_before, open_files)
    RESULTS_DIR.mkdir(exist_ok=True)
    table = markdown(result)
    write_atomically(RESULTS_DIR / "chat.json", json.dumps(result, indent=2) + "\n")
    write_atomically(RESULTS_DIR / "chat.md", table)
    print("\n" + table, end="")
    return 0


# =====================================================================================================
# The load generator: `chat.py loadgen`, configuration on the first line of stdin, results on stdout.
# Everything below runs in that process, on CPU 1; every wait in it is bounded.
# =====================================================================================================


def emit(tag: str, payload: dict[str, Any]) -> None:
    """One `TAG {json}` line on stdout, whole. Written with os.write until every byte is out: under
    PYTHONUNBUFFERED=1 sys.stdout writes straight to the pipe and drops the rest of a write the kernel
    cut short (a RESULT line is often larger than the 64 KiB a pipe takes at once)."""
    sys.stdout.flush()
    remaining = memoryview(f"{tag} {json.dumps(payload)}\n".encode())
    while remaining:
        remaining = remaining[os.write(sys.stdout.fileno(), remaining) :]


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(data)
        async with asyncio.timeout(REQUEST_TIMEOUT):
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await self.reader.readexactly(length) if length else b""
        return int(head[9:12]), body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Template:
    head: bytes
    body: bytes | None
    label: str

    def render(self, n: int, phase: bytes) -> bytes:
        if self.body is None:
            return self.head + b"\r\n"
        body = self.body.replace(b"@N@", b"%d" % n).replace(b"@P@", phase)
        # The send time goes in last, as close to the write as it can be.
        body = body.replace(b"@T@", b"%.6f" % time.monotonic())
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def templates(config: dict[str, Any]) -> list[Template]:
    found = []
    for spec in config["requests"]:
        head = f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: {config['host']}:{config['port']}\r\n"
        if spec["token"]:
            head += f"Authorization: Bearer {spec['token']}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in spec.get("headers", {}).items())
        body = spec["body"]
        if body is not None:
            head += "Content-Type: application/json\r\n"
        found.append(Template(head.encode(), body.encode() if body is not None else None, spec["label"]))
    return found


@dataclass
class HttpRun:
    expect: frozenset[int]
    warmup: int
    server_pid: int
    latencies: dict[str, list[float]] = field(default_factory=dict)
    service: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    unfinished: int = 0
    answered: int = 0
    behind: float = 0.0
    first_launch: float = 0.0
    last_launch: float = 0.0
    snapshot: tuple[float, float, dict[str, tuple[int, int, int]]] | None = None

    def launch(self, index: int, due: float) -> bool:
        """Note that request `index` (due at `due`) goes now; whether it is measured."""
        if index < self.warmup:
            return False
        now = time.monotonic()
        if index == self.warmup:
            self.first_launch = now
            self.snapshot = (process_cpu_seconds(self.server_pid), own_cpu_seconds(), core_times())
        self.last_launch = now
        self.behind = max(self.behind, now - due)
        return True

    async def one(
        self, connection: Connection, template: Template, index: int, due: float, *, measured: bool
    ) -> None:
        phase = b"m" if measured else b"w"
        try:
            for attempt in (1, 2):
                wrote = time.monotonic()
                try:
                    status, body = await connection.exchange(template.render(index, phase))
                    break
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    connection.close()
                    # A keep-alive connection the server closed while idle fails before any answer: send
                    # again on a new one. Anything else (a timeout: the server may have handled it) is an
                    # error, never sent twice.
                    if attempt == 2 or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                        raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            connection.close()
            if measured:
                self.failed += 1
                if len(self.failures) < 5:
                    self.failures.append(repr(exc))
            return
        done = time.monotonic()
        if not measured:
            return
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.answered += 1
        if status in self.expect:
            self.ok += 1
            self.latencies.setdefault(template.label, []).append(round((done - due) * 1000, 3))
            self.service.setdefault(template.label, []).append(round((done - wrote) * 1000, 3))
        else:
            self.failed += 1
            if len(self.failures) < 5:
                self.failures.append(f"HTTP {status}: {body[:300]!r}")

    def figures(self, count: int, rate: float | None) -> dict[str, Any]:
        assert self.snapshot is not None
        server_before, own_before, cores_before = self.snapshot
        window = max(time.monotonic() - self.first_launch, 1e-9)
        server = process_cpu_seconds(self.server_pid) - server_before
        launching = self.last_launch - self.first_launch
        return {
            "requests": count,
            "ok": self.ok,
            "failed": self.failed,
            "unfinished": self.unfinished,
            "statuses": self.statuses,
            "failures": self.failures,
            "rate_target": rate,
            # How fast the generator sent the requests out (open loop: it should match the target).
            "achieved_rate": round((count - 1) / launching, 1) if count > 1 and launching > 0 else None,
            "completed_per_s": round(self.ok / window, 1),
            "behind_max_ms": round(self.behind * 1000, 1),
            "server_cpu_pct": round(100 * server / window, 1),
            # Per request answered: an overloaded server never served the unfinished ones.
            "server_cpu_ms_per_request": round(1000 * server / max(self.answered, 1), 3),
            # Requests per second one server core could complete at that cost (a ceiling, not a figure
            # measured: queueing makes latency climb well before it).
            "server_capacity_per_s": round(self.answered / server, 1) if server else None,
            "client_cpu_pct": round(100 * (own_cpu_seconds() - own_before) / window, 1),
            "core_busy_pct": core_busy_pct(cores_before, core_times()),
            "latencies_ms": self.latencies,
            "service_ms": self.service,
        }


async def http_mode(config: dict[str, Any]) -> dict[str, Any]:
    """Open loop (`rate`: request i is due at start + i / rate, whatever happened before; latency counts from
    then, so a server falling behind is not hidden by a generator that waits for it) or closed loop
    (`rate` null: `connections` requests in flight, each sent when the previous one answered)."""
    requests = templates(config)
    warmup, count, rate = config["warmup"], config["count"], config["rate"]
    total = warmup + count
    run = HttpRun(frozenset(config["expect"]), warmup, config["server_pid"])
    connections = [Connection(config["host"], config["port"]) for _ in range(config["connections"])]
    try:
        if rate:
            free: asyncio.Queue[Connection] = asyncio.Queue()
            for connection in connections:
                free.put_nowait(connection)

            async def send(index: int, due: float, *, measured: bool) -> None:
                connection = await free.get()
                try:
                    await run.one(connection, requests[index % len(requests)], index, due, measured=measured)
                finally:
                    free.put_nowait(connection)

            tasks = set()
            start = time.monotonic() + 0.05
            for index in range(total):
                due = start + index / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.ensure_future(send(index, due, measured=run.launch(index, due)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                _, pending = await asyncio.wait(list(tasks), timeout=OVERLOAD_WAIT_SECONDS)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                # An overloaded server still owes answers when the wait ends: count them as failed.
                run.unfinished = count - run.ok - run.failed
                run.failed += run.unfinished
        else:
            counter = itertools.count()

            async def worker(connection: Connection) -> None:
                while (index := next(counter)) < total:
                    now = time.monotonic()
                    measured = run.launch(index, now)
                    await run.one(connection, requests[index % len(requests)], index, now, measured=measured)

            await asyncio.gather(*(worker(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    return run.figures(count, rate)


class Subscriber(WsClient):
    """A chat client on /ws that counts the measured messages (text `bench m <n> <send time> ...`) of
    message.new events (or, for the baseline, of rtbench events) and checks the topic's seq."""

    def _text(self, payload: bytes, now: float) -> None:
        frame = orjson.loads(payload)
        op = frame["op"]
        if op == "event":
            seq = frame["seq"]
            if seq != self.last_seq + 1 and self.last_seq >= 0:
                self.gaps += 1
            self.last_seq = seq
            data = frame["data"]
            kind = data.get("type", "rtbench")
            text = (
                data.get("text")
                if kind == "rtbench"
                else data["message"]["text"]
                if kind == "message.new"
                else None
            )
            if text is not None and text.startswith("bench m "):
                self.received += 1
                self.latencies.append(now - float(text.split(" ", 4)[3]))
            else:
                others = self.stats.other_frames
                others[kind] = others.get(kind, 0) + 1
        elif op == "ping":
            self._send(0x1, PONG)
        elif op == "ack":
            future = self.acks.pop(frame["id"], None)
            if future is not None and not future.done():
                future.set_result(frame)
        else:
            others = self.stats.other_frames
            others[op] = others.get(op, 0) + 1


async def connect_subscriber(stats: Stats, config: dict[str, Any], token: str) -> Subscriber:
    loop = asyncio.get_running_loop()
    host, port = config["host"], config["port"]
    async with asyncio.timeout(CONNECT_TIMEOUT):
        _, client = await loop.create_connection(lambda: Subscriber(stats, host, port, "/ws"), host, port)
        try:
            await client.opened
            await client.request("auth", token=token)
            for attempt in range(1, SUBSCRIBE_ATTEMPTS + 1):
                try:
                    await client.request("subscribe", topic=config["topic"])
                    break
                except RequestRefused as exc:
                    # `unavailable`: try again shortly, as the protocol asks a client to.
                    if exc.code != "unavailable" or attempt == SUBSCRIBE_ATTEMPTS:
                        raise
                    stats.subscribe_retries += 1
                    await asyncio.sleep(0.2 * attempt)
        except BaseException:
            client.abort()
            raise
    return client


async def commands() -> asyncio.Queue[str]:
    """The orchestrator's commands (stdin lines after the configuration), as they come."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, "EOF")

    threading.Thread(target=read, daemon=True).start()
    return lines


async def subscribe_mode(config: dict[str, Any]) -> dict[str, Any]:
    """Connect every token's subscriber; READY; on `EXPECT <messages> <drain s>`, wait until each has that
    many measured messages (or the drain time is up) and report."""
    stats = Stats()
    semaphore = asyncio.Semaphore(config["connect_concurrency"])

    async def one(token: str) -> Subscriber:
        async with semaphore:
            return await connect_subscriber(stats, config, token)

    started = time.monotonic()
    tasks = [asyncio.ensure_future(one(token)) for token in config["tokens"]]
    try:
        async with asyncio.timeout(OPEN_ALL_TIMEOUT):
            clients = list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().abort()
        raise
    try:
        lines = await commands()
        connected = time.monotonic() - started
        # Joining a presence topic tells every member already there: the last joins of a connect storm are
        # still being delivered when the last acknowledgement arrives. Measure from a quiet start.
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < QUIET_LIMIT_SECONDS:
            if time.monotonic() - stats.last_receive >= QUIET_SECONDS:
                break
            await asyncio.sleep(0.05)
        emit(
            "READY",
            {
                "connected": len(clients),
                "seconds": round(connected, 2),
                "quiet_after_s": round(time.monotonic() - started, 2),
                "subscribe_retries": stats.subscribe_retries,
            },
        )
        cpu_before, clock = own_cpu_seconds(), time.monotonic()
        while not (command := await lines.get()).startswith(("EXPECT", "EOF")):
            pass
        if command == "EOF":
            raise BenchmarkError("the orchestrator went away")
        _, expected_text, drain_text = command.split()
        expected = int(expected_text)
        deadline = time.monotonic() + float(drain_text)
        while time.monotonic() < deadline:
            if all(client.received >= expected for client in clients):
                break
            await asyncio.sleep(0.02)
        return {
            "subscribers": len(clients),
            "received": sum(client.received for client in clients),
            "full_subscribers": sum(1 for client in clients if client.received >= expected),
            "seq_gaps": sum(client.gaps for client in clients),
            "closed": sum(1 for client in clients if not client.alive),
            "latencies_ms": [round(v * 1000, 3) for v in stats.latencies],
            "cpu_pct": round(100 * (own_cpu_seconds() - cpu_before) / max(time.monotonic() - clock, 1e-9), 1),
            "other_frames": stats.other_frames,
            "failures": stats.failures[:5],
        }
    finally:
        for client in clients:
            client.abort()


def loadgen() -> int:
    """Entry point of a load generator process."""
    import uvloop

    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    config = json.loads(sys.stdin.readline())
    mode: Callable[[dict[str, Any]], Any] = {"http": http_mode, "subscribe": subscribe_mode}[config["mode"]]
    try:
        result = uvloop.run(mode(config))
    except Exception as exc:  # reported to the orchestrator, which fails the benchmark with it
        result = {"error": f"{type(exc).__name__}: {exc}"}
    emit("RESULT", result)
    return 0


if __name__ == "__main__":
    sys.exit(loadgen() if sys.argv[1:] == ["loadgen"] else orchestrate())
