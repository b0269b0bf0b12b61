"""Signed outgoing webhooks: an app tells a receiver's URL what happened, at least once, signed.

An app declares one `WebhookSender` (its delivery job, how to find a target's URL and secret when the job
runs, where to record the outcome) and registers `sender.job_spec()` in its AppSpec's jobs. `send(...)`
queues one delivery job per target in the caller's transaction (nothing is sent on rollback); the job loads
the target itself, so no URL or secret sits in the jobs table, and a target deleted or paused meanwhile
(`load_target` returns None) gets nothing.

Each delivery is an HTTP POST of the JSON event `{"id", "type", "created_at", "data"}` through the
netguard client (checked again and pinned before every attempt, no redirects), with the headers

    Pentad-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the target's secret>
    Pentad-Event: <type>        Pentad-Delivery: <event id, the same on every retry: receivers deduplicate>

Anything but a 2xx answer fails the attempt; the job is retried with the jobs' backoff and dead-lettered
after its max attempts (admins see and retry it like any job). Every attempt's outcome goes to
`record_outcome`, in its own transaction.

    SENDER = WebhookSender("market.alert_deliver", load_target=alert_target, record_outcome=note_outcome)
    APP = AppSpec(name="market", ..., jobs=[SENDER.job_spec()])
    await SENDER.send(session, [str(alert.id)], "price.crossed", {"type_id": 34, "price": "5.12"})
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.db.base import utcnow
from pentad.core.jobs.queue import NewJob, enqueue_many
from pentad.core.jobs.registry import DEFAULT_QUEUE, JobSpec
from pentad.core.netguard import DestinationNotAllowed, GuardedClient

if TYPE_CHECKING:
    from pentad.core.context import AppContext, JobContext

SIGNATURE_HEADER = "Pentad-Signature"
EVENT_HEADER = "Pentad-Event"
DELIVERY_HEADER = "Pentad-Delivery"
USER_AGENT = "Pentad-Webhooks/1"
SIGNATURE_TOLERANCE = 300
"""Seconds a receiver accepts a signature's timestamp either way (`verify_signature`)."""
EVENT_FIELDS = ("id", "type", "created_at", "data")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Pentad-Signature` header value of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = SIGNATURE_TOLERANCE
) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance` seconds of `now`: what a
    receiver checks (a replayed old delivery fails the time check)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        presented = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rpartition("v1=")[2]
    return hmac.compare_digest(presented, expected)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one delivery goes, read when the job runs."""

    url: str
    secret: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOutcome:
    """What one attempt came to, for the app to show its users (e.g. a webhook's last status)."""

    target: str
    event_id: str
    attempt: int
    delivered: bool
    summary: str
    """`HTTP 204`, `failed: ConnectTimeout` or `refused: <why>`; never the URL (it may hold a token)."""
    status_code: int | None
    final: bool
    """No attempt follows: delivered, or the last allowed attempt failed (the job is dead now)."""


TargetLoader = Callable[[AsyncSession, "AppContext", str], Awaitable[WebhookTarget | None]]
OutcomeRecorder = Callable[[AsyncSession, "AppContext", DeliveryOutcome], Awaitable[None]]
ClientFactory = Callable[["AppContext"], GuardedClient]


class DeliveryFailed(Exception):
    """A delivery the receiver did not accept; the job fails and is retried."""


def _default_client(platform: AppContext) -> GuardedClient:
    return GuardedClient(platform.outbound)


@dataclass(frozen=True)
class WebhookSender:
    """One app's kind of webhook: `job` names its delivery job (`<app>.<verb>`); `load_target` finds a
    target's URL and secret by the key `send` was given (None: send nothing); `record_outcome` (optional)
    gets every attempt's outcome; `client` builds the guarded client (default: the outbound settings), e.g.
    with the app's own timeout. `max_attempts` and `queue` are the job's (JobSpec)."""

    job: str
    load_target: TargetLoader
    record_outcome: OutcomeRecorder | None = None
    client: ClientFactory = _default_client
    max_attempts: int | Callable[[AppContext], int] | None = None
    queue: str = DEFAULT_QUEUE

    def job_spec(self) -> JobSpec:
        return JobSpec(self.job, self._deliver, max_attempts=self.max_attempts, queue=self.queue)

    async def send(
        self, session: AsyncSession, targets: Sequence[str], event_type: str, data: Mapping[str, Any]
    ) -> str:
        """Queue one delivery of the event per target, in the caller's transaction; the event's id (the
        same for every target and every retry). `data` must be JSON-ready."""
        event_id = str(uuid.uuid4())
        event = {"id": event_id, "type": event_type, "created_at": utcnow().isoformat(), "data": dict(data)}
        await enqueue_many(session, [NewJob(self.job, {"target": target, **event}) for target in targets])
        return event_id

    async def _deliver(self, context: JobContext, payload: dict[str, Any]) -> None:
        platform = context.platform
        # "webhook_id": deliveries chat queued before the sender moved to the core.
        key = str(payload.get("target") or payload["webhook_id"])
        async with platform.database.transaction(writes=False) as session:
            target = await self.load_target(session, platform, key)
        if target is None:
            return
        body = orjson.dumps({field: payload[field] for field in EVENT_FIELDS})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(target.secret, int(time.time()), body),
            EVENT_HEADER: payload["type"],
            DELIVERY_HEADER: payload["id"],
        }
        outcome = _Attempt(key, payload["id"], context.attempt, context.max_attempts)
        try:
            response = await self.client(platform).request("POST", target.url, content=body, headers=headers)
        except DestinationNotAllowed as exc:
            await self._record(platform, outcome.failed(f"refused: {exc.message}"))
            raise
        except httpx.HTTPError as exc:
            # The exception's type only: its text can quote the URL, whose path may hold the receiver's token.
            await self._record(platform, outcome.failed(f"failed: {type(exc).__name__}"))
            raise DeliveryFailed(f"The delivery failed: {type(exc).__name__}.") from None
        await self._record(platform, outcome.answered(response.status_code))
        if not response.is_success:
            raise DeliveryFailed(f"The receiver answered HTTP {response.status_code}.")

    async def _record(self, platform: AppContext, outcome: DeliveryOutcome) -> None:
        if self.record_outcome is not None:
            async with platform.database.transaction() as session:
                await self.record_outcome(session, platform, outcome)


@dataclass(frozen=True, slots=True)
class _Attempt:
    target: str
    event_id: str
    number: int
    allowed: int

    def failed(self, summary: str) -> DeliveryOutcome:
        return self._outcome(summary, None, delivered=False)

    def answered(self, status_code: int) -> DeliveryOutcome:
        return self._outcome(f"HTTP {status_code}", status_code, delivered=200 <= status_code < 300)

    def _outcome(self, summary: str, status_code: int | None, *, delivered: bool) -> DeliveryOutcome:
        return DeliveryOutcome(
            target=self.target,
            event_id=self.event_id,
            attempt=self.number,
            delivered=delivered,
            summary=summary,
            status_code=status_code,
            final=delivered or self.number >= self.allowed,
        )
