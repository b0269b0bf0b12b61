"""Scheduled e-mail reports: a site's numbers of the last week or month, mailed through core mail.

Recipients subscribe per site and period (`weekly`: Monday to Sunday; `monthly`: the calendar month, in
the site's time zone). An account that reads the site subscribes itself; an owner may add any address,
which gets a confirmation mail first and nothing else until it is confirmed. Every report carries an
unsubscribe link (a signed token; no sign-in needed). Addresses are stored encrypted (key ring, bound to
the row); `recipient_digest` (a keyed digest) keeps one subscription per recipient and period.

The cron job `analytics.send_reports` runs hourly. A subscription is due once its next period has closed
and the site-local hour PENTAD_ANALYTICS__REPORT_HOUR has come; the job claims it with a conditional
UPDATE of `last_sent_period` and queues the mail in the same transaction, so a period is mailed at most
once, however many workers run the job. An account that lost the site gets no more reports (its
subscription is removed). A new subscription starts with the next period.

The mail is HTML + text: the top stats with their change against the period before, a bar chart of
visitors per day drawn with table cells (no images, nothing remote), top pages, sources and countries.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query, store
from pentad.apps.analytics.access import access_site, site_permissions
from pentad.apps.analytics.models import AnalyticsReportSubscription, AnalyticsSite
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_MANAGE, SITE_READ
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core import audit
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService
from pentad.core.context import AppContext, JobContext
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow
from pentad.core.emails import InvalidEmail, check_email
from pentad.core.errors import BadRequest, Conflict, NotFound, problem_responses
from pentad.core.jobs.registry import CronSpec, JobSpec
from pentad.core.mail import enqueue_mail
from pentad.core.platform import Platform, get_platform
from pentad.core.policy import route_policy
from pentad.core.web.pages.kit import TEMPLATES_DIR, render_page

logger = structlog.get_logger("pentad.analytics.reports")

SEND_REPORTS = "analytics.send_reports"
REPORT_TEMPLATE = "analytics_report"
CONFIRM_TEMPLATE = "analytics_report_confirm"
Period = Literal["weekly", "monthly"]
TOP_ROWS = 5


# ---------------------------------------------------------------- periods


def last_closed_period(period: str, today: date) -> tuple[date, date]:
    """The last whole week (Monday to Sunday) or month before `today`: (first day, last day)."""
    if period == "weekly":
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(days=7), monday - timedelta(days=1)
    first_this = today.replace(day=1)
    last = first_this - timedelta(days=1)
    return last.replace(day=1), last


def due_period(period: str, moment: datetime, timezone: str, hour: int) -> date | None:
    """The first day of the period a report is due for at `moment`, or None before the sending hour."""
    local = moment.astimezone(ZoneInfo(timezone))
    first, _ = last_closed_period(period, local.date())
    return first if local.hour >= hour else None


# ---------------------------------------------------------------- tokens in links


def _token(platform: AppContext, purpose: str, subscription_id: uuid.UUID) -> str:
    mac = hmac.new(
        platform.signing_secret,
        f"analytics.report.{purpose}:".encode() + subscription_id.bytes,
        hashlib.sha256,
    )
    return f"{subscription_id.hex}.{mac.hexdigest()[:32]}"


def _read_token(platform: AppContext, purpose: str, token: str) -> uuid.UUID | None:
    raw_id, _, _mac = token.partition(".")
    try:
        subscription_id = uuid.UUID(hex=raw_id)
    except ValueError:
        return None
    return subscription_id if hmac.compare_digest(_token(platform, purpose, subscription_id), token) else None


def _digest(platform: AppContext, recipient: str) -> str:
    return hmac.new(
        platform.signing_secret, b"analytics.report.to:" + recipient.encode(), hashlib.sha256
    ).hexdigest()


def _email_context(subscription_id: uuid.UUID) -> str:
    return column_context("analytics_report_subscriptions", "email", subscription_id)


# ---------------------------------------------------------------- the report


@dataclass
class Stat:
    label: str
    value: str
    change: float | None


async def report_context(
    session: AsyncSession, platform: AppContext, site: AnalyticsSite, period: str, first: date, last: date
) -> dict[str, Any]:
    """What the report templates show for the site over [first, last]."""
    timeout = platform.app_settings(AnalyticsSettings).session_timeout
    planning = query.Planning(
        cache=platform.cache, site_version=site.version, store=store.external_store(platform)
    )
    span = query.resolve_range("custom", site.timezone, start=first, end=last)
    found = await query.totals(session, site.key, span, timeout, planning)
    before = await query.totals(session, site.key, query.compare_range(span, "previous"), timeout, planning)
    daily = query.Range(span.period, span.start, span.end, "day")
    points = await query.timeseries(session, site.key, daily, timeout, planning)
    tallest = max((point.visitors for point in points), default=0) or 1

    def stat(label: str, name: str, shown: str) -> Stat:
        return Stat(label, shown, query.percent_change(getattr(found, name), getattr(before, name)))

    duration = found.visit_duration or 0
    panels = []
    for title, dimension in (("Top pages", "pages"), ("Top sources", "sources"), ("Countries", "countries")):
        rows = await query.breakdown(
            session, site.key, span, dimension, limit=TOP_ROWS, session_timeout=timeout, planning=planning
        )
        panels.append(
            {"title": title, "rows": [{"value": row.value, "visitors": row.visitors} for row in rows]}
        )
    return {
        "site": {"name": site.name, "domain": site.domain, "id": str(site.id)},
        "period_name": "week" if period == "weekly" else "month",
        "first": first.isoformat(),
        "last": last.isoformat(),
        "stats": [
            stat("Visitors", "visitors", f"{found.visitors:,}"),
            stat("Visits", "visits", f"{found.visits:,}"),
            stat("Pageviews", "pageviews", f"{found.pageviews:,}"),
            stat("Bounce rate", "bounce_rate", f"{found.bounce_rate or 0:g} %"),
            stat("Visit duration", "visit_duration", f"{int(duration) // 60} min {int(duration) % 60} s"),
        ],
        "bars": [
            {
                "day": point.start.date().isoformat(),
                "label": point.start.strftime("%a %d"),
                "visitors": point.visitors,
                "height": max(round(80 * point.visitors / tallest), 1 if point.visitors else 0),
            }
            for point in points
        ],
        "panels": panels,
        "dashboard": f"{platform.base_url.rstrip('/')}/analytics/{site.id}",
    }


async def _recipient(
    session: AsyncSession, platform: Platform, subscription: AnalyticsReportSubscription, site: AnalyticsSite
) -> str | None:
    """Where the report goes; None when an account no longer reads the site (its subscription ends)."""
    if subscription.email is not None:
        return platform.keyring.decrypt(subscription.email, context=_email_context(subscription.id))
    assert subscription.user_id is not None
    auth = AuthService(session, platform)
    try:
        user = await auth.get_user(subscription.user_id)
    except NotFound:
        return None
    permissions = await site_permissions(
        session, platform, _account_principal(user.id, auth.permissions_of(user)), site.id
    )
    return user.email if user.is_active and SITE_READ.key in permissions else None


def _account_principal(user_id: uuid.UUID, permissions: frozenset[str]) -> Principal:
    return Principal(
        kind="user", id=user_id, label="report recipient", roles=frozenset(), permissions=permissions,
        via="report", credential_id=user_id,
    )  # fmt: skip


async def send_due_reports(platform: Platform, now: datetime | None = None) -> int:
    """Mail every report that is due; how many were queued. Each in its own transaction."""
    moment = now or datetime.now(UTC)
    hour = platform.app_settings(AnalyticsSettings).report_hour
    async with platform.database.transaction() as session:
        candidates = (
            await session.execute(
                select(
                    AnalyticsReportSubscription.id, AnalyticsReportSubscription.period, AnalyticsSite.timezone
                )
                .join(AnalyticsSite, AnalyticsSite.id == AnalyticsReportSubscription.site_id)
                .where(AnalyticsReportSubscription.confirmed_at.is_not(None))
            )
        ).all()
    sent = 0
    for subscription_id, period, timezone in candidates:
        first = due_period(period, moment, timezone, hour)
        if first is None:
            continue
        async with platform.database.transaction() as session:
            claimed = await session.execute(
                update(AnalyticsReportSubscription)
                .where(
                    AnalyticsReportSubscription.id == subscription_id,
                    or_(
                        AnalyticsReportSubscription.last_sent_period.is_(None),
                        AnalyticsReportSubscription.last_sent_period < first,
                    ),
                )
                .values(last_sent_period=first)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            subscription = await session.get(AnalyticsReportSubscription, subscription_id)
            site = await session.get(AnalyticsSite, subscription.site_id) if subscription else None
            if subscription is None or site is None:
                continue
            recipient = await _recipient(session, platform, subscription, site)
            if recipient is None:
                await session.delete(subscription)
                continue
            _, last = last_closed_period(period, first + timedelta(days=40 if period == "monthly" else 7))
            context = await report_context(session, platform, site, period, first, last)
            unsubscribe = f"{platform.base_url.rstrip('/')}/analytics/reports/unsubscribe?token=" + _token(
                platform, "unsubscribe", subscription.id
            )
            await enqueue_mail(
                session, platform.keyring, REPORT_TEMPLATE, to=recipient, unsubscribe=unsubscribe, **context
            )
            sent += 1
    return sent


async def send_reports(context: JobContext, _payload: dict[str, Any]) -> None:
    """Job `analytics.send_reports` (hourly): mail the reports that are due."""
    platform = context.platform
    assert isinstance(platform, Platform)
    queued = await send_due_reports(platform)
    if queued:
        logger.info("analytics_reports_queued", count=queued)


JOBS = (JobSpec(SEND_REPORTS, send_reports, queue="analytics", concurrency=1, timeout=1800),)
CRON = (CronSpec(SEND_REPORTS, "7 * * * *"),)


# ---------------------------------------------------------------- subscriptions API


class SubscriptionCreate(BaseModel):
    period: Period
    email: str | None = Field(
        None, max_length=320, description="Another address (owners; it must confirm). Default: your account."
    )


class SubscriptionRead(BaseModel):
    id: uuid.UUID
    period: str
    recipient: str = Field(description="The account's or the added address (owners see every one).")
    confirmed: bool
    last_sent_period: date | None


class SubscriptionNotFound(NotFound):
    code = "report_subscription_not_found"

    def __init__(self) -> None:
        super().__init__("No such report subscription.")


async def _subscription_read(
    session: AsyncSession, platform: Platform, subscription: AnalyticsReportSubscription
) -> SubscriptionRead:
    if subscription.email is not None:
        recipient = platform.keyring.decrypt(subscription.email, context=_email_context(subscription.id))
    else:
        assert subscription.user_id is not None
        try:
            recipient = (await AuthService(session, platform).get_user(subscription.user_id)).email
        except NotFound:
            recipient = "(a deleted account)"
    return SubscriptionRead(
        id=subscription.id,
        period=subscription.period,
        recipient=recipient,
        confirmed=subscription.confirmed_at is not None,
        last_sent_period=subscription.last_sent_period,
    )


async def subscribe(
    session: AsyncSession,
    platform: Platform,
    principal: Principal,
    site_id: uuid.UUID,
    data: SubscriptionCreate,
) -> AnalyticsReportSubscription:
    access = await access_site(
        session, platform, principal, site_id, SITE_MANAGE if data.email else SITE_READ
    )
    site = access.site
    subscription_id = uuid.uuid4()
    address = ""
    if data.email:
        try:
            address = check_email(data.email)
        except InvalidEmail as exc:
            raise BadRequest(str(exc) or "Not an e-mail address.", code="invalid_email") from None
        digest = _digest(platform, "mail:" + address)
        email: str | None = platform.keyring.encrypt(address, context=_email_context(subscription_id))
        user_id, confirmed = None, None
    else:
        digest = _digest(platform, f"user:{principal.id}")
        email, user_id, confirmed = None, principal.id, utcnow()
    existing = await session.scalar(
        select(AnalyticsReportSubscription.id).where(
            AnalyticsReportSubscription.site_id == site.id,
            AnalyticsReportSubscription.period == data.period,
            AnalyticsReportSubscription.recipient_digest == digest,
        )
    )
    if existing is not None:
        raise Conflict("This recipient gets this report already.", code="report_subscription_exists")
    today = datetime.now(UTC).astimezone(ZoneInfo(site.timezone)).date()
    subscription = AnalyticsReportSubscription(
        id=subscription_id, site_id=site.id, period=data.period, user_id=user_id, email=email,
        recipient_digest=digest, confirmed_at=confirmed,
        last_sent_period=last_closed_period(data.period, today)[0],
    )  # fmt: skip
    session.add(subscription)
    await session.flush()
    if data.email:
        link = f"{platform.base_url.rstrip('/')}/analytics/reports/confirm?token=" + _token(
            platform, "confirm", subscription.id
        )
        await enqueue_mail(
            session, platform.keyring, CONFIRM_TEMPLATE, to=address, link=link,
            site={"name": site.name, "domain": site.domain},
            period_name="week" if data.period == "weekly" else "month",
        )  # fmt: skip
    return subscription


router = APIRouter(
    prefix="/api/analytics/sites/{site_id}/reports",
    tags=["analytics"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require_user(ANALYTICS_USE))]
SiteId = Annotated[uuid.UUID, Path(description="Site id.")]


@router.post("", status_code=201, summary="Get the site's weekly or monthly report by e-mail")
async def create_subscription(
    site_id: SiteId, data: SubscriptionCreate, request: Request, session: Session, principal: Member
) -> SubscriptionRead:
    platform = get_platform(request)
    subscription = await subscribe(session, platform, principal, site_id, data)
    audit.record(
        session, request_actor(request, principal), "analytics.report.subscribe",
        resource_type="analytics.site", resource_id=site_id, period=data.period,
        other_address=data.email is not None,
    )  # fmt: skip
    return await _subscription_read(session, platform, subscription)


@router.get("", summary="The site's report subscriptions (owners: all; others: their own)")
async def list_subscriptions(
    site_id: SiteId, request: Request, session: Session, principal: Member
) -> list[SubscriptionRead]:
    platform = get_platform(request)
    access = await access_site(session, platform, principal, site_id)
    statement = select(AnalyticsReportSubscription).where(AnalyticsReportSubscription.site_id == site_id)
    if not access.has(SITE_MANAGE):
        statement = statement.where(AnalyticsReportSubscription.user_id == principal.id)
    found = (await session.scalars(statement.order_by(AnalyticsReportSubscription.created_at))).all()
    return [await _subscription_read(session, platform, subscription) for subscription in found]


@router.delete("/{subscription_id}", status_code=204, summary="Stop a report (your own; owners: any)")
async def delete_subscription(
    site_id: SiteId,
    subscription_id: Annotated[uuid.UUID, Path(description="The subscription's id.")],
    request: Request,
    session: Session,
    principal: Member,
) -> Response:
    access = await access_site(session, get_platform(request), principal, site_id)
    subscription = await session.get(AnalyticsReportSubscription, subscription_id)
    if (
        subscription is None
        or subscription.site_id != site_id
        or (not access.has(SITE_MANAGE) and subscription.user_id != principal.id)
    ):
        raise SubscriptionNotFound()
    await session.delete(subscription)
    return Response(status_code=204)


# ---------------------------------------------------------------- confirm and unsubscribe links (public)

pages = APIRouter(include_in_schema=False)
page_templates = Jinja2Templates(directory=[FilePath(__file__).parent / "templates", TEMPLATES_DIR])
Token = Annotated[str, Query(max_length=200)]
FormToken = Annotated[str, Form(max_length=200)]
ACTIONS = {"confirm": "Confirm the report", "unsubscribe": "Unsubscribe"}


def _link_page(request: Request, action: str, token: str, *, done: bool | None) -> Response:
    return render_page(
        request, "analytics_report_link.html", None, renderer=page_templates,
        status_code=404 if done is False else 200, action=action, button=ACTIONS[action], token=token,
        done=done,
    )  # fmt: skip


@pages.get("/analytics/reports/{action}")
@route_policy(public="links in report mails: the signed token in the link is the permission")
async def link_page(action: Literal["confirm", "unsubscribe"], request: Request, token: Token) -> Response:
    """A page with one button: mail scanners that open links change nothing."""
    return _link_page(request, action, token, done=None)


@pages.post("/analytics/reports/{action}")
@route_policy(public="links in report mails: the signed token in the link is the permission")
async def link_action(
    action: Literal["confirm", "unsubscribe"], request: Request, session: Session, token: FormToken
) -> Response:
    platform = get_platform(request)
    subscription_id = _read_token(platform, action, token)
    subscription = (
        await session.get(AnalyticsReportSubscription, subscription_id) if subscription_id else None
    )
    if subscription is None:
        return _link_page(request, action, token, done=False)
    if action == "confirm":
        subscription.confirmed_at = subscription.confirmed_at or utcnow()
    else:
        await session.execute(
            delete(AnalyticsReportSubscription).where(AnalyticsReportSubscription.id == subscription.id)
        )
    return _link_page(request, action, token, done=True)
