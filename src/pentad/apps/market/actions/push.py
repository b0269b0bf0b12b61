"""Web Push subscriptions for market alerts. The platform's VAPID key, the encryption and the sending are
the core's (core/push.py); the market keeps its users' subscriptions, endpoint and keys encrypted at rest
(bound to the row). Endpoints are checked by the core's outbound guard (https, public addresses, or the
admin's OUTBOUND allowed networks) when subscribing and again when sending."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import delete, select

from pentad.apps.market.actions.characters import _user
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.models import MarketPushSubscription
from pentad.core.crypto import column_context
from pentad.core.db.base import uuid7
from pentad.core.netguard import GuardedClient
from pentad.core.push import PushSubscriptionCreate, VapidPublicKey, vapid_public_key

MAX_DEVICES = 10


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def column(name: str, subscription_id: uuid.UUID) -> str:
    return column_context(MarketPushSubscription.__tablename__, name, subscription_id)


async def public_key(market: MarketContext) -> VapidPublicKey:
    return await vapid_public_key(market.session, market.platform)


async def do_subscribe(market: MarketContext, data: PushSubscriptionCreate) -> tuple[uuid.UUID, bool]:
    """Store the browser's subscription (again: new keys); (id, created)."""
    user_id = _user(market)
    await GuardedClient(market.platform.outbound).check(data.endpoint)
    hashed = endpoint_hash(data.endpoint)
    # One browser profile is one endpoint: whoever subscribed it last is the one signed in there.
    await market.session.execute(
        delete(MarketPushSubscription).where(
            MarketPushSubscription.endpoint_hash == hashed, MarketPushSubscription.user_id != user_id
        )
    )
    found = await market.session.scalar(
        select(MarketPushSubscription).where(
            MarketPushSubscription.user_id == user_id, MarketPushSubscription.endpoint_hash == hashed
        )
    )
    created = found is None
    if found is None:
        found = MarketPushSubscription(id=uuid7(), user_id=user_id, endpoint_hash=hashed)
        found.endpoint = market.platform.keyring.encrypt(data.endpoint, context=column("endpoint", found.id))
        market.session.add(found)
    found.keys = market.platform.keyring.encrypt(
        data.keys.model_dump_json(), context=column("keys", found.id)
    )
    found.last_error = None
    await market.session.flush()
    mine = list(
        await market.session.scalars(
            select(MarketPushSubscription)
            .where(MarketPushSubscription.user_id == user_id)
            .order_by(MarketPushSubscription.created_at.desc())
        )
    )
    for stale in mine[MAX_DEVICES:]:
        await market.session.delete(stale)
    await market.session.flush()
    return found.id, created


async def do_unsubscribe(market: MarketContext, subscription_id: uuid.UUID) -> None:
    """Forget one of your subscriptions (an unknown or another user's one changes nothing)."""
    await market.session.execute(
        delete(MarketPushSubscription).where(
            MarketPushSubscription.id == subscription_id, MarketPushSubscription.user_id == _user(market)
        )
    )
