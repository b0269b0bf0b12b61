"""Alert jobs (core jobs; spec.py adds JOBS and CRON) and the hook that evaluates order alerts after each
character sync.

- `market.alerts_on_snapshot` (subscriber of `market.snapshot_stored`): right after a region's new book
  commits, the price-cross and margin rules of its hubs and the order rules (undercut, expiring) of the
  characters with open orders in the region, on that book. An unchanged condition fires nothing.
- `market.evaluate_hub_alerts {region_id?}`: the hub rules on the current books (queued when a hub rule is
  created or changed, so a condition that already holds fires without waiting for the next book).
- `market.deliver_alert {event}`: mail and Web Push of one fired alert. In the user's quiet hours it waits
  (RetryLater to their end; the hub frame went out live anyway). Over the user's hourly limit
  (`alerts_per_hour`, else ALERTS_PER_HOUR) the alert is folded into one digest mail sent when the hour
  is over (`market.alert_digest {user}`, one pending per user).
- `market.send_push {event, subscription}`: one notification to one browser; a gone subscription
  (404/410) is deleted, a busy push service retried with backoff.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import alerts
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.actions.push import column
from pentad.apps.market.events import SNAPSHOT_STORED, SnapshotStored
from pentad.apps.market.ingest import character as character_ingest
from pentad.apps.market.models import (
    MarketAlertEvent,
    MarketAlertRule,
    MarketCharacter,
    MarketPushSubscription,
    MarketUserPrefs,
)
from pentad.apps.market.settings import MarketSettings
from pentad.core.audit import SYSTEM
from pentad.core.auth.service import AuthService
from pentad.core.context import AppContext, JobContext
from pentad.core.db.base import utcnow
from pentad.core.errors import NotFound
from pentad.core.events import Event, EventSubscriber
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import CronSpec, JobSpec, RetryLater
from pentad.core.mail import enqueue_mail
from pentad.core.netguard import DestinationNotAllowed, GuardedClient
from pentad.core.platform import Platform
from pentad.core.push import send_notification

logger = structlog.get_logger("pentad.market.alerts")

EVALUATE_HUB = alerts.EVALUATE_HUB
ON_SNAPSHOT = "market.alerts_on_snapshot"
DELIVER = alerts.DELIVER
DIGEST = "market.alert_digest"
SEND_PUSH = "market.send_push"
MAIL_TEMPLATE = "market_alert"
HOUR = timedelta(hours=1)


class PushDeliveryFailed(Exception):
    """The push service could not take the notification now; the job is retried."""


class AlertPush(BaseModel):
    """The JSON a service worker receives in its `push` event for a market alert."""

    title: str
    body: str
    url: str
    alert_id: uuid.UUID


async def evaluate_hub_alerts(context: JobContext, payload: dict[str, Any]) -> None:
    region = payload.get("region_id")
    async with context.platform.database.transaction() as session:
        market = MarketContext(session, context.platform, None, SYSTEM)
        await alerts.evaluate_hub_rules(market, None if region is None else int(region))


async def alerts_on_snapshot(context: JobContext, event: Event[SnapshotStored]) -> None:
    """The alerts reading a region's book, on the snapshot just stored (or a newer one: evaluation reads
    the region's current book, so a late delivery never evaluates an older book than the newest)."""
    region_id = event.payload.region_id
    async with context.platform.database.transaction() as session:
        market = MarketContext(session, context.platform, None, SYSTEM)
        hub_fired = await alerts.evaluate_hub_rules(market, region_id)
        order_fired = await alerts.evaluate_region_order_rules(market, region_id)
    logger.info(
        "market_alerts_on_snapshot",
        region_id=region_id,
        snapshot_id=event.payload.snapshot_id,
        fired=hub_fired + order_fired,
    )


async def after_sync(market: MarketContext, character: MarketCharacter) -> None:
    """Registered in ingest/character.py AFTER_SYNC: order alerts over the freshly stored orders."""
    await alerts.evaluate_order_rules(market, character)


def _age(detail: dict[str, Any] | None, now: datetime) -> str | None:
    captured = (detail or {}).get("book_captured_at")
    if not captured:
        return None
    minutes = int((now - datetime.fromisoformat(captured)).total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _sent_within_hour(events: list[MarketAlertEvent], now: datetime) -> int:
    count = 0
    for event in events:
        sent = (event.delivered or {}).get("sent")
        if sent and now - datetime.fromisoformat(sent) < HOUR:
            count += 1
    return count


@dataclass(frozen=True)
class _Account:
    email: str | None
    display_name: str
    is_active: bool


async def _account(session: AsyncSession, platform: AppContext, user_id: uuid.UUID) -> _Account | None:
    """The Pentad account alerts go to (through the core's accounts service)."""
    assert isinstance(platform, Platform)
    try:
        user = await AuthService(session, platform).get_user(user_id)
    except NotFound:
        return None
    return _Account(user.email, user.display_name, user.is_active)


async def deliver_alert(context: JobContext, payload: dict[str, Any]) -> None:
    platform = context.platform
    settings = platform.app_settings(MarketSettings)
    now = utcnow()
    async with platform.database.transaction() as session:
        event = await session.get(MarketAlertEvent, uuid.UUID(str(payload["event"])))
        if event is None or (event.delivered or {}).get("sent") or (event.delivered or {}).get("folded"):
            return  # re-armed and deleted meanwhile, or done already
        rule = await session.get(MarketAlertRule, event.rule_id)
        user = await _account(session, platform, event.user_id)
        if rule is None or user is None or not user.is_active:
            return
        prefs = await session.get(MarketUserPrefs, event.user_id)
        wait = alerts.quiet_left(prefs, now)
        if wait > 0:
            raise RetryLater(wait, reason="the user's quiet hours")
        limit = (prefs.alerts_per_hour if prefs is not None else None) or settings.alerts_per_hour
        recent = list(
            await session.scalars(
                select(MarketAlertEvent).where(
                    MarketAlertEvent.user_id == event.user_id, MarketAlertEvent.fired_at >= now - HOUR
                )
            )
        )
        if _sent_within_hour(recent, now) >= limit:
            event.delivered = {"folded": now.isoformat()}
            await enqueue(
                session,
                DIGEST,
                {"user": str(event.user_id)},
                delay=HOUR,
                dedupe_key=f"{DIGEST}:{event.user_id}",
            )
            logger.info("market_alert_folded", user_id=str(event.user_id))
            return
        channels = set(rule.channels or [])
        title = alerts.alert_title(rule.kind, event.detail or {})
        delivered: dict[str, Any] = {"sent": now.isoformat()}
        if "mail" in channels and user.email:
            await enqueue_mail(
                session,
                platform.keyring,
                MAIL_TEMPLATE,
                to=user.email,
                name=user.display_name,
                digest=False,
                alerts=[{"title": title, "book_age": _age(event.detail, now)}],
                link=platform.base_url.rstrip("/") + "/market/alerts",
            )
            delivered["mail"] = True
        if "push" in channels:
            devices = list(
                await session.scalars(
                    select(MarketPushSubscription.id).where(MarketPushSubscription.user_id == event.user_id)
                )
            )
            for device in devices:
                await enqueue(session, SEND_PUSH, {"event": str(event.id), "subscription": str(device)})
            delivered["push"] = len(devices)
        event.delivered = delivered


async def alert_digest(context: JobContext, payload: dict[str, Any]) -> None:
    platform = context.platform
    user_id = uuid.UUID(str(payload["user"]))
    now = utcnow()
    async with platform.database.transaction() as session:
        user = await _account(session, platform, user_id)
        prefs = await session.get(MarketUserPrefs, user_id)
        wait = alerts.quiet_left(prefs, now)
        if wait > 0:
            raise RetryLater(wait, reason="the user's quiet hours")
        rows = await session.execute(
            select(MarketAlertEvent, MarketAlertRule.kind)
            .join(MarketAlertRule, MarketAlertRule.id == MarketAlertEvent.rule_id)
            .where(MarketAlertEvent.user_id == user_id)
            .order_by(MarketAlertEvent.fired_at)
        )
        folded = [
            (e, kind)
            for e, kind in rows
            if (e.delivered or {}).get("folded") and not (e.delivered or {}).get("sent")
        ]
        if not folded or user is None or not user.is_active or not user.email:
            return
        await enqueue_mail(
            session,
            platform.keyring,
            MAIL_TEMPLATE,
            to=user.email,
            name=user.display_name,
            digest=True,
            alerts=[
                {"title": alerts.alert_title(kind, e.detail or {}), "book_age": _age(e.detail, now)}
                for e, kind in folded
            ],
            link=platform.base_url.rstrip("/") + "/market/alerts",
        )
        for event, _kind in folded:
            event.delivered = {**(event.delivered or {}), "sent": now.isoformat(), "digest": True}


async def send_push(context: JobContext, payload: dict[str, Any]) -> None:
    platform = context.platform
    settings = platform.app_settings(MarketSettings)
    subscription_id = uuid.UUID(str(payload["subscription"]))
    async with platform.database.transaction(writes=False) as session:
        subscription = await session.get(MarketPushSubscription, subscription_id)
        event = await session.get(MarketAlertEvent, uuid.UUID(str(payload["event"])))
        if subscription is None or event is None:
            return
        rule = await session.get(MarketAlertRule, event.rule_id)
        endpoint = platform.keyring.decrypt(
            subscription.endpoint, context=column("endpoint", subscription.id)
        )
        keys = json.loads(
            platform.keyring.decrypt(subscription.keys, context=column("keys", subscription.id))
        )
        previous_error = subscription.last_error
    kind = rule.kind if rule is not None else "alert"
    notification = AlertPush(
        title="Market alert",
        body=alerts.alert_title(kind, event.detail or {}),
        url="/market/alerts",
        alert_id=event.id,
    )
    subject = settings.push_subject or (
        f"mailto:{settings.contact}" if settings.contact and "@" in settings.contact else platform.base_url
    )
    retry = False
    try:
        result = await send_notification(
            platform,
            endpoint,
            keys,
            notification.model_dump_json().encode(),
            subject=subject,
            client=GuardedClient(platform.outbound),
        )
    except DestinationNotAllowed as exc:
        error: str | None = exc.message[:200]
    except httpx.HTTPError as exc:
        error, retry = f"{type(exc).__name__} reaching the push service", True  # never the URL: a credential
    else:
        if result.gone:
            async with platform.database.transaction() as session:
                gone = await session.get(MarketPushSubscription, subscription_id)
                if gone is not None:
                    await session.delete(gone)
            return
        error = None if result.delivered else f"HTTP {result.status_code} from the push service"
        retry = result.retry
    if error != previous_error:
        async with platform.database.transaction() as session:
            current = await session.get(MarketPushSubscription, subscription_id)
            if current is not None:
                current.last_error = error
    if retry:
        raise PushDeliveryFailed(error)


character_ingest.AFTER_SYNC.append(after_sync)

JOBS = (
    JobSpec(EVALUATE_HUB, evaluate_hub_alerts, concurrency=1, timeout=120),
    JobSpec(DELIVER, deliver_alert, timeout=60, max_attempts=5),
    JobSpec(DIGEST, alert_digest, timeout=60, max_attempts=5),
    JobSpec(SEND_PUSH, send_push, timeout=60, max_attempts=5),
)
CRON: tuple[CronSpec, ...] = ()
SUBSCRIBERS = (
    EventSubscriber(SNAPSHOT_STORED.name, alerts_on_snapshot, name=ON_SNAPSHOT, timeout=120, concurrency=1),
)
