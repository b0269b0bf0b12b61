"""Locations the static data does not know, resolved through ESI into `MarketStation` rows.

Region books and character orders name location ids that are not in the imported SDE: an NPC station left
out of a partial export (`GET /universe/stations/{id}/`, public) or a player structure (ids above
`STRUCTURE_MIN_ID`, `GET /universe/structures/{id}/` with the access token of a character holding
`esi-universe.read_structures.v1`; ESI answers 403 when that character has no docking access). Resolved
stations are stored as `kind="npc"` (the next SDE import replaces them with its own rows), structures as
`kind="structure"` (kept across SDE imports), so pages and the API show names and systems, not bare ids.

A run (`resolve_locations`, the job `market.resolve_locations {location_ids, character?}` on the ESI queue):

- asks only for ids still unknown, a batch of at most `BATCH` per job; stations on the ingest lane,
  structures on the lane of the character's user (one user's structures never spend the shared budget);
- never asks again before a route's remembered `Expires` (state in `market_esi_cache`, one row per route,
  with its ETag so a 304 costs one token);
- an id ESI refuses (403 structure the character cannot see, 404 gone, a system the static data lacks) is
  recorded as unresolvable: an ingest run `kind="location"` with its reason and `retry_at`, and the
  route's state set to expire then, so no job asks for it again before that time;
- ESI asking us to wait (429, 420, 5xx after retries) stops the batch: what was resolved is kept and the
  job comes back when ESI said (RetryLater, no attempt spent).

Jobs are queued after ingest: the subscriber of `market.snapshot_stored` queues the unknown locations of
the new book; a character sync (AFTER_SYNC) those of the character's orders, with the character.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import characters
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.esi.client import CacheState, EsiClient
from pentad.apps.market.esi.errors import EsiError, EsiRequestFailed
from pentad.apps.market.esi.governor import INGEST, Lane
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.events import SNAPSHOT_STORED, SnapshotStored
from pentad.apps.market.exceptions import SsoNotConfigured, SsoUnavailable
from pentad.apps.market.ingest import character as character_ingest
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.orders import ESI_QUEUE
from pentad.apps.market.models import (
    MarketCharacter,
    MarketCharOrder,
    MarketStation,
    MarketSystem,
)
from pentad.core.audit import SYSTEM
from pentad.core.context import AppContext, JobContext
from pentad.core.events import Event, EventSubscriber
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec, RetryLater

logger = structlog.get_logger(__name__)

STRUCTURE_MIN_ID = 1_000_000_000_000
"""Location ids from here up are player structures (ESI: NPC stations are 60,000,000-64,000,000)."""
STRUCTURES_SCOPE = "esi-universe.read_structures.v1"
BATCH = 50
REFUSED_RETRY = timedelta(days=1)
"""An id ESI refused (403: no docking access, 401) is not asked again for this long."""
MISSING_RETRY = timedelta(days=7)
"""An id ESI does not know (404) or in a system the static data lacks: asked again after this long."""
KIND = "location"
RESOLVE = "market.resolve_locations"
ON_SNAPSHOT = "market.locations_on_snapshot"


def is_structure(location_id: int) -> bool:
    return location_id >= STRUCTURE_MIN_ID


def location_path(location_id: int) -> str:
    if is_structure(location_id):
        return f"/universe/structures/{location_id}/"
    return f"/universe/stations/{location_id}/"


@dataclass(frozen=True)
class Place:
    """What ESI says of a location."""

    name: str
    system_id: int
    owner_id: int | None


def parse_station(body: bytes) -> Place:
    """`GET /universe/stations/{id}/`; ValueError, TypeError or KeyError when not ESI's shape."""
    item = orjson.loads(body)
    owner = item.get("owner")
    return Place(_name(item["name"]), int(item["system_id"]), None if owner is None else int(owner))


def parse_structure(body: bytes) -> Place:
    """`GET /universe/structures/{id}/`; ValueError, TypeError or KeyError when not ESI's shape."""
    item = orjson.loads(body)
    owner = item.get("owner_id")
    return Place(_name(item["name"]), int(item["solar_system_id"]), None if owner is None else int(owner))


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError("a location's name is a non-empty string")
    return value.strip()[:200]


@dataclass
class ResolveOutcome:
    """resolved: ids stored; unresolvable: id -> why (recorded with a retry time); not_due: ids whose
    route has not expired since it was last asked; waiting: structures left for want of a token;
    retry_after: ESI asked us to wait (the ids after the stop are left for the retry)."""

    resolved: list[int] = field(default_factory=list)
    unresolvable: dict[int, str] = field(default_factory=dict)
    not_due: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    retry_after: float | None = None
    requests: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def unknown_locations(session: AsyncSession, location_ids: Iterable[int]) -> list[int]:
    """The ids of `location_ids` with no MarketStation row, sorted."""
    wanted = {int(i) for i in location_ids}
    if not wanted:
        return []
    known = set(await session.scalars(select(MarketStation.id).where(MarketStation.id.in_(wanted))))
    return sorted(wanted - known)


async def resolve_locations(
    platform: AppContext,
    client: EsiClient,
    location_ids: Iterable[int],
    *,
    token: str | None = None,
    lane: Lane = INGEST,
    now: Callable[[], datetime] = _utcnow,
) -> ResolveOutcome:
    """Resolve the unknown ids of `location_ids` (see the module's doc); structures need `token`."""
    outcome = ResolveOutcome()
    started = now()
    async with platform.database.transaction(writes=False) as session:
        unknown = (await unknown_locations(session, location_ids))[:BATCH]
        states = await character_ingest.cached_states(session, [location_path(i) for i in unknown])
    places: dict[int, Place] = {}
    new_states: dict[str, CacheState] = {}
    for location_id in unknown:
        structure = is_structure(location_id)
        if structure and token is None:
            outcome.waiting.append(location_id)
            continue
        path = location_path(location_id)
        state = states.get(path)
        # No row: a remembered ETag would only earn a 304 without the body we need.
        if state is not None:
            state = CacheState(None, state.expires_at, None)
        try:
            answer = await client.get(
                path,
                state=state,
                lane=lane if structure else INGEST,
                token=token if structure else None,
                parse=parse_structure if structure else parse_station,
            )
        except EsiRequestFailed as error:
            outcome.requests += 1
            wait = REFUSED_RETRY if error.status in (401, 403) else MISSING_RETRY
            reason = (
                "the character cannot see the structure"
                if error.status == 403
                else "ESI does not know it"
                if error.status == 404
                else "ESI refused the request"
            )
            outcome.unresolvable[location_id] = f"{reason} (HTTP {error.status})"
            new_states[path] = CacheState(None, now() + wait, None)
            continue
        except EsiError as error:
            outcome.requests += 1
            outcome.retry_after = max(error.retry_after or 60.0, 1.0)
            logger.warning("market_location_deferred", location_id=location_id, error=error.code)
            break
        if not answer.fetched:
            outcome.not_due.append(location_id)
            continue
        outcome.requests += 1
        new_states[path] = answer.cache_state
        if answer.data is not None:
            places[location_id] = answer.data
    finished = now()
    async with platform.database.transaction() as session:
        systems = {
            system.id: system
            for system in await session.scalars(
                select(MarketSystem).where(MarketSystem.id.in_({p.system_id for p in places.values()}))
            )
        }
        for location_id, place in places.items():
            system = systems.get(place.system_id)
            if system is None:
                reason = f"its system {place.system_id} is not in the static data (import the SDE)"
                outcome.unresolvable[location_id] = reason
                new_states[location_path(location_id)] = CacheState(None, finished + MISSING_RETRY, None)
                continue
            row = await session.get(MarketStation, location_id)
            if row is None:
                row = MarketStation(id=location_id)
                session.add(row)
            row.name = place.name
            row.system_id = system.id
            row.region_id = system.region_id
            row.owner_corp_id = place.owner_id
            row.kind = "structure" if is_structure(location_id) else "npc"
            outcome.resolved.append(location_id)
        await character_ingest.store_cached_states(session, new_states)
        for location_id, reason in outcome.unresolvable.items():
            retry = new_states[location_path(location_id)].expires_at
            await store.add_run(
                session, kind=KIND, scope=str(location_id), started=started, finished=finished,
                status="failed", detail=reason, pages=0, rows=0, retry_at=retry,
            )  # fmt: skip
    logger.info(
        "market_locations_resolved",
        resolved=len(outcome.resolved),
        unresolvable=len(outcome.unresolvable),
        not_due=len(outcome.not_due),
        waiting=len(outcome.waiting),
    )
    return outcome


# queueing --------------------------------------------------------------------------------------------


async def queue_resolution(
    session: AsyncSession, location_ids: Iterable[int], *, character: uuid.UUID | None = None
) -> int:
    """Queue jobs for the unknown ids of `location_ids`, `BATCH` a job; how many jobs were queued. The
    same batch is never pending twice (dedupe key)."""
    unknown = await unknown_locations(session, location_ids)
    if character is None:  # nobody's token: structures wait for a character's sync to name them
        unknown = [i for i in unknown if not is_structure(i)]
    # An id a run already refused or found missing waits for its retry time (its route's Expires).
    if unknown:
        states = await character_ingest.cached_states(session, [location_path(i) for i in unknown])
        moment = _utcnow()
        unknown = [
            i
            for i in unknown
            if (state := states.get(location_path(i))) is None
            or state.expires_at is None
            or state.expires_at <= moment
        ]
    queued = 0
    for start in range(0, len(unknown), BATCH):
        batch = unknown[start : start + BATCH]
        payload: dict[str, Any] = {"location_ids": batch}
        if character is not None:
            payload["character"] = str(character)
        digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        if await enqueue(session, RESOLVE, payload, dedupe_key=f"{RESOLVE}:{digest}") is not None:
            queued += 1
    return queued


async def locations_on_snapshot(context: JobContext, event: Event[SnapshotStored]) -> None:
    """`market.snapshot_stored`: queue the unknown stations of the new book."""
    snapshot = event.payload
    async with context.platform.database.transaction() as session:
        ids = await store.snapshot_locations(session, snapshot.snapshot_id, snapshot.captured_at)
        await queue_resolution(session, ids)


async def after_sync(market: MarketContext, character: MarketCharacter) -> None:
    """Registered in ingest/character.py AFTER_SYNC: the unknown locations of the character's orders,
    structures included (resolved with this character's token)."""
    ids = await market.session.scalars(
        select(MarketCharOrder.location_id)
        .where(MarketCharOrder.character_id == character.character_id)
        .distinct()
    )
    scoped = STRUCTURES_SCOPE in (character.scopes or [])
    wanted = [i for i in ids if scoped or not is_structure(i)]
    await queue_resolution(market.session, wanted, character=character.id if scoped else None)


async def _character_token(platform: AppContext, link_id: uuid.UUID) -> tuple[str, Lane] | None:
    """A fresh access token of the linked character, if it holds the structures scope and the SSO agrees
    (the rotated refresh token is committed with this transaction)."""
    async with platform.database.transaction() as session:
        market = MarketContext(session, platform, None, SYSTEM)
        character = await characters.lock_character(market, link_id)
        if character is None or STRUCTURES_SCOPE not in (character.scopes or []):
            return None
        try:
            refreshed = await characters.do_refresh(market, character)
        except SsoNotConfigured:
            return None
        except SsoUnavailable:
            raise RetryLater(300, reason="EVE SSO unavailable") from None
        if refreshed.access_token is None:
            return None
        return refreshed.access_token, Lane.for_user(character.user_id)


async def resolve_locations_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.resolve_locations {location_ids, character?}`: one batch; ESI asking us to wait re-queues
    the job for then (RetryLater, no attempt spent)."""
    client = context.resource(ESI_CLIENT)
    if client is None:
        logger.warning("market_esi_not_configured", job=RESOLVE)
        return
    ids = [int(i) for i in payload.get("location_ids", [])][:BATCH]
    token: str | None = None
    lane = INGEST
    if payload.get("character") and any(is_structure(i) for i in ids):
        found = await _character_token(context.platform, uuid.UUID(str(payload["character"])))
        if found is not None:
            token, lane = found
    outcome = await resolve_locations(context.platform, client, ids, token=token, lane=lane)
    if outcome.retry_after is not None:
        raise RetryLater(outcome.retry_after, reason="ESI asked to wait")


JOBS = (JobSpec(RESOLVE, resolve_locations_job, queue=ESI_QUEUE, timeout=300, max_attempts=5),)
SUBSCRIBERS = (EventSubscriber(SNAPSHOT_STORED.name, locations_on_snapshot, name=ON_SNAPSHOT, timeout=60),)
character_ingest.AFTER_SYNC.append(after_sync)
