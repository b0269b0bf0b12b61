"""The collect route (`POST /api/analytics/event`) and the two ingest streams it feeds.

The tracker posts one event as JSON with `Content-Type: text/plain` (a "simple" cross-origin request: no
CORS preflight). The route reads the body itself (`await request.body()` + `model_validate_json`, no
FastAPI body model), finds the site in the in-memory SiteRegistry (no database), derives the visitor's
facts (never storing the IP address or the user-agent string), and appends the row to the
`analytics.events` stream with a group-shared fsync: 202 means the event is on disk and will be stored.

Every event not stored is counted in `analytics.drops` by reason. Bots and excluded paths are answered
202 with `Pentad-Dropped: <reason>` (a bot learns nothing); garbage gets a problem+json 4xx:
400 `invalid_payload` / `bad_timestamp`, 403 `origin_mismatch`, 404 `unknown_site`, 413
`payload_too_large`, 422 `invalid_payload` / `too_many_props`. Nothing on this route answers 5xx for
what a client sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Final, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, insert
from starlette.responses import Response

from pentad.apps.analytics import ga4, hooks, store
from pentad.apps.analytics.models import AnalyticsDirtyBucket, AnalyticsDrop, AnalyticsEvent
from pentad.apps.analytics.registry import site_registry
from pentad.apps.analytics.settings import APP_NAME, AnalyticsSettings
from pentad.core.db.inserts import execute_in_parts, insert_ignore
from pentad.core.errors import problem_response
from pentad.core.ingest import FlushContext, IngestStream, insert_into
from pentad.core.platform import Platform, get_platform
from pentad.core.policy import RateLimitClass, route_policy
from pentad.core.security import client_address

EVENTS_STREAM: Final = "analytics.events"
DROPS_STREAM: Final = "analytics.drops"
DROPPED_HEADER: Final = "Pentad-Dropped"
INGEST_RATE = RateLimitClass("analytics_ingest", "1200/minute")
"""Per client address; a proxy in PENTAD_SECURITY__TRUSTED_PROXIES passes each visitor's own address."""
BODY_CAP: Final = 65_536
"""The hard cap before the body is read; PENTAD_ANALYTICS__MAX_EVENT_BYTES is the limit that counts."""

REASONS: Final = (
    "bot_ua",
    "headless",
    "datacenter",
    "invalid_payload",
    "payload_too_large",
    "unknown_site",
    "origin_mismatch",
    "bad_timestamp",
    "excluded_path",
    "too_many_props",
)
CORS_HEADERS: Final = {"Access-Control-Allow-Origin": "*"}


# ------------------------------------------------------------------ rows of the streams


class EventRow(BaseModel):
    """One row of `analytics_events`, as spooled and flushed."""

    site_key: int
    ts: int
    visitor_id: int
    name: str
    hostname: str
    path: str
    referrer_host: str | None = None
    referrer_path: str | None = None
    source: str | None = None
    medium: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    device: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    props: dict[str, str] | None = None
    revenue_micros: int | None = None
    currency: str | None = None


class DropRow(BaseModel):
    """One dropped event: site (None when unknown), minute (unix time // 60), reason."""

    site_key: int | None
    minute: int
    reason: str
    count: int = 1


EVENTS_TABLE = cast(Table, AnalyticsEvent.__table__)
"""Inserted as a Table: the ORM's bulk INSERT path costs ~5x the CPU per row for the same rows."""


async def flush_events(context: FlushContext, rows: Sequence[BaseModel]) -> None:
    """Store a batch of events (one executemany INSERT) and mark their (site, hour) buckets dirty for the
    rollups, in the transaction that records the batch (so a replayed batch is never stored twice)."""
    if not rows:
        return
    # PENTAD_ANALYTICS__STORE=clickhouse (store/) keeps the events there; goals and GA4 follow either way.
    if not await store.flush_elsewhere(context, rows):
        session = context.session
        await execute_in_parts(session, insert(EVENTS_TABLE), rows)
        hours = sorted({(row.site_key, row.ts // 3_600_000) for row in rows if isinstance(row, EventRow)})
        await session.execute(
            insert_ignore(session, AnalyticsDirtyBucket),
            [{"site_key": site_key, "hour": hour} for site_key, hour in hours],
        )
    await hooks.on_flush(context, rows)
    await ga4.enqueue_forwarding(context, rows)


EVENTS = IngestStream(EVENTS_STREAM, EventRow, flush_events, batch_size=2000, flush_interval=1.0)
DROPS = IngestStream(DROPS_STREAM, DropRow, insert_into(AnalyticsDrop), batch_size=500, flush_interval=2.0)


# ------------------------------------------------------------------ the request body


class Revenue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: str | float | int = Field(description="Amount in the currency's units, e.g. 12.50.")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code, e.g. EUR.")


class EventIn(BaseModel):
    """What the tracker posts (short keys keep the tracker small)."""

    model_config = ConfigDict(extra="forbid")

    n: str = Field(min_length=1, max_length=120, description="Event name: `pageview` or a custom name.")
    u: str = Field(min_length=1, max_length=2000, description="The page's URL.")
    d: str = Field(min_length=1, max_length=253, description="The site's domain, as registered.")
    r: str | None = Field(None, max_length=2000, description="document.referrer.")
    p: dict[str, str | int | float | bool] | None = Field(None, description="Custom properties.")
    v: Revenue | None = Field(None, description="Revenue of a custom event.")
    w: bool | None = Field(None, description="navigator.webdriver was true.")
    ts: int | None = Field(None, description="When it happened (unix ms), for events queued offline.")


class Dropped(Exception):
    def __init__(self, reason: str, status: int, detail: str, site_key: int | None = None) -> None:
        super().__init__(detail)
        self.reason, self.status, self.detail, self.site_key = reason, status, detail, site_key


# ------------------------------------------------------------------ the route

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


@router.post(
    "/event",
    status_code=202,
    summary="Record a pageview or custom event (the tracker's endpoint)",
    response_class=Response,
    responses={
        202: {"description": "Stored durably, or dropped as a bot (see the Pentad-Dropped header)."},
        400: {"description": "Not JSON, or a timestamp out of range."},
        403: {"description": "The page's host is not one of the site's."},
        404: {"description": "No site with this domain."},
        413: {"description": "Larger than PENTAD_ANALYTICS__MAX_EVENT_BYTES."},
        422: {"description": "JSON of the wrong shape or over the property limits."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": EventIn.model_json_schema(ref_template="#/$defs/{model}")}},
        }
    },
)
@route_policy(
    public="the tracker on any visitor's browser posts events anonymously",
    rate_limit=INGEST_RATE,
    body_limit=BODY_CAP,
    direct=True,  # every page view of every site lands here: served from the edge (core/web/direct.py)
)
async def collect(request: Request) -> Response:
    platform = get_platform(request)
    settings = platform.app_settings(AnalyticsSettings)
    now_ms = int(time.time() * 1000)
    try:
        row, dropped = await _accept(request, platform, settings, now_ms)
    except Dropped as drop:
        _count_drop(platform, drop.site_key, now_ms, drop.reason)
        return problem_response(
            drop.status,
            drop.reason,
            drop.detail,
            request_id=getattr(request.state, "request_id", None),
            headers=CORS_HEADERS,
        )
    if dropped is not None:
        site_key, reason = dropped
        _count_drop(platform, site_key, now_ms, reason)
        return Response(status_code=202, headers={**CORS_HEADERS, DROPPED_HEADER: reason})
    assert row is not None
    await platform.ingest.append(EVENTS_STREAM, row)
    platform.metrics.for_app(APP_NAME).counter("events_accepted", "Events accepted (stored durably).").inc()
    return Response(status_code=202, headers=CORS_HEADERS)


def _count_drop(platform: Platform, site_key: int | None, now_ms: int, reason: str) -> None:
    """One dropped event: a row for the site's data-quality panel and `pentad_analytics_dropped_total`."""
    platform.ingest.append_nowait(
        DROPS_STREAM, DropRow(site_key=site_key, minute=now_ms // 60_000, reason=reason)
    )
    dropped = platform.metrics.for_app(APP_NAME).counter("dropped", "Events dropped, by reason.", ["reason"])
    dropped.labels(reason).inc()


async def _accept(
    request: Request, platform: Platform, settings: AnalyticsSettings, now_ms: int
) -> tuple[EventRow | None, tuple[int, str] | None]:
    body = await request.body()
    if len(body) > settings.max_event_bytes:
        raise Dropped("payload_too_large", 413, f"An event is at most {settings.max_event_bytes} bytes.")
    try:
        event = EventIn.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()) or not body.strip().startswith(
            b"{"
        ):
            raise Dropped("invalid_payload", 400, "The body must be one JSON object.") from None
        where = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise Dropped("invalid_payload", 422, f"The event is not valid ({where}).") from None

    site = await site_registry(platform).get(event.d)
    if site is None:
        raise Dropped("unknown_site", 404, "No site is registered with this domain.")
    try:
        parts = urlsplit(event.u)
        host = (parts.hostname or "").lower()
    except ValueError:
        host = ""
    if not host or parts.scheme not in ("http", "https"):
        raise Dropped("invalid_payload", 422, "`u` must be an http(s) URL.", site.key)
    origin = request.headers.get("origin")
    try:
        origin_host = urlsplit(origin).hostname or "" if origin and origin != "null" else None
    except ValueError:
        origin_host = ""
    if not site.allows_host(host) or (origin_host is not None and not site.allows_host(origin_host)):
        raise Dropped("origin_mismatch", 403, "The page is not on one of the site's hosts.", site.key)

    ts = now_ms
    if event.ts is not None:
        if not now_ms - settings.max_clock_skew * 1000 <= event.ts <= now_ms + 5000:
            raise Dropped("bad_timestamp", 400, "`ts` is too far from the server's clock.", site.key)
        ts = event.ts
    props = _props(event, settings, site.key)
    revenue_micros, currency = _revenue(event, site.key)

    path = (parts.path or "/")[:2000]
    if site.excludes(path):
        return None, (site.key, "excluded_path")
    facts = await platform.visitors.facts(
        client_address(request),
        request.headers.get("user-agent", ""),
        event.r,
        event.u,
        site.domain,
        webdriver=bool(event.w),
    )
    if facts.bot_reason is not None:
        return None, (site.key, facts.bot_reason)
    row = EventRow(
        site_key=site.key,
        ts=ts,
        visitor_id=facts.visitor_id,
        name=event.n,
        hostname=host[:253],
        path=path,
        referrer_host=facts.referrer_host,
        referrer_path=facts.referrer_path,
        source=facts.source_name,
        medium=facts.source,
        country=facts.country,
        region=facts.region,
        city=facts.city,
        device=facts.device,
        browser=facts.browser,
        browser_version=facts.browser_major,
        os=facts.os,
        os_version=facts.os_major,
        props=props,
        revenue_micros=revenue_micros,
        currency=currency,
        utm_source=facts.utm_source,
        utm_medium=facts.utm_medium,
        utm_campaign=facts.utm_campaign,
        utm_content=facts.utm_content,
        utm_term=facts.utm_term,
    )
    return row, None


def _props(event: EventIn, settings: AnalyticsSettings, site_key: int) -> dict[str, str] | None:
    if not event.p:
        return None
    if len(event.p) > settings.max_props:
        raise Dropped(
            "too_many_props", 422, f"An event has at most {settings.max_props} properties.", site_key
        )
    props: dict[str, str] = {}
    for key, value in event.p.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not key or len(key) > settings.max_prop_value or len(text) > settings.max_prop_value:
            raise Dropped(
                "invalid_payload",
                422,
                f"Property names and values are 1 to {settings.max_prop_value} characters.",
                site_key,
            )
        props[key] = text
    return props


def _revenue(event: EventIn, site_key: int) -> tuple[int | None, str | None]:
    if event.v is None:
        return None, None
    try:
        amount = Decimal(str(event.v.amount))
    except InvalidOperation:
        raise Dropped("invalid_payload", 422, "The revenue amount is not a number.", site_key) from None
    if not amount.is_finite() or abs(amount) >= Decimal(10) ** 12:
        raise Dropped("invalid_payload", 422, "The revenue amount is out of range.", site_key)
    return int(amount * 1_000_000), event.v.currency.upper()
