"""A linked character's data from ESI, with the character's own access token: open orders and order
history, wallet transactions and journal, skills, standings.

One run (`sync_character`), all or nothing:

1. Lock the character and trade its refresh token for an access token (`characters.do_refresh`; the rotated
   refresh token is committed at once). A refused or revoked token puts the character in `needs_reauth`
   (the run is `failed` with that reason, the user sees the status and links again); the SSO being down
   defers the run.
2. Ask ESI for each route the character's scopes allow, never before that route's remembered `Expires`
   and with `If-None-Match` (state in `market_esi_cache`, one row per route); a route not due or answering
   304 keeps what is stored. Wallet transactions page back with `from_id` until a known transaction; the
   journal and the order history page with `X-Pages`. Requests go on the character's user's lane, so one
   user's characters never eat the shared ESI budget.
3. Only once every answer is in: one write transaction stores everything (orders upserted, an open order
   gone from ESI's open list takes its state from the history, transactions and journal entries added,
   skills and standings replaced), rebuilds the character's FIFO lots and realised trades, records the
   route states, `last_sync` and an `ok` run, and runs the alert rules of the character's users. Any ESI
   failure stores nothing of the run (a `deferred` or `failed` run says why).

`market.sync_character {character}` (queue `market_esi`) runs it; `market.schedule_characters` (every
minute) queues one per character in `ok` whose data is due: at the earliest `Expires` of its routes (ESI's
cadence: orders 20 min, wallet and standings 1 h).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import characters
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.analysis.pnl import Trade, fifo
from pentad.apps.market.esi.client import CacheState, EsiClient, EsiResponse
from pentad.apps.market.esi.errors import EsiError, EsiRequestFailed
from pentad.apps.market.esi.governor import Lane
from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.exceptions import SsoNotConfigured, SsoUnavailable
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.orders import downtime_left
from pentad.apps.market.models import (
    MarketCharacter,
    MarketCharOrder,
    MarketEsiCache,
    MarketFifoLot,
    MarketRealized,
    MarketSkill,
    MarketStanding,
    MarketUserPrefs,
    MarketWalletJournal,
    MarketWalletTransaction,
)
from pentad.apps.market.settings import MarketSettings
from pentad.apps.market.topics import CharacterSynced, user_topic
from pentad.core.audit import SYSTEM
from pentad.core.context import AppContext, JobContext
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import CronSpec, JobSpec, RetryLater
from pentad.core.realtime.publish import publish

logger = structlog.get_logger("pentad.market.character")

KIND = "character"
SYNC = "market.sync_character"
SCHEDULE = "market.schedule_characters"
ESI_QUEUE = "market_esi"
SSO_DOWN_WAIT = 300.0
MIN_INTERVAL = timedelta(minutes=5)
"""Never sync a character more often than this, whatever a route's Expires says (skills expire in 2 min)."""

ORDERS_SCOPE = "esi-markets.read_character_orders.v1"
WALLET_SCOPE = "esi-wallet.read_character_wallet.v1"
SKILLS_SCOPE = "esi-skills.read_skills.v1"
STANDINGS_SCOPE = "esi-characters.read_standings.v1"
ROUTES: dict[str, tuple[str, str]] = {
    "orders": ("/characters/{id}/orders/", ORDERS_SCOPE),
    "history": ("/characters/{id}/orders/history/", ORDERS_SCOPE),
    "transactions": ("/characters/{id}/wallet/transactions/", WALLET_SCOPE),
    "journal": ("/characters/{id}/wallet/journal/", WALLET_SCOPE),
    "skills": ("/characters/{id}/skills/", SKILLS_SCOPE),
    "standings": ("/characters/{id}/standings/", STANDINGS_SCOPE),
}
CADENCE_ROUTES = ("orders", "history", "transactions", "journal", "standings")
"""The routes whose Expires set when the next run is due (skills ride along)."""
MAX_PAGES = 50
TAX_REF = "transaction_tax"
BROKER_REF = "brokers_fee"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _price(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def url_key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


# parsing: ESI's shapes into rows (a body that is not the shape raises, and the client retries it) ----


def parse_orders(body: bytes) -> list[dict[str, Any]]:
    rows = []
    for item in orjson.loads(body):
        rows.append(
            {
                "order_id": int(item["order_id"]),
                "type_id": int(item["type_id"]),
                "location_id": int(item["location_id"]),
                "region_id": int(item["region_id"]),
                "is_buy": bool(item.get("is_buy_order", False)),
                "price": _price(item["price"]),
                "volume_total": int(item["volume_total"]),
                "volume_remain": int(item["volume_remain"]),
                "min_volume": int(item["min_volume"]) if item.get("min_volume") is not None else None,
                "escrow": _price(item["escrow"]) if item.get("escrow") is not None else None,
                "issued": _time(item["issued"]),
                "duration": int(item["duration"]),
                "range": str(item["range"])[:16],
                "state": str(item.get("state", "open")),
            }
        )
    return rows


def parse_transactions(body: bytes) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": int(item["transaction_id"]),
            "date": _time(item["date"]),
            "type_id": int(item["type_id"]),
            "location_id": int(item["location_id"]),
            "quantity": int(item["quantity"]),
            "unit_price": _price(item["unit_price"]),
            "is_buy": bool(item["is_buy"]),
            "is_personal": bool(item.get("is_personal", True)),
            "client_id": int(item["client_id"]) if item.get("client_id") is not None else None,
            "journal_ref_id": int(item["journal_ref_id"]) if item.get("journal_ref_id") is not None else None,
        }
        for item in orjson.loads(body)
    ]


def parse_journal(body: bytes) -> list[dict[str, Any]]:
    def optional_int(value: Any) -> int | None:
        return int(value) if value is not None else None

    return [
        {
            "ref_id": int(item["id"]),
            "date": _time(item["date"]),
            "ref_type": str(item["ref_type"])[:64],
            "amount": _price(item["amount"]) if item.get("amount") is not None else None,
            "balance": _price(item["balance"]) if item.get("balance") is not None else None,
            "context_id": optional_int(item.get("context_id")),
            "context_id_type": str(item["context_id_type"])[:32] if item.get("context_id_type") else None,
            "first_party_id": optional_int(item.get("first_party_id")),
            "second_party_id": optional_int(item.get("second_party_id")),
            "description": str(item.get("description") or "")[:500] or None,
        }
        for item in orjson.loads(body)
    ]


def parse_skills(body: bytes) -> dict[int, int]:
    data = orjson.loads(body)
    return {int(s["skill_id"]): int(s["active_skill_level"]) for s in data["skills"]}


def parse_standings(body: bytes) -> list[tuple[int, str, float]]:
    return [(int(s["from_id"]), str(s["from_type"])[:16], float(s["standing"])) for s in orjson.loads(body)]


# fetching ------------------------------------------------------------------------------------------


@dataclass
class Fetched:
    """What ESI answered in one run; None: not asked (not due, no scope) or unchanged (304)."""

    orders: list[dict[str, Any]] | None = None
    history: list[dict[str, Any]] | None = None
    transactions: list[dict[str, Any]] | None = None
    journal: list[dict[str, Any]] | None = None
    skills: dict[int, int] | None = None
    standings: list[tuple[int, str, float]] | None = None
    states: dict[str, CacheState] = field(default_factory=dict)
    requests: int = 0


class _Fetcher:
    def __init__(
        self, client: EsiClient, character_id: int, token: str, lane: Lane, states: dict[str, CacheState]
    ) -> None:
        self.client = client
        self.character_id = character_id
        self.token = token
        self.lane = lane
        self.states = states
        self.fetched = Fetched()

    def path(self, route: str) -> str:
        return ROUTES[route][0].replace("{id}", str(self.character_id))

    async def first(
        self, route: str, parse: Callable[[bytes], Any], params: dict[str, str | int] | None = None
    ) -> EsiResponse[Any] | None:
        path = self.path(route)
        answer = await self.client.get(
            path, params=params, state=self.states.get(path), lane=self.lane, token=self.token, parse=parse
        )
        self.fetched.requests += int(answer.fetched)
        if answer.fetched:
            self.fetched.states[path] = answer.cache_state
        return None if answer.not_modified else answer

    async def more_pages(
        self, route: str, first: EsiResponse[Any], parse: Callable[[bytes], Any]
    ) -> list[Any]:
        rows = list(first.data or [])
        for page in range(2, min(first.pages or 1, MAX_PAGES) + 1):
            answer = await self.client.get(
                self.path(route),
                params={"page": page},
                lane=self.lane,
                token=self.token,
                parse=parse,
                ignore_expires=True,
            )
            self.fetched.requests += 1
            rows.extend(answer.data or [])
        return rows


async def fetch_character(
    client: EsiClient,
    character_id: int,
    token: str,
    scopes: Sequence[str],
    states: dict[str, CacheState],
    *,
    lane: Lane,
    newest_transaction: int | None,
) -> Fetched:
    """Everything due for the character from ESI (raises an EsiError when ESI cannot answer now)."""
    fetcher = _Fetcher(client, character_id, token, lane, states)
    fetched = fetcher.fetched
    if ORDERS_SCOPE in scopes:
        answer = await fetcher.first("orders", parse_orders)
        if answer is not None:
            fetched.orders = list(answer.data or [])
        answer = await fetcher.first("history", parse_orders, {"page": 1})
        if answer is not None:
            fetched.history = await fetcher.more_pages("history", answer, parse_orders)
    if WALLET_SCOPE in scopes:
        answer = await fetcher.first("transactions", parse_transactions)
        if answer is not None:
            rows = list(answer.data or [])
            batch = rows
            # ESI answers the newest batch; older ones by `from_id`, until one we already hold.
            while batch and (
                newest_transaction is None or min(r["transaction_id"] for r in batch) > newest_transaction
            ):
                from_id = min(r["transaction_id"] for r in batch) - 1
                older = await client.get(
                    fetcher.path("transactions"),
                    params={"from_id": from_id},
                    lane=lane,
                    token=token,
                    parse=parse_transactions,
                    ignore_expires=True,
                )
                fetched.requests += 1
                batch = list(older.data or [])
                rows.extend(batch)
                if fetched.requests > MAX_PAGES * 2:
                    break
            fetched.transactions = rows
        answer = await fetcher.first("journal", parse_journal, {"page": 1})
        if answer is not None:
            fetched.journal = await fetcher.more_pages("journal", answer, parse_journal)
    if SKILLS_SCOPE in scopes:
        answer = await fetcher.first("skills", parse_skills)
        if answer is not None:
            fetched.skills = answer.data
    if STANDINGS_SCOPE in scopes:
        answer = await fetcher.first("standings", parse_standings)
        if answer is not None:
            fetched.standings = answer.data
    return fetched


# storing -------------------------------------------------------------------------------------------


async def cached_states(session: AsyncSession, paths: Sequence[str]) -> dict[str, CacheState]:
    """The stored Expires/ETag state of each ESI path that has one (market_esi_cache)."""
    keys = {url_key(path): path for path in paths}
    rows = await session.scalars(select(MarketEsiCache).where(MarketEsiCache.url_key.in_(list(keys))))
    return {
        row.url: CacheState(etag=row.etag, expires_at=row.expires_at, last_modified=row.last_modified)
        for row in rows
    }


async def store_cached_states(session: AsyncSession, states: dict[str, CacheState]) -> None:
    """Keep each path's Expires/ETag state, so that nothing is asked again before Expires."""
    for path, state in states.items():
        row = await session.get(MarketEsiCache, url_key(path))
        if row is None:
            row = MarketEsiCache(url_key=url_key(path), url=path)
            session.add(row)
        row.etag = state.etag
        row.expires_at = state.expires_at
        row.last_modified = state.last_modified


async def _existing(session: AsyncSession, column: Any, scope: Any, ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(await session.scalars(select(column).where(scope, column.in_(chunk))))
    return found


def _expired_or_cancelled(order: MarketCharOrder, now: datetime) -> str:
    """An order gone from the open list and not (yet) in the history: past its duration it expired,
    else it was filled (volume left 0) or cancelled."""
    if order.issued + timedelta(days=order.duration) <= now:
        return "expired"
    return "cancelled"


def _closed_state(row: dict[str, Any]) -> str:
    if row["state"] == "expired" and row["volume_remain"] == 0:
        return "filled"
    return row["state"] if row["state"] in ("expired", "cancelled") else "cancelled"


async def store_orders(
    session: AsyncSession,
    character_id: int,
    open_orders: list[dict[str, Any]] | None,
    history: list[dict[str, Any]] | None,
    now: datetime,
) -> int:
    rows = 0
    current = {
        order.order_id: order
        for order in await session.scalars(
            select(MarketCharOrder).where(MarketCharOrder.character_id == character_id)
        )
    }
    incoming: dict[int, dict[str, Any]] = {}
    for row in history or []:
        incoming[row["order_id"]] = dict(row, state=_closed_state(row))
    for row in open_orders or []:
        incoming[row["order_id"]] = dict(row, state="open")
    for order_id, row in incoming.items():
        order = current.get(order_id)
        if order is None:
            order = MarketCharOrder(character_id=character_id, order_id=order_id)
            session.add(order)
        for name, value in row.items():
            if name != "order_id":
                setattr(order, name, value)
        order.seen_at = now
        rows += 1
    if open_orders is not None:
        for order_id, order in current.items():
            if order.state == "open" and order_id not in incoming:
                order.state = _expired_or_cancelled(order, now)
                order.seen_at = now
    return rows


async def store_wallet(
    session: AsyncSession,
    character_id: int,
    transactions: list[dict[str, Any]] | None,
    journal: list[dict[str, Any]] | None,
) -> int:
    rows = 0
    if transactions:
        known = await _existing(
            session,
            MarketWalletTransaction.transaction_id,
            MarketWalletTransaction.character_id == character_id,
            [r["transaction_id"] for r in transactions],
        )
        for row in transactions:
            if row["transaction_id"] not in known:
                known.add(row["transaction_id"])
                session.add(MarketWalletTransaction(character_id=character_id, **row))
                rows += 1
    if journal:
        known = await _existing(
            session,
            MarketWalletJournal.ref_id,
            MarketWalletJournal.character_id == character_id,
            [r["ref_id"] for r in journal],
        )
        for row in journal:
            if row["ref_id"] not in known:
                known.add(row["ref_id"])
                session.add(MarketWalletJournal(character_id=character_id, **row))
                rows += 1
    return rows


async def store_skills(
    session: AsyncSession,
    character_id: int,
    skills: dict[int, int] | None,
    standings: list[tuple[int, str, float]] | None,
) -> None:
    if skills is not None:
        await session.execute(delete(MarketSkill).where(MarketSkill.character_id == character_id))
        session.add_all(
            MarketSkill(character_id=character_id, skill_id=k, level=v) for k, v in skills.items()
        )
    if standings is not None:
        await session.execute(delete(MarketStanding).where(MarketStanding.character_id == character_id))
        seen: set[int] = set()
        for from_id, from_type, standing in standings:
            if from_id not in seen:
                seen.add(from_id)
                session.add(
                    MarketStanding(
                        character_id=character_id, from_id=from_id, from_type=from_type, standing=standing
                    )
                )


def user_pool(user_id: uuid.UUID) -> str:
    """The P&L pool of a user who pools their characters (a buy on one, a sell on another match)."""
    return f"user:{user_id}"


async def rebuild_pnl(session: AsyncSession, character_id: int) -> int:
    """The character's FIFO lots and realised trades, rebuilt from every stored transaction (an older
    transaction arriving late changes every later match); and the pools of the users who linked it and
    pool their characters (`pool_characters_for_pnl`)."""
    count = await rebuild_pool(session, str(character_id), [character_id])
    pooling = await session.scalars(
        select(MarketCharacter.user_id)
        .join(MarketUserPrefs, MarketUserPrefs.user_id == MarketCharacter.user_id)
        .where(
            MarketCharacter.character_id == character_id, MarketUserPrefs.pool_characters_for_pnl.is_(True)
        )
    )
    for user_id in set(pooling):
        await rebuild_user_pool(session, user_id)
    return count


async def rebuild_user_pool(session: AsyncSession, user_id: uuid.UUID) -> int:
    linked = list(
        await session.scalars(select(MarketCharacter.character_id).where(MarketCharacter.user_id == user_id))
    )
    return await rebuild_pool(session, user_pool(user_id), linked)


async def rebuild_pool(session: AsyncSession, pool: str, character_ids: Sequence[int]) -> int:
    """One pool's lots and realised trades from the transactions of `character_ids`."""
    trades = [
        Trade(t.transaction_id, t.date, t.type_id, t.quantity, t.unit_price, t.is_buy, t.character_id)
        for t in await session.scalars(
            select(MarketWalletTransaction).where(
                MarketWalletTransaction.character_id.in_(list(character_ids))
            )
        )
    ]
    taxes: dict[int, Decimal] = {}
    for context_id, amount in await session.execute(
        select(MarketWalletJournal.context_id, MarketWalletJournal.amount).where(
            MarketWalletJournal.character_id.in_(list(character_ids)),
            MarketWalletJournal.ref_type == TAX_REF,
            MarketWalletJournal.context_id.is_not(None),
        )
    ):
        if context_id is not None:
            taxes[int(context_id)] = taxes.get(int(context_id), Decimal(0)) + abs(amount or Decimal(0))
    ledger = fifo(trades, taxes)
    await session.execute(delete(MarketFifoLot).where(MarketFifoLot.pool == pool))
    await session.execute(delete(MarketRealized).where(MarketRealized.pool == pool))
    session.add_all(
        MarketFifoLot(
            pool=pool,
            type_id=lot.type_id,
            character_id=lot.character_id,
            transaction_id=lot.transaction_id,
            date=lot.date,
            quantity_left=lot.quantity_left,
            unit_cost=lot.unit_cost,
        )
        for lot in ledger.lots
    )
    session.add_all(
        MarketRealized(
            pool=pool,
            type_id=r.type_id,
            character_id=r.character_id,
            sell_transaction_id=r.sell_transaction_id,
            date=r.date,
            quantity=r.quantity,
            unknown_quantity=r.unknown_quantity,
            proceeds=r.proceeds,
            cost=r.cost,
            tax=r.tax,
            fees=Decimal(0),
        )
        for r in ledger.realized
    )
    return len(ledger.realized)


def notify_synced(session: AsyncSession, character: MarketCharacter, status: str, detail: str | None) -> None:
    """`character.synced` on the user's topic (after the commit): pages refresh, or ask to link again."""
    publish(
        session,
        user_topic(character.user_id),
        CharacterSynced(
            character=character.id, character_id=character.character_id, status=status, detail=detail
        ),
    )


# one run -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncOutcome:
    status: str
    """ok | needs_reauth | deferred | failed | skipped"""
    detail: str | None = None
    retry_after: float | None = None
    rows: int = 0


AfterSync = Callable[[MarketContext, MarketCharacter], Any]
AFTER_SYNC: list[AfterSync] = []
"""Called in the run's write transaction after the data is stored (alerts evaluate here)."""


def _next_due(states: dict[str, CacheState], paths: dict[str, str], now: datetime) -> datetime:
    expiries = [
        state.expires_at
        for route, path in paths.items()
        if route in CADENCE_ROUTES
        and (state := states.get(path)) is not None
        and state.expires_at is not None
    ]
    due = min(expiries) if expiries else now + MIN_INTERVAL
    return max(due, now + MIN_INTERVAL)


async def _finish(
    platform: AppContext,
    link_id: uuid.UUID,
    started: datetime,
    status: str,
    detail: str,
    *,
    retry_after: float | None = None,
) -> SyncOutcome:
    async with platform.database.transaction() as session:
        character = await session.get(MarketCharacter, link_id)
        if character is not None:
            last = dict(character.last_sync or {})
            last.update({"status": status, "detail": detail, "attempted_at": started.isoformat()})
            if retry_after is not None:
                last["next_at"] = (started + timedelta(seconds=retry_after)).isoformat()
            character.last_sync = last
            await _add_run(session, character.character_id, started, status, detail)
            notify_synced(session, character, status, detail)
    logger.info("market_character_sync", status=status, detail=detail)
    return SyncOutcome(status, detail, retry_after)


async def _add_run(
    session: AsyncSession,
    character_id: int,
    started: datetime,
    status: str,
    detail: str | None,
    rows: int = 0,
) -> None:
    await store.add_run(
        session,
        kind=KIND,
        scope=str(character_id),
        started=started,
        finished=_utcnow(),
        status=status,
        detail=detail,
        pages=0,
        rows=rows,
    )


async def sync_character(
    platform: AppContext,
    client: EsiClient,
    link_id: uuid.UUID,
    *,
    now: Callable[[], datetime] = _utcnow,
) -> SyncOutcome:
    """One all-or-nothing run for one linked character (see the module's doc)."""
    started = now()
    async with platform.database.transaction() as session:
        market = MarketContext(session, platform, None, SYSTEM)
        character = await characters.lock_character(market, link_id)
        if character is None:
            return SyncOutcome("skipped", "unlinked")
        if character.status != characters.OK:
            return SyncOutcome("needs_reauth", "link the character again")
        try:
            refreshed = await characters.do_refresh(market, character)
        except SsoNotConfigured:
            return SyncOutcome("skipped", "SSO not configured")
        except SsoUnavailable:
            refreshed = None
        character_id = character.character_id
        user_id = character.user_id
        scopes = list(character.scopes or [])
    if refreshed is None:
        return await _finish(
            platform, link_id, started, "deferred", "EVE SSO unavailable", retry_after=SSO_DOWN_WAIT
        )
    if refreshed.access_token is None:
        if refreshed.retry:
            return await _finish(
                platform, link_id, started, "deferred", "EVE SSO keys unavailable", retry_after=SSO_DOWN_WAIT
            )
        return await _finish(
            platform,
            link_id,
            started,
            "needs_reauth",
            "EVE SSO refused the character's token (revoked, expired or the character changed hands): "
            "link it again",
        )
    paths = {route: path.replace("{id}", str(character_id)) for route, (path, _scope) in ROUTES.items()}
    async with platform.database.transaction(writes=False) as session:
        states = await cached_states(session, list(paths.values()))
        newest = await session.scalar(
            select(MarketWalletTransaction.transaction_id)
            .where(MarketWalletTransaction.character_id == character_id)
            .order_by(MarketWalletTransaction.transaction_id.desc())
            .limit(1)
        )
    try:
        fetched = await fetch_character(
            client,
            character_id,
            refreshed.access_token,
            scopes,
            states,
            lane=Lane.for_user(user_id),
            newest_transaction=newest,
        )
    except EsiRequestFailed as error:
        detail = f"{error.code}: {error}"
        if error.status in (401, 403):
            detail = f"ESI refused the character's token ({error.status}): {error}"
        return await _finish(
            platform, link_id, started, "failed", detail, retry_after=MIN_INTERVAL.total_seconds()
        )
    except EsiError as error:
        return await _finish(
            platform,
            link_id,
            started,
            "deferred",
            f"{error.code}: {error}",
            retry_after=max(error.retry_after or 60.0, 1.0),
        )
    finished = now()
    async with platform.database.transaction() as session:
        market = MarketContext(session, platform, None, SYSTEM)
        character = await characters.lock_character(market, link_id)
        if character is None:
            return SyncOutcome("skipped", "unlinked")
        rows = await store_orders(session, character_id, fetched.orders, fetched.history, finished)
        rows += await store_wallet(session, character_id, fetched.transactions, fetched.journal)
        await store_skills(session, character_id, fetched.skills, fetched.standings)
        if fetched.transactions or fetched.journal:
            await rebuild_pnl(session, character_id)
        await store_cached_states(session, fetched.states)
        await session.flush()
        merged = {**states, **fetched.states}
        character.last_sync = {
            "status": "ok",
            "detail": None,
            "attempted_at": started.isoformat(),
            "at": finished.isoformat(),
            "next_at": _next_due(merged, paths, finished).isoformat(),
            "requests": fetched.requests,
        }
        await _add_run(session, character_id, started, "ok", None, rows)
        notify_synced(session, character, "ok", None)
        for hook in AFTER_SYNC:
            await hook(market, character)
    return SyncOutcome("ok", None, rows=rows)


# jobs ----------------------------------------------------------------------------------------------


def sync_dedupe_key(link_id: uuid.UUID | str) -> str:
    return f"{SYNC}:{link_id}"


async def sync_character_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.sync_character {character: <link id>}`: one run; ESI or the SSO asking us to wait
    re-queues the job (RetryLater, no attempt spent)."""
    settings = context.platform.app_settings(MarketSettings)
    waiting = downtime_left(settings, _utcnow())
    if waiting > 0:
        raise RetryLater(waiting + 5, reason="EVE daily downtime")
    client = context.resource(ESI_CLIENT)
    if client is None:
        logger.warning("market_esi_not_configured", job=SYNC)
        return
    outcome = await sync_character(context.platform, client, uuid.UUID(str(payload["character"])))
    if outcome.status == "deferred" and outcome.retry_after is not None:
        raise RetryLater(outcome.retry_after, reason=outcome.detail or "later")


async def schedule_characters_job(context: JobContext, payload: dict[str, Any]) -> None:
    """`market.schedule_characters` (every minute): a pending sync per character in `ok`, due at its
    routes' earliest Expires."""
    settings = context.platform.app_settings(MarketSettings)
    if settings.contact is None or not settings.esi_client_id:
        return
    now = _utcnow()
    async with context.platform.database.transaction() as session:
        found = await session.execute(
            select(MarketCharacter.id, MarketCharacter.last_sync).where(
                MarketCharacter.status == characters.OK, MarketCharacter.refresh_token.is_not(None)
            )
        )
        for link_id, last in found.all():
            next_at = (last or {}).get("next_at")
            delay = 0.0
            if next_at:
                delay = max((_time(next_at) - now).total_seconds(), 0.0)
            if delay > 120:
                continue  # the next minute's tick queues it
            await enqueue(
                session,
                SYNC,
                {"character": str(link_id)},
                delay=timedelta(seconds=delay),
                dedupe_key=sync_dedupe_key(link_id),
            )


async def queue_sync(session: AsyncSession, link_id: uuid.UUID) -> None:
    """A sync now (the user asked): routes not past their Expires are still not asked."""
    await enqueue(session, SYNC, {"character": str(link_id)}, dedupe_key=sync_dedupe_key(link_id))


JOBS = (
    JobSpec(SYNC, sync_character_job, queue=ESI_QUEUE, timeout=300, max_attempts=5),
    JobSpec(SCHEDULE, schedule_characters_job, timeout=60),
)
CRON = (CronSpec(SCHEDULE, every=60),)
