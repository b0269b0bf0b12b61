"""Signed outgoing webhooks: delivered by the sender's job to a real receiver on loopback, signed so a
receiver can verify them, retried on failure with the same delivery id, dead-lettered after the allowed
attempts, never sent to a private destination, each attempt's outcome handed to the app."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.config import Settings
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs.models import JobStatus
from pentad.core.platform import Platform
from pentad.core.webhooks import DeliveryOutcome, WebhookSender, WebhookTarget, signature, verify_signature
from tests.conftest import make_settings
from tests.core.jobs.conftest import jobs_named, set_job
from tests.factories import run_due_jobs
from tests.receivers import Answer, Receiver, receiving

JOB = "hooks.deliver"
SECRET = "whsec_test-secret"


@dataclass
class Hooks:
    """The app's side: its targets (by key) and the outcomes it was told of."""

    targets: dict[str, WebhookTarget] = field(default_factory=dict)
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    async def load(self, session: AsyncSession, platform: Platform, key: str) -> WebhookTarget | None:
        return self.targets.get(key)

    async def record(self, session: AsyncSession, platform: Platform, outcome: DeliveryOutcome) -> None:
        self.outcomes.append(outcome)


@dataclass
class Sending:
    platform: Platform
    sender: WebhookSender
    hooks: Hooks
    receiver: Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def _build(settings: Settings, database: Database, receiver: Receiver) -> Sending:
    hooks = Hooks()
    sender = WebhookSender(JOB, load_target=hooks.load, record_outcome=hooks.record, max_attempts=2)
    app = AppSpec(name="hooks", title="Hooks", jobs=[sender.job_spec()])
    platform: Platform = create_app(settings, database=database, apps=[app]).state.platform
    return Sending(platform, sender, hooks, receiver)


@pytest.fixture
def sending(tmp_path: Path, database_url: str, database: Database, receiver: Receiver) -> Sending:
    settings = make_settings(tmp_path, database_url, outbound={"allowed_networks": ["127.0.0.0/8"]})
    return _build(settings, database, receiver)


async def _send(sending: Sending, targets: list[str], data: dict[str, object]) -> str:
    async with sending.platform.database.transaction() as session:
        return await sending.sender.send(session, targets, "thing.happened", data)


async def test_an_event_is_delivered_signed_to_each_target(sending: Sending) -> None:
    sending.hooks.targets = {
        "a": WebhookTarget(sending.receiver.url("/a"), SECRET),
        "b": WebhookTarget(sending.receiver.url("/b"), "whsec_other"),
    }
    event_id = await _send(sending, ["a", "b"], {"n": 1})
    await run_due_jobs(sending.platform)

    received = {request.path: request for request in sending.receiver.requests}
    assert set(received) == {"/a", "/b"}
    for path, secret in (("/a", SECRET), ("/b", "whsec_other")):
        request = received[path]
        assert verify_signature(secret, request.headers["Pentad-Signature"], request.body)
        assert request.headers["Pentad-Event"] == "thing.happened"
        assert request.headers["Pentad-Delivery"] == event_id
        assert request.headers["Content-Type"] == "application/json"
        event = json.loads(request.body)
        assert (event["id"], event["type"], event["data"]) == (event_id, "thing.happened", {"n": 1})
    assert not verify_signature(
        "whsec_other", received["/a"].headers["Pentad-Signature"], received["/a"].body
    )
    assert sorted((o.target, o.delivered, o.summary, o.final) for o in sending.hooks.outcomes) == [
        ("a", True, "HTTP 200", True),
        ("b", True, "HTTP 200", True),
    ]


def test_the_signature_is_the_documented_hmac() -> None:
    body = b'{"id":"1"}'
    # hex HMAC-SHA256 of b'1700000000.{"id":"1"}' keyed with the secret's bytes (docs/chat.md)
    header = signature("whsec_k", 1_700_000_000, body)
    expected = hmac.new(b"whsec_k", b'1700000000.{"id":"1"}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature("whsec_k", header, body, now=1_700_000_100)
    assert not verify_signature("whsec_k", header, body + b" ", now=1_700_000_100)
    assert not verify_signature("whsec_k", header, body, now=1_700_000_000 + 301)
    assert not verify_signature("whsec_k", "v1=deadbeef", body)
    assert verify_signature("whsec_k", signature("whsec_k", int(time.time()), body), body)


async def test_a_5xx_is_retried_with_the_same_delivery_then_dead_lettered(sending: Sending) -> None:
    sending.hooks.targets = {"a": WebhookTarget(sending.receiver.url(), SECRET)}
    sending.receiver.answers = [Answer(503), Answer(500)]
    await _send(sending, ["a"], {"n": 2})

    await run_due_jobs(sending.platform)
    (job,) = await jobs_named(sending.platform, JOB)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    await set_job(sending.platform, job.id, run_at=utcnow())
    await run_due_jobs(sending.platform)

    (job,) = await jobs_named(sending.platform, JOB)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 2)
    first, second = sending.receiver.requests
    assert first.headers["Pentad-Delivery"] == second.headers["Pentad-Delivery"]
    assert first.body == second.body
    assert [(o.attempt, o.delivered, o.status_code, o.final) for o in sending.hooks.outcomes] == [
        (1, False, 503, False),
        (2, False, 500, True),
    ]


async def test_a_retry_that_is_accepted_ends_the_delivery(sending: Sending) -> None:
    sending.hooks.targets = {"a": WebhookTarget(sending.receiver.url(), SECRET)}
    sending.receiver.answers = [Answer(502)]
    await _send(sending, ["a"], {"n": 3})
    await run_due_jobs(sending.platform)
    (job,) = await jobs_named(sending.platform, JOB)
    await set_job(sending.platform, job.id, run_at=utcnow())
    await run_due_jobs(sending.platform)

    (job,) = await jobs_named(sending.platform, JOB)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert [o.summary for o in sending.hooks.outcomes] == ["HTTP 502", "HTTP 200"]


async def test_a_private_destination_is_refused_and_never_contacted(
    tmp_path: Path, database_url: str, database: Database, receiver: Receiver
) -> None:
    sending = _build(make_settings(tmp_path, database_url), database, receiver)
    sending.hooks.targets = {"a": WebhookTarget(f"https://127.0.0.1:{receiver.port}/hook", SECRET)}
    await _send(sending, ["a"], {"n": 4})

    await run_due_jobs(sending.platform)

    assert receiver.requests == []
    (outcome,) = sending.hooks.outcomes
    assert (outcome.delivered, outcome.status_code, outcome.final) == (False, None, False)
    assert outcome.summary == "refused: The host '127.0.0.1' resolves to a private or reserved address."
    (job,) = await jobs_named(sending.platform, JOB)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)


async def test_a_target_gone_before_delivery_gets_nothing(sending: Sending) -> None:
    await _send(sending, [str(uuid.uuid4())], {"n": 5})
    await run_due_jobs(sending.platform)

    assert sending.receiver.requests == []
    assert sending.hooks.outcomes == []
    (job,) = await jobs_named(sending.platform, JOB)
    assert job.status == JobStatus.SUCCEEDED


async def test_a_rolled_back_send_queues_nothing(sending: Sending) -> None:
    sending.hooks.targets = {"a": WebhookTarget(sending.receiver.url(), SECRET)}

    async def send_then_fail() -> None:
        async with sending.platform.database.transaction() as session:
            await sending.sender.send(session, ["a"], "thing.happened", {"n": 6})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await send_then_fail()
    await run_due_jobs(sending.platform)
    assert await jobs_named(sending.platform, JOB) == []
    assert sending.receiver.requests == []
