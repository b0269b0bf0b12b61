"""Several nodes behave as one (issue: scale-out). Through nginx only, on PostgreSQL and a Redis of the
cluster's own, with 3 `pentad serve` nodes and 2 `pentad worker` processes (tests/cluster/harness.py):

1. chat clients spread over the nodes see each other's messages live and in order;
2. a node killed with SIGKILL under steady sends: clients reconnect through nginx and every acknowledged
   message is stored exactly once, without sequence gaps;
3. a rolling restart of every node under load: no 5xx at nginx, nothing lost;
4. a worker killed mid-job: the job completes exactly once on the other worker;
5. Redis restarted mid-traffic: the hub recovers by itself and clients resume without loss;
6. a login rate limit and an API key revocation hold on every node.

The scenarios share one cluster (starting it is the expensive part) and each leaves it whole.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from pentad.apps.chat.spec import APP as CHAT_APP
from pentad.core.jobs.models import Job, JobStatus
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform
from pentad_chat import ChatClient, ChatServer, Message, MessageEvent, OutgoingMessage
from tests.cluster.harness import LEASE_SECONDS, Cluster, cluster
from tests.conftest import make_settings
from tests.core.jobs import worker_app
from tests.databases import scratch_database, selected_databases
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.slow

SEND_INTERVAL = 0.02
MAX_OUTSTANDING = 50


@pytest.fixture(scope="module")
async def topology(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    if "postgresql" not in selected_databases():
        pytest.skip("the cluster runs on PostgreSQL (PENTAD_TEST_DATABASES has no postgresql)")
    root = tmp_path_factory.mktemp("cluster")
    async with scratch_database("postgresql", root) as url, cluster(root, url) as running:
        yield running


async def _users(topology: Cluster, *names: str) -> tuple[uuid.UUID, dict[str, str]]:
    """A group channel of `names` (the first creates it) and a user token for each, made through nginx."""
    async with ChatServer(topology.url, topology.server_key) as backend:
        for name in names:
            await backend.upsert_user(name, name=name.title())
        channel = await backend.create_channel(names[0], kind="group", members=list(names[1:]))
        tokens = {name: (await backend.create_user_token(name)).token for name in names}
    return channel.id, tokens


def _client(topology: Cluster, token: str) -> ChatClient:
    return ChatClient(topology.url, token, backoff_initial=0.1, backoff_max=0.5, timeout=5.0)


async def _history(client: ChatClient, channel_id: uuid.UUID) -> list[Message]:
    found: list[Message] = []
    after = 0
    while True:
        page = await client.history(channel_id, after=after, limit=200)
        found.extend(page.messages)
        if not page.has_more:
            return found
        after = page.messages[-1].seq


async def _send_steadily(
    sender: ChatClient, channel_id: uuid.UUID, label: str, until: Callable[[], bool]
) -> list[OutgoingMessage]:
    attempted: list[OutgoingMessage] = []
    while not until():
        if len(sender.pending) < MAX_OUTSTANDING:
            attempted.append(sender.enqueue(channel_id, f"{label} {len(attempted)}"))
        await asyncio.sleep(SEND_INTERVAL)
    async with asyncio.timeout(60):
        await sender.drain()
    return attempted


async def _delivered(events: object, count: int) -> list[MessageEvent]:
    got: list[MessageEvent] = []
    async with asyncio.timeout(60):
        while len(got) < count:
            event = await events.get()  # type: ignore[attr-defined]
            assert isinstance(event, MessageEvent)
            got.append(event)
    return got


def _exactly_once_in_order(attempted: list[OutgoingMessage], stored: list[Message], label: str) -> None:
    mine = [m for m in stored if m.text.startswith(label + " ")]
    counts = Counter(m.client_id for m in mine)
    assert set(counts) == {o.client_id for o in attempted}
    assert max(counts.values()) == 1
    assert [m.text for m in mine] == [f"{label} {n}" for n in range(len(attempted))]
    seqs = [m.seq for m in stored]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "sequence numbers have a gap"
    assert all(o.acknowledged for o in attempted)


def _upstreams(topology: Cluster, uri_prefix: str, since: int = 0) -> set[str]:
    return {line[3] for line in topology.access_lines()[since:] if line[2].startswith(uri_prefix)}


# ---------------------------------------------------------------------- 1


async def test_clients_on_different_nodes_see_each_others_messages_live_and_in_order(
    topology: Cluster,
) -> None:
    names = [f"u{n}-{uuid.uuid4().hex[:4]}" for n in range(6)]
    channel_id, tokens = await _users(topology, *names)
    mark = len(topology.access_lines())
    clients = [_client(topology, tokens[name]) for name in names]
    streams = [client.events("message.new") for client in clients]
    try:
        # Connected one after the other, the sockets take the nodes in turn (nginx's round robin).
        for client in clients:
            await client.connect()
        for client in clients:
            await client.subscribe(channel_id)
        for round_ in range(3):
            for index, client in enumerate(clients):
                await client.send(channel_id, f"round {round_} from {index}")
        expected = 3 * len(clients)
        received = [await _delivered(stream, expected) for stream in streams]
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    # Six sockets over three nodes: every node held some of them.
    assert len(_upstreams(topology, "/ws", mark)) == len(topology.serve)
    orders = [[event.message.seq for event in got] for got in received]
    assert all(order == orders[0] for order in orders), "every client saw the same order"
    assert orders[0] == sorted(orders[0])
    assert len(set(orders[0])) == expected


# ---------------------------------------------------------------------- 2


async def test_a_node_killed_under_steady_sends_loses_and_doubles_nothing(topology: Cluster) -> None:
    channel_id, tokens = await _users(topology, f"s-{uuid.uuid4().hex[:4]}", f"r-{uuid.uuid4().hex[:4]}")
    sender_token, reader_token = tokens.values()
    sender, reader = _client(topology, sender_token), _client(topology, reader_token)
    received = reader.events("message.new")
    victim = topology.serve[1]
    try:
        await sender.connect()
        await reader.connect()
        await reader.subscribe(channel_id)
        started = time.monotonic()

        async def crash() -> None:
            await asyncio.sleep(2)
            await victim.kill()
            await asyncio.sleep(3)
            await victim.start()

        crashing = asyncio.create_task(crash())
        attempted = await _send_steadily(sender, channel_id, "steady", lambda: time.monotonic() - started > 8)
        await crashing
        stored = await _history(sender, channel_id)
        delivered = await _delivered(received, len(stored))
    finally:
        await sender.close()
        await reader.close()
    assert len(attempted) > 20  # sends went on before, during and after the crash
    _exactly_once_in_order(attempted, stored, "steady")
    assert [e.message.id for e in delivered] == [m.id for m in stored]


# ---------------------------------------------------------------------- 3


async def test_a_rolling_restart_under_load_answers_no_5xx_and_loses_nothing(topology: Cluster) -> None:
    channel_id, tokens = await _users(topology, f"s-{uuid.uuid4().hex[:4]}", f"r-{uuid.uuid4().hex[:4]}")
    sender_token, reader_token = tokens.values()
    sender, reader = _client(topology, sender_token), _client(topology, reader_token)
    received = reader.events("message.new")
    mark = len(topology.access_lines())
    restarted = asyncio.Event()
    try:
        await sender.connect()
        await reader.connect()
        await reader.subscribe(channel_id)

        async def roll() -> None:
            await asyncio.sleep(1)
            for node in topology.serve:
                code = await node.stop()
                await node.start()
                # SIGTERM ended it within the grace period (a SIGKILL after it would be -9).
                assert code is not None
                assert code != -9, f"{node.name} had to be killed"
                await asyncio.sleep(0.5)
            restarted.set()

        async def read_history() -> int:
            reads = 0
            while not restarted.is_set() and not rolling.done():
                await reader.history(channel_id, limit=5)
                reads += 1
                await asyncio.sleep(0.05)
            return reads

        rolling = asyncio.create_task(roll())
        reading = asyncio.create_task(read_history())
        attempted = await _send_steadily(sender, channel_id, "rolling", rolling.done)
        await rolling
        reads = await reading
        stored = await _history(sender, channel_id)
        delivered = await _delivered(received, len(stored))
    finally:
        await sender.close()
        await reader.close()
    assert reads > 20
    errors = [line for line in topology.access_lines()[mark:] if line[0].startswith("5")]
    assert errors == []
    _exactly_once_in_order(attempted, stored, "rolling")
    assert [e.message.id for e in delivered] == [m.id for m in stored]


# ---------------------------------------------------------------------- 4


async def _eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_job_leaves_the_job_to_the_other_exactly_once(
    topology: Cluster, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, topology.database_url, apps=["chat"])
    platform = Platform.build(settings, [CHAT_APP, worker_app.APP])
    log = tmp_path / "runs.log"
    try:
        async with platform.database.transaction() as session:
            job_id = await enqueue(session, worker_app.SLEEP_JOB, {"log": str(log), "seconds": 3})
        assert job_id is not None

        async def started() -> bool:
            return log.exists() and "start" in log.read_text()

        await _eventually(started, 30)
        (first,) = [line.split() for line in log.read_text().splitlines()]
        victim = next(w for w in topology.work if w.pid == int(first[1]))
        survivor = next(w for w in topology.work if w is not victim)
        survivor_pid = survivor.pid
        await victim.kill()

        async def finished() -> bool:
            async with platform.database.transaction(writes=False) as session:
                job = await session.get(Job, job_id)
                return job is not None and job.status == JobStatus.SUCCEEDED

        await _eventually(finished, LEASE_SECONDS * 6)
        runs = [line.split() for line in log.read_text().splitlines()]
        assert runs[0] == ["start", first[1], "1"]
        assert [run[0] for run in runs] == ["start", "start", "done"]
        assert runs[1][1] == runs[2][1] == str(survivor_pid)
    finally:
        await platform.close()
        if topology.work[0].process is None or topology.work[1].process is None:
            await asyncio.gather(*(w.start() for w in topology.work if w.process is None))


# ---------------------------------------------------------------------- 5


async def test_redis_restarted_mid_traffic_the_hub_recovers_and_clients_resume(topology: Cluster) -> None:
    channel_id, tokens = await _users(topology, f"s-{uuid.uuid4().hex[:4]}", f"r-{uuid.uuid4().hex[:4]}")
    sender_token, reader_token = tokens.values()
    sender, reader = _client(topology, sender_token), _client(topology, reader_token)
    received = reader.events("message.new")
    try:
        await sender.connect()
        await reader.connect()
        await reader.subscribe(channel_id)
        started = time.monotonic()

        async def bounce() -> None:
            await asyncio.sleep(2)
            await topology.redis.kill()
            await asyncio.sleep(1)
            await topology.redis.start()
            await topology.wait_for_redis()

        bouncing = asyncio.create_task(bounce())
        attempted = await _send_steadily(sender, channel_id, "bounce", lambda: time.monotonic() - started > 7)
        await bouncing
        stored = await _history(sender, channel_id)
        delivered = await _delivered(received, len(stored))
        # Live again: a message after the bounce arrives as it is sent.
        after = await sender.send(channel_id, "after the bounce")
        (live,) = await _delivered(received, 1)
    finally:
        await sender.close()
        await reader.close()
    _exactly_once_in_order(attempted, stored, "bounce")
    assert [e.message.id for e in delivered] == [m.id for m in stored]
    assert live.message.id == after.id
    async with httpx.AsyncClient(base_url=topology.url) as client:
        for _ in topology.serve:
            assert (await client.get("/readyz")).status_code == 200


# ---------------------------------------------------------------------- 6


async def test_login_limits_and_key_revocations_hold_on_every_node(topology: Cluster) -> None:
    async with httpx.AsyncClient(base_url=topology.url, timeout=10) as client:
        # The per-account login limit (10 per 15 minutes) is one budget across the nodes.
        victim = f"nobody-{uuid.uuid4().hex[:6]}@example.com"
        mark = len(topology.access_lines())
        statuses = []
        for _ in range(12):
            answer = await client.post(
                "/api/auth/login", json={"email": victim, "password": "wrong password!"}
            )
            statuses.append(answer.status_code)
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]
        assert len(_upstreams(topology, "/api/auth/login", mark)) == len(topology.serve)

        # A revoked API key is refused by every node at once (the revocation travels through Redis).
        login = await client.post(
            "/api/auth/login", json={"email": topology.admin_email, "password": DEFAULT_PASSWORD}
        )
        assert login.status_code == 200, login.text
        session = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await client.post("/api/me/api-keys", json={"name": "cluster"}, headers=session)
        assert created.status_code == 201, created.text
        key = {"Authorization": f"Bearer {created.json()['token']}"}
        mark = len(topology.access_lines())
        for _ in range(2 * len(topology.serve)):  # every node has verified and cached it
            assert (await client.get("/api/me", headers=key)).status_code == 200
        assert len(_upstreams(topology, "/api/me", mark)) == len(topology.serve)
        revoked = await client.delete(f"/api/me/api-keys/{created.json()['id']}", headers=session)
        assert revoked.status_code == 204
        mark = len(topology.access_lines())
        refused = [
            (await client.get("/api/me", headers=key)).status_code for _ in range(2 * len(topology.serve))
        ]
        assert refused == [401] * len(refused)
        assert len(_upstreams(topology, "/api/me", mark)) == len(topology.serve)
