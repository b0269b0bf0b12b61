"""Forwarding a site's events to Google Analytics 4 through the Measurement Protocol.

An owner links a site to a GA4 web stream (`PUT /api/analytics/sites/{id}/ga4`: measurement id + API
secret; the secret is encrypted with the key ring, bound to the row, and never shown again). The ingest
flush calls `enqueue_forwarding` in the transaction that stores the batch, so each stored event is queued
for GA4 exactly once: jobs `analytics.ga4_forward` of at most PENTAD_ANALYTICS__GA4_BATCH events.

A job sends one `POST {GA4_ENDPOINT}/mp/collect?measurement_id=…&api_secret=…` per visitor and at most
25 events (GA4's limit per request), through the core's guarded client (netguard). GA4 answers 2xx for
what it takes; a 4xx drops that request's events (counted in the link's `dropped`, the status kept as
`last_error`); a 5xx, a 429 or a transport failure queues the events not yet sent as a new job after a
backoff (30 s · 2^n, at most an hour), PENTAD_ANALYTICS__GA4_MAX_ATTEMPTS times, then drops them. The
requests sent before a failure are not sent again.

What GA4 gets: `client_id` "<visitor id>.<day>" (the daily visitor id: no cookie, no address, nothing GA4
can join across days), `non_personalized_ads`, and per event its time (`timestamp_micros`), `page_view`
(with `page_location`, `page_referrer`) or the custom event's name in GA4's form (`Outbound Link: Click`
→ `outbound_link_click`) with its properties (names and values cut to GA4's limits) and revenue as
`value` + `currency`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import structlog
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.models import AnalyticsGA4Link
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_MANAGE
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core import audit
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext, JobContext
from pentad.core.crypto import column_context
from pentad.core.errors import NotFound, problem_responses
from pentad.core.ingest import FlushContext
from pentad.core.jobs.queue import NewJob, enqueue, enqueue_many
from pentad.core.jobs.registry import JobSpec
from pentad.core.netguard import DestinationNotAllowed, GuardedClient
from pentad.core.platform import get_platform

logger = structlog.get_logger("pentad.analytics.ga4")

FORWARD = "analytics.ga4_forward"
MAX_EVENTS_PER_REQUEST = 25
MAX_PARAMS = 25
MAX_NAME = 40
MAX_PARAM_VALUE = 100
BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0
RESERVED_NAMES = frozenset(
    {
        "ad_activeview", "ad_click", "ad_exposure", "ad_impression", "ad_query", "ad_reward",
        "adunit_exposure",
        "app_clear_data", "app_exception", "app_install", "app_remove", "app_store_refund",
        "app_store_subscription_cancel", "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_update", "app_upgrade", "dynamic_link_app_open", "dynamic_link_app_update",
        "dynamic_link_first_open", "error", "first_open", "first_visit", "in_app_purchase",
        "notification_dismiss", "notification_foreground", "notification_open", "notification_receive",
        "os_update", "session_start", "session_start_with_rollout", "user_engagement",
    }
)  # fmt: skip
"""Event names GA4 keeps for itself (Measurement Protocol reference)."""
RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
MEASUREMENT_ID = re.compile(r"G-[A-Z0-9]{4,20}")
_NOT_NAME = re.compile(r"[^a-z0-9_]+")


# ---------------------------------------------------------------- the wire format


def event_name(name: str) -> str | None:
    """A Pentad event name as a GA4 one (`page_view` for pageviews), or None when none can be made."""
    if name == "pageview":
        return "page_view"
    converted = _NOT_NAME.sub("_", name.lower()).strip("_")[:MAX_NAME].rstrip("_")
    if not converted or not converted[0].isalpha():
        converted = ("event_" + converted)[:MAX_NAME]
    if converted in RESERVED_NAMES or converted.startswith(RESERVED_PREFIXES):
        converted = ("pentad_" + converted)[:MAX_NAME]
    return converted or None


def _param_name(name: str) -> str | None:
    converted = _NOT_NAME.sub("_", name.lower()).strip("_")[:MAX_NAME]
    if not converted or not converted[0].isalpha() or converted.startswith(RESERVED_PREFIXES):
        return None
    return converted


def compact_event(row: Any) -> dict[str, Any] | None:
    """What a job carries of one stored event (an ingest EventRow); None for one GA4 cannot take."""
    name = event_name(row.name)
    if name is None:
        return None
    return {
        "c": f"{row.visitor_id & 0xFFFFFFFFFFFFFFFF}.{row.ts // 86_400_000}",
        "t": row.ts,
        "n": name,
        "u": f"https://{row.hostname}{row.path}",
        "r": f"https://{row.referrer_host}{row.referrer_path or ''}" if row.referrer_host else None,
        "p": row.props or None,
        "v": [row.revenue_micros, row.currency] if row.revenue_micros is not None and row.currency else None,
    }


def ga4_event(event: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"page_location": event["u"][:1000], "engagement_time_msec": 1}
    if event.get("r"):
        params["page_referrer"] = event["r"][:420]
    if event.get("v"):
        micros, currency = event["v"]
        params["value"] = micros / 1_000_000
        params["currency"] = currency
    for key, value in (event.get("p") or {}).items():
        name = _param_name(key)
        if name is not None and name not in params and len(params) < MAX_PARAMS:
            params[name] = str(value)[:MAX_PARAM_VALUE]
    return {"name": event["n"], "timestamp_micros": event["t"] * 1000, "params": params}


def requests_of(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measurement Protocol bodies: one client per body, at most 25 events each, in time order."""
    by_client: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e["t"]):
        by_client[event["c"]].append(event)
    bodies = []
    for client_id, mine in by_client.items():
        for start in range(0, len(mine), MAX_EVENTS_PER_REQUEST):
            chunk = mine[start : start + MAX_EVENTS_PER_REQUEST]
            bodies.append(
                {
                    "client_id": client_id,
                    "non_personalized_ads": True,
                    "events": [ga4_event(event) for event in chunk],
                    "_pentad_events": chunk,
                }
            )
    return bodies


# ---------------------------------------------------------------- queueing at flush


async def enqueue_forwarding(context: FlushContext, rows: Sequence[Any]) -> None:
    """Queue the batch's events of linked sites for GA4 (in the flush's transaction: once per batch)."""
    keys = {row.site_key for row in rows}
    found = await context.session.execute(
        select(AnalyticsGA4Link.site_key, AnalyticsGA4Link.site_id).where(
            AnalyticsGA4Link.site_key.in_(keys), AnalyticsGA4Link.enabled.is_(True)
        )
    )
    linked = {int(key): site_id for key, site_id in found.all()}
    if not linked:
        return
    size = context.context.app_settings(AnalyticsSettings).ga4_batch
    by_site: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.site_key in linked and (event := compact_event(row)) is not None:
            by_site[row.site_key].append(event)
    jobs = [
        NewJob(
            FORWARD,
            {
                "site_key": key,
                "site_id": str(linked[key]),
                "attempt": 1,
                "events": events[start : start + size],
            },
        )
        for key, events in by_site.items()
        for start in range(0, len(events), size)
    ]
    await enqueue_many(context.session, jobs)


# ---------------------------------------------------------------- the job


def _backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX))


async def forward(context: JobContext, payload: dict[str, Any]) -> None:
    """Job `analytics.ga4_forward`: send the events; requeue what a retryable failure left unsent."""
    platform = context.platform
    settings = platform.app_settings(AnalyticsSettings)
    site_key, attempt = int(payload["site_key"]), int(payload.get("attempt", 1))
    async with platform.database.transaction() as session:
        link = await session.scalar(select(AnalyticsGA4Link).where(AnalyticsGA4Link.site_key == site_key))
        if link is None or not link.enabled or str(link.site_id) != payload["site_id"]:
            return  # unlinked since, or the site was deleted (and its key taken by a new one)
        measurement_id = link.measurement_id
        secret = platform.keyring.decrypt(link.api_secret, context=_secret_context(link.site_id))
    url = f"{settings.ga4_endpoint.rstrip('/')}/mp/collect?" + urlencode(
        {"measurement_id": measurement_id, "api_secret": secret}
    )
    client = GuardedClient(platform.outbound)
    sent = dropped = 0
    error: str | None = None
    unsent: list[dict[str, Any]] = []
    bodies = requests_of(payload["events"])
    for index, body in enumerate(bodies):
        events = body.pop("_pentad_events")
        try:
            answer = await client.request(
                "POST", url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            status, failure = answer.status_code, f"GA4 answered {answer.status_code}"
        except httpx.HTTPError as exc:  # its text may quote the URL, which holds the secret: the type only
            status, failure = 0, type(exc).__name__
        except DestinationNotAllowed:
            status, failure = 400, "GA4_ENDPOINT is an address outbound requests may not reach"
        if 200 <= status < 300:
            sent += len(events)
        elif 400 <= status < 500 and status != 429:
            dropped += len(events)
            error = f"{failure}; {len(events)} events dropped"
        else:
            error = failure
            unsent = events + [e for rest in bodies[index + 1 :] for e in rest["_pentad_events"]]
            break
    async with platform.database.transaction() as session:
        if unsent and attempt < settings.ga4_max_attempts:
            await enqueue(
                session,
                FORWARD,
                {**payload, "attempt": attempt + 1, "events": unsent},
                delay=_backoff(attempt),
            )
        elif unsent:
            dropped += len(unsent)
        values: dict[str, Any] = {
            "forwarded": AnalyticsGA4Link.forwarded + sent,
            "dropped": AnalyticsGA4Link.dropped + dropped,
        }
        if error is not None:
            values["last_error"] = error[:500]
        await session.execute(
            update(AnalyticsGA4Link).where(AnalyticsGA4Link.site_key == site_key).values(**values)
        )
    if error is not None:
        logger.info(
            "ga4_forward_failed",
            site_key=site_key,
            error=error,
            sent=sent,
            dropped=dropped,
            retry=bool(unsent),
        )


JOBS = (JobSpec(FORWARD, forward, queue="analytics", max_attempts=3, timeout=300),)


# ---------------------------------------------------------------- linking a site


def _secret_context(site_id: uuid.UUID) -> str:
    return column_context("analytics_ga4_links", "api_secret", site_id)


class GA4LinkUpdate(BaseModel):
    measurement_id: str = Field(pattern=MEASUREMENT_ID.pattern, description="The web stream's id, G-XXXXXXX.")
    api_secret: str = Field(
        min_length=8,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="A Measurement Protocol API secret.",
    )
    enabled: bool = True


class GA4LinkRead(BaseModel):
    measurement_id: str
    enabled: bool
    forwarded: int = Field(description="Events GA4 took.")
    dropped: int = Field(description="Events GA4 refused (4xx) or that failed every attempt.")
    last_error: str | None


class GA4Check(BaseModel):
    valid: bool
    validation_messages: list[dict[str, Any]] = Field(
        description="GA4's validationMessages, as it sent them."
    )


class LinkNotFound(NotFound):
    code = "ga4_link_not_found"

    def __init__(self) -> None:
        super().__init__("This site forwards nothing to GA4.")


def _read(link: AnalyticsGA4Link) -> GA4LinkRead:
    return GA4LinkRead(
        measurement_id=link.measurement_id,
        enabled=link.enabled,
        forwarded=link.forwarded,
        dropped=link.dropped,
        last_error=link.last_error,
    )


router = APIRouter(
    prefix="/api/analytics/sites/{site_id}/ga4",
    tags=["analytics"],
    responses=problem_responses(400, 401, 403, 404, 422, 429),
)
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(ANALYTICS_USE))]
SiteId = Annotated[uuid.UUID, Path(description="Site id.")]


@router.put("", summary="Forward the site's events to a GA4 web stream (owners)")
async def put_link(
    site_id: SiteId, data: GA4LinkUpdate, request: Request, session: Session, principal: Member
) -> GA4LinkRead:
    platform = get_platform(request)
    site = (await access_site(session, platform, principal, site_id, SITE_MANAGE)).site
    link = await session.get(AnalyticsGA4Link, site.id)
    sealed = platform.keyring.encrypt(data.api_secret, context=_secret_context(site.id))
    if link is None:
        link = AnalyticsGA4Link(
            site_id=site.id, site_key=site.key, measurement_id=data.measurement_id, api_secret=sealed,
            enabled=data.enabled, forwarded=0, dropped=0,
        )  # fmt: skip
        session.add(link)
    else:
        link.measurement_id, link.api_secret, link.enabled, link.last_error = (
            data.measurement_id, sealed, data.enabled, None,
        )  # fmt: skip
    await session.flush()
    audit.record(
        session, request_actor(request, principal), "analytics.ga4.link", resource_type="analytics.site",
        resource_id=site.id, measurement_id=data.measurement_id, enabled=data.enabled,
    )  # fmt: skip
    return _read(link)


@router.get("", summary="The site's GA4 forwarding and its counters (owners)")
async def get_link(site_id: SiteId, request: Request, session: Session, principal: Member) -> GA4LinkRead:
    site = (await access_site(session, get_platform(request), principal, site_id, SITE_MANAGE)).site
    link = await session.get(AnalyticsGA4Link, site.id)
    if link is None:
        raise LinkNotFound()
    return _read(link)


@router.delete("", status_code=204, summary="Stop forwarding to GA4 and forget the secret (owners)")
async def delete_link(site_id: SiteId, request: Request, session: Session, principal: Member) -> Response:
    site = (await access_site(session, get_platform(request), principal, site_id, SITE_MANAGE)).site
    link = await session.get(AnalyticsGA4Link, site.id)
    if link is None:
        raise LinkNotFound()
    await session.delete(link)
    audit.record(
        session, request_actor(request, principal), "analytics.ga4.unlink", resource_type="analytics.site",
        resource_id=site.id,
    )  # fmt: skip
    return Response(status_code=204)


@router.post("/check", summary="Send a test pageview to GA4's validation server (owners)")
async def check_link(site_id: SiteId, request: Request, session: Session, principal: Member) -> GA4Check:
    platform: AppContext = get_platform(request)
    site = (await access_site(session, get_platform(request), principal, site_id, SITE_MANAGE)).site
    link = await session.get(AnalyticsGA4Link, site.id)
    if link is None:
        raise LinkNotFound()
    secret = platform.keyring.decrypt(link.api_secret, context=_secret_context(site.id))
    endpoint = platform.app_settings(AnalyticsSettings).ga4_endpoint.rstrip("/")
    url = f"{endpoint}/debug/mp/collect?" + urlencode(
        {"measurement_id": link.measurement_id, "api_secret": secret}
    )
    body = {
        "client_id": "1.0",
        "events": [{"name": "page_view", "params": {"page_location": f"https://{site.domain}/"}}],
    }
    try:
        answer = await GuardedClient(platform.outbound).request(
            "POST", url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
    except httpx.HTTPError as exc:
        return GA4Check(
            valid=False, validation_messages=[{"description": f"GA4 unreachable: {type(exc).__name__}"}]
        )
    try:
        messages = list(json.loads(answer.content or b"{}").get("validationMessages", []))
    except (ValueError, AttributeError):
        messages = [{"description": f"GA4 answered {answer.status_code} without validation messages."}]
    return GA4Check(valid=answer.is_success and not messages, validation_messages=messages)
