"""The two Redis clients the realtime parts keep (the broker, the relay): one for commands, one for
subscriptions. A leaf module: the relay sits below the app context and may import nothing else here."""

from __future__ import annotations

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def redis_pair(
    url: str, *, connect_timeout: float, command_timeout: float
) -> tuple[redis.asyncio.Redis[bytes], redis.asyncio.Redis[bytes]]:
    """A command client and a subscriber client for `url`. Commands retry once (a pooled connection may
    be stale after a Redis restart); the subscriber never retries by itself: a broken subscription must
    surface to its owner, since messages may have been lost meanwhile."""

    def client(retries: int) -> redis.asyncio.Redis[bytes]:
        return redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=command_timeout,
            retry=Retry(NoBackoff(), retries),
        )

    return client(1), client(0)
