"""Recently authenticated credentials, kept so that reads need no database round trip.

A credential's entry lives `PENTAD_AUTH__PRINCIPAL_CACHE_TTL` seconds (never longer than the credential).
When it is missing, concurrent requests with that credential share one lookup (`get_or_load`): the first
loads, the others wait for its answer, so an expired or cold entry costs one query instead of one per
request in flight.

Every change that can end or narrow a credential (logout, revocation, disabling a user, new roles, a
password change or reset) calls `forget(subject)`, which drops that subject's entries in this process at
once and, when Redis is configured (`PENTAD_REDIS__URL`, else a `redis://` `PENTAD_REALTIME__BROKER_URL`),
publishes the subject so every other process and node drops them too. Safety nets, because a lost message
would otherwise keep a revoked credential alive for the whole TTL:

- until a process is subscribed (start-up, Redis down, reconnecting) its entries live at most
  UNSYNCED_TTL seconds, and it drops everything whenever the subscription is lost or (re)established;
- several workers (`PENTAD_SERVER__WORKERS` > 1) without Redis cannot tell each other: entries live at
  most UNSYNCED_TTL seconds there too;
- a lookup that was in flight when its subject was forgotten is not cached;
- services forget through `forget_on_commit`, which forgets before the change and again once it has
  committed, so a request verified in between cannot keep the old answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from time import monotonic  # imported by name so tests can move this clock without moving asyncio's

import redis.asyncio
import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth.principal import Principal
from pentad.core.config import Settings
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import on_commit

logger = structlog.get_logger("pentad.auth")

CHANNEL = "pentad:auth:forget"
UNSYNCED_TTL = 5.0
REDIS_TIMEOUT_SECONDS = 2.0
PING_INTERVAL = 5.0
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0
CLOSE_TIMEOUT_SECONDS = 2.0
CLEAR_ALL = b"*"

Loader = Callable[[], Awaitable[tuple[Principal, datetime | None]]]
"""Verifies a credential against the database: its principal and when the credential expires."""


def _key(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()


class _LeaderGone(Exception):
    """The request loading a credential was cancelled; a waiter loads it itself."""


@dataclass(slots=True)
class _Flight:
    answer: asyncio.Future[Principal]
    generation: int


def invalidation_url(settings: Settings) -> str | None:
    """The Redis that carries forgets between processes, if any."""
    if settings.redis.url:
        return settings.redis.url
    broker = settings.realtime.broker_url
    if broker and broker.partition("://")[0] in ("redis", "rediss"):
        return broker
    return None


class PrincipalCache:
    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 50_000,
        redis_url: str | None = None,
        single_process: bool = True,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        self._by_subject: dict[uuid.UUID, set[bytes]] = {}
        self._flights: dict[bytes, _Flight] = {}
        self._attached: dict[uuid.UUID, dict[str, tuple[Principal, object, float]]] = {}
        self._generation = 0
        self._channel = _Invalidations(self, redis_url) if redis_url else None
        self._single_process = single_process

    @classmethod
    def from_settings(cls, settings: Settings) -> PrincipalCache:
        return cls(
            settings.auth.principal_cache_ttl,
            redis_url=invalidation_url(settings),
            single_process=settings.server.workers == 1,
        )

    @property
    def synced(self) -> bool:
        """Whether a forget in any other process reaches this one."""
        if self._channel is None:
            return self._single_process
        return self._channel.subscribed

    def get(self, credential: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        key = _key(credential)
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, deadline = entry
        if monotonic() >= deadline:
            self._drop(key, principal.id)
            return None
        return principal

    async def get_or_load(self, credential: str, load: Loader) -> Principal:
        """The cached principal, or the one `load` verifies, cached; concurrent callers with the same
        credential share one `load` (its error too: they sent the same credential)."""
        principal = self.get(credential)
        if principal is not None:
            return principal
        if self.ttl <= 0:
            return (await load())[0]
        key = _key(credential)
        while True:
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, credential, load)
            try:
                return await asyncio.shield(flight.answer)
            except _LeaderGone:
                continue

    async def _lead(self, key: bytes, credential: str, load: Loader) -> Principal:
        flight = _Flight(asyncio.get_running_loop().create_future(), self._generation)
        self._flights[key] = flight
        try:
            principal, expires_at = await load()
        except BaseException as exc:
            # Waiters share an error of the lookup; a cancelled leader leaves them to try on their own.
            flight.answer.set_exception(exc if isinstance(exc, Exception) else _LeaderGone())
            flight.answer.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            flight.answer.set_result(principal)
            if flight.generation == self._generation:
                self.put(credential, principal, expires_at=expires_at)
            return principal
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def put(self, credential: str, principal: Principal, *, expires_at: datetime | None = None) -> None:
        if self.ttl <= 0:
            return
        lifetime = self.ttl if self.synced else min(self.ttl, UNSYNCED_TTL)
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - utcnow()).total_seconds())
        if lifetime <= 0:
            return
        now = monotonic()
        if len(self._entries) >= self.max_entries:
            self._drop_expired(now)
            if len(self._entries) >= self.max_entries * 0.9:
                # Mostly live entries: start over rather than scan again on the next put.
                self.drop_all()
        key = _key(credential)
        self._entries[key] = (principal, now + lifetime)
        self._by_subject.setdefault(principal.id, set()).add(key)

    @property
    def generation(self) -> int:
        """Changes whenever anything is forgotten: read it before loading what `attach` is to keep."""
        return self._generation

    def attachment(self, principal: Principal, name: str) -> object | None:
        """What `attach` kept under `name` with this very principal, while it is cached and not forgotten."""
        found = self._attached.get(principal.id, {}).get(name)
        if found is None or found[0] is not principal:
            return None
        if monotonic() >= found[2]:
            return None
        return found[1]

    def attach(self, principal: Principal, name: str, value: object, *, generation: int) -> None:
        """Keep `value` with a cached principal: what an app reads of the database for every request of
        that principal (chat: its chat user and tenant), so reads need no round trip for it either.

        It is dropped with the principal (`forget`, `clear`, expiry), in every process; so a change to
        what `value` was read from must `forget` (forget_on_commit) the principal's subject. `generation`
        is `self.generation` read before `value` was loaded: after a forget since, nothing is kept (the
        value may predate the change). Nothing is kept for a principal that is not cached."""
        if generation != self._generation or self.ttl <= 0:
            return
        deadline = 0.0
        for key in self._by_subject.get(principal.id, ()):
            entry = self._entries.get(key)
            if entry is not None and entry[0] is principal:
                deadline = max(deadline, entry[1])
        if deadline:
            self._attached.setdefault(principal.id, {})[name] = (principal, value, deadline)

    def forget(self, subject_id: uuid.UUID) -> None:
        """Drop every cached credential of a user or service token, in every process."""
        self.forget_here(subject_id)
        if self._channel is not None:
            self._channel.publish(subject_id.hex.encode())

    def clear(self) -> None:
        """Drop every cached credential, in every process."""
        self.clear_here()
        if self._channel is not None:
            self._channel.publish(CLEAR_ALL)

    def forget_here(self, subject_id: uuid.UUID) -> None:
        """Drop a subject's credentials in this process only (a forget received from another)."""
        self._invalidate_flights()
        self._attached.pop(subject_id, None)
        for key in self._by_subject.pop(subject_id, set()):
            self._entries.pop(key, None)

    def clear_here(self) -> None:
        """Drop every credential in this process only (a clear received from another)."""
        self.drop_all()

    def drop_all(self) -> None:
        """Drop every entry here, with no change behind it (the cache is full, or may have missed a
        forget while it was not subscribed)."""
        self._invalidate_flights()
        self._entries.clear()
        self._by_subject.clear()
        self._attached.clear()

    def _invalidate_flights(self) -> None:
        """Lookups in flight now may have read what is being changed: they are not cached, and later
        callers start a lookup of their own."""
        self._generation += 1
        self._flights.clear()

    def _drop_expired(self, now: float) -> None:
        """One pass over every entry when the cache is full (rare: amortised over the puts that filled it),
        so that credentials nobody sends any more (refreshed access tokens) do not crowd out live ones."""
        for key, (principal, deadline) in list(self._entries.items()):
            if now >= deadline:
                self._drop(key, principal.id)

    def _drop(self, key: bytes, subject_id: uuid.UUID) -> None:
        self._entries.pop(key, None)
        keys = self._by_subject.get(subject_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_subject[subject_id]
                self._attached.pop(subject_id, None)

    async def start(self) -> None:
        """Listen for other processes' forgets (a server process calls this; until then, and whenever
        the subscription is down, entries are short-lived)."""
        if self._channel is not None:
            self._channel.start()

    async def close(self) -> None:
        """Send the forgets still queued (a CLI command's revocation must reach the servers) and stop."""
        if self._channel is not None:
            await self._channel.close()


class _Invalidations:
    """The Redis channel of forgets: published by any process, received by every subscribed one. Each
    message is `<sender id> <subject hex>` or `<sender id> *` (everything); a sender skips its own."""

    def __init__(self, cache: PrincipalCache, url: str) -> None:
        self._cache = cache
        self._sender = uuid.uuid4().hex.encode()
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._subscriber = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=PING_INTERVAL * 2
        )
        self._publishing: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = False

    def publish(self, subject: bytes) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._publish(self._sender + b" " + subject))
        except RuntimeError:  # no event loop: nothing in this process can be serving requests either
            return
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, message: bytes) -> None:
        try:
            await self._redis.publish(CHANNEL, message)
        except (RedisError, OSError) as exc:
            # The subscribers lose their subscription too when Redis is down, and then keep entries only
            # briefly; a sender cut off alone is the case this warning is for.
            logger.warning("principal_forget_not_published", error=repr(exc))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pentad-principal-invalidations")

    async def close(self) -> None:
        if self._publishing:
            await asyncio.wait(list(self._publishing), timeout=CLOSE_TIMEOUT_SECONDS)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # types-redis predates aclose() (redis-py 5); close() is deprecated.
        await self._redis.aclose()  # type: ignore[attr-defined]
        await self._subscriber.aclose()  # type: ignore[attr-defined]

    async def _run(self) -> None:
        delay = BACKOFF_INITIAL
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                if self.subscribed:
                    logger.warning("principal_invalidations_lost", error=repr(exc))
                delay = BACKOFF_INITIAL if self.subscribed else min(BACKOFF_MAX, delay * 2)
            finally:
                if self.subscribed:
                    self.subscribed = False
                    # Forgets sent while we are away are lost: keep nothing that may have missed one.
                    self._cache.drop_all()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _listen(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(CHANNEL)
        last_traffic = monotonic()
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL)
            now = monotonic()
            if message is None:
                if now - last_traffic > 2 * PING_INTERVAL:
                    raise RedisError("Redis stopped answering")
                await pubsub.ping()
                continue
            last_traffic = now
            if message["type"] == "subscribe":
                # Entries cached before now may have missed a forget: start from nothing.
                self._cache.drop_all()
                self.subscribed = True
                logger.info("principal_invalidations_ready")
            elif message["type"] == "message":
                self._receive(message["data"])

    def _receive(self, data: bytes) -> None:
        sender, _, subject = data.partition(b" ")
        if sender == self._sender:
            return
        if subject == CLEAR_ALL:
            self._cache.clear_here()
            return
        with contextlib.suppress(ValueError):
            self._cache.forget_here(uuid.UUID(hex=subject.decode()))


def forget_on_commit(session: AsyncSession, cache: PrincipalCache, subject_id: uuid.UUID | None) -> None:
    """Drop the cached principals of a user, service token or app subject (None: all) now and again once
    the change commits: a request verified in between would otherwise cache the old answer."""

    def drop() -> None:
        if subject_id is None:
            cache.clear()
        else:
            cache.forget(subject_id)

    async def again() -> None:
        drop()

    drop()
    on_commit(session, again)
