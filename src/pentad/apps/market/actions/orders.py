"""My orders: the caller's characters' market orders checked against the current order book.

For each open order: fill progress, when it expires (issued + duration days; `expiring` within
EXPIRY_WARNING_HOURS), and against the region's current snapshot the best other price on the same side at
the same station — a sell is undercut when another sell there is cheaper, a buy outbid when another buy
there pays more (orders of any of the user's own characters are not competition) — how many orders are
ahead, and whether one of them was placed or repriced after this order's last update (`issued` moves on a
price change, so it tells "someone beat you since you last updated"). Buy ranges are not considered:
competition is counted at the order's own station."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from pentad.apps.market.actions.characters import _user
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.exceptions import CharacterNotFound
from pentad.apps.market.models import (
    ORDERS,
    MarketCharacter,
    MarketCharOrder,
    MarketRegionState,
    MarketStation,
    MarketSystem,
    MarketType,
)
from pentad.apps.market.trader_schemas import MyOrderRead
from pentad.core.db.base import utcnow
from pentad.core.db.partitions import insert_target


@dataclass(frozen=True)
class Competitor:
    order_id: int
    price: Decimal
    issued: datetime


@dataclass(frozen=True)
class Book:
    captured_at: datetime | None
    sides: dict[tuple[int, int, bool], list[Competitor]]
    """(location, type, is_buy) → the other orders there."""


async def own_characters(
    market: MarketContext, link_id: uuid.UUID | None = None, *, user_id: uuid.UUID | None = None
) -> list[MarketCharacter]:
    """The caller's linked characters (one of them with `link_id`; another user's is 404). `user_id`: a
    job acting for that user."""
    user_id = user_id or _user(market)
    query = select(MarketCharacter).where(MarketCharacter.user_id == user_id)
    if link_id is not None:
        query = query.where(MarketCharacter.id == link_id)
    found = list(await market.session.scalars(query.order_by(MarketCharacter.name)))
    if link_id is not None and not found:
        raise CharacterNotFound()
    return found


async def current_books(
    market: MarketContext, orders: list[MarketCharOrder], own_ids: set[int]
) -> dict[int, Book]:
    """Per region, the other orders of the current snapshot at the stations and types of `orders`."""
    wanted: dict[int, tuple[set[int], set[int]]] = defaultdict(lambda: (set(), set()))
    for order in orders:
        wanted[order.region_id][0].add(order.location_id)
        wanted[order.region_id][1].add(order.type_id)
    books: dict[int, Book] = {}
    connection = await market.session.connection()
    for region_id, (locations, types) in wanted.items():
        state = await market.session.get(MarketRegionState, region_id)
        if state is None or state.current_snapshot_id is None or state.captured_at is None:
            books[region_id] = Book(None, {})
            continue
        table = insert_target(ORDERS, connection.dialect.name, state.captured_at)
        columns = table.c
        rows = await market.session.execute(
            select(
                columns.order_id,
                columns.location_id,
                columns.type_id,
                columns.is_buy,
                columns.price,
                columns.issued,
            ).where(
                columns.captured_at == state.captured_at,
                columns.snapshot_id == state.current_snapshot_id,
                columns.location_id.in_(sorted(locations)),
                columns.type_id.in_(sorted(types)),
            )
        )
        sides: dict[tuple[int, int, bool], list[Competitor]] = defaultdict(list)
        for order_id, location_id, type_id, is_buy, price, issued in rows:
            if int(order_id) in own_ids:
                continue
            sides[(int(location_id), int(type_id), bool(is_buy))].append(
                Competitor(int(order_id), Decimal(price), issued)
            )
        books[region_id] = Book(state.captured_at, dict(sides))
    return books


def check_order(order: MarketCharOrder, book: Book | None) -> tuple[Decimal | None, int, bool]:
    """(best other price, orders ahead, whether one ahead was placed or repriced after this order's
    last update)."""
    if book is None:
        return None, 0, False
    others = book.sides.get((order.location_id, order.type_id, order.is_buy), [])
    if not others:
        return None, 0, False
    if order.is_buy:
        best = max(c.price for c in others)
        ahead = [c for c in others if c.price > order.price]
    else:
        best = min(c.price for c in others)
        ahead = [c for c in others if c.price < order.price]
    return best, len(ahead), any(c.issued > order.issued for c in ahead)


async def list_my_orders(
    market: MarketContext,
    link_id: uuid.UUID | None = None,
    *,
    state: str = "open",
    limit: int = 500,
    user_id: uuid.UUID | None = None,
) -> list[MyOrderRead]:
    characters = await own_characters(market, link_id, user_id=user_id)
    by_character = {c.character_id: c for c in characters}
    if not by_character:
        return []
    query = select(MarketCharOrder).where(MarketCharOrder.character_id.in_(list(by_character)))
    query = (
        query.where(MarketCharOrder.state == "open")
        if state == "open"
        else query.where(MarketCharOrder.state != "open")
    )
    orders = list(await market.session.scalars(query.order_by(MarketCharOrder.issued.desc()).limit(limit)))
    if not orders:
        return []
    # Every character of the user is "me": their orders are not competition.
    mine = await own_characters(market, user_id=user_id)
    own_ids = set(
        await market.session.scalars(
            select(MarketCharOrder.order_id).where(
                MarketCharOrder.character_id.in_([c.character_id for c in mine]),
                MarketCharOrder.state == "open",
            )
        )
    )
    books = await current_books(market, [o for o in orders if o.state == "open"], own_ids)
    names = dict(
        (
            await market.session.execute(
                select(MarketType.id, MarketType.name).where(MarketType.id.in_({o.type_id for o in orders}))
            )
        ).all()
    )
    # Stations from the SDE, and those (structures too) resolved through ESI (ingest/locations.py).
    places = {
        station_id: (name, system_name)
        for station_id, name, system_name in (
            await market.session.execute(
                select(MarketStation.id, MarketStation.name, MarketSystem.name)
                .join(MarketSystem, MarketSystem.id == MarketStation.system_id, isouter=True)
                .where(MarketStation.id.in_({o.location_id for o in orders}))
            )
        ).all()
    }
    now = utcnow()
    warning = timedelta(hours=market.settings.expiry_warning_hours)
    found = []
    for order in orders:
        expires_at = order.issued + timedelta(days=order.duration)
        book = books.get(order.region_id) if order.state == "open" else None
        best, ahead, beaten = check_order(order, book)
        character = by_character[order.character_id]
        found.append(
            MyOrderRead(
                character=character.id,
                character_id=order.character_id,
                order_id=order.order_id,
                type_id=order.type_id,
                type_name=names.get(order.type_id),
                location_id=order.location_id,
                location_name=places.get(order.location_id, (None, None))[0],
                system_name=places.get(order.location_id, (None, None))[1],
                region_id=order.region_id,
                is_buy=order.is_buy,
                price=order.price,
                volume_total=order.volume_total,
                volume_remain=order.volume_remain,
                filled=round(1 - order.volume_remain / order.volume_total, 4) if order.volume_total else 0.0,
                issued=order.issued,
                expires_at=expires_at,
                expiring=order.state == "open" and expires_at - now <= warning,
                state=order.state,
                best_competitor=best,
                undercut=ahead > 0,
                beaten_since_update=beaten,
                competitors_ahead=ahead,
                book_captured_at=book.captured_at if book is not None else None,
            )
        )
    return found
