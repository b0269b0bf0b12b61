"""Publishing from services: buffered until the transaction commits, dropped on rollback, in commit order.

    from pentad.core.realtime.publish import publish

    publish(session, f"chat.channel.{channel.id}", MessagePosted(...))

The payload is serialised at once (later changes to the model do not leak into the event). Just before
the session commits, its events take their places in their topics' queues (ordering.py), so each topic's
events are published in the order their transactions committed, and within one transaction in call
order; the session's after-commit hooks wait until they went out. The session knows its platform's hub
because `bind_sessions` put the hub into every session's `info` when the platform was built.

`publish_now(context, topic, payload)` is for data that touches no row (console output, live stats): no
session, no commit, sent at once; it takes the next place in the topic's queue, so it keeps the topic's
order with the transactional events already queued.

`recheck(session, principal_ids, topic)` is the other half of an access change: once the change commits,
every node re-asks the authorisation of those principals' subscriptions, so a removed member stops
receiving a channel at once rather than at the next revalidation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from pentad.core.context import AppContext
from pentad.core.db.engine import Database
from pentad.core.db.hooks import on_commit
from pentad.core.realtime.hub import EVERY_SUBSCRIBER, Hub
from pentad.core.realtime.ordering import Ticket
from pentad.core.realtime.topics import TopicSpec

HUB_KEY = "pentad.realtime.hub"
_PUBLISHES_KEY = "pentad.realtime.publishes"


def bind_sessions(database: Database, hub: Hub) -> None:
    """Every session the database hands out from now on can `publish` through `hub`."""
    info = dict(database.sessionmaker.kw.get("info") or {})
    database.sessionmaker.configure(info={**info, HUB_KEY: hub})
    for name, listener in _LISTENERS.items():
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def hub_of(session: AsyncSession) -> Hub:
    hub = session.info.get(HUB_KEY)
    if not isinstance(hub, Hub):
        raise RuntimeError("this session was not made by a platform's database, so it has no realtime hub")
    return hub


class _Publishes:
    """One transaction's events: waiting for the commit, then holding places in their topics' queues."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.waiting: list[tuple[str, TopicSpec, str]] = []
        self.tickets: list[Ticket] = []

    def reserve(self) -> None:
        sequencer = self.hub.sequencer
        self.tickets.extend(sequencer.reserve(*item) for item in self.waiting)
        self.waiting.clear()

    def fill(self) -> None:
        self.reserve()
        for ticket in self.tickets:
            ticket.fill()

    def cancel(self) -> None:
        self.waiting.clear()
        for ticket in self.tickets:
            ticket.cancel()

    async def published(self) -> None:
        """The after-commit hook: also covers a session that never reached the database (no commit)."""
        self.fill()
        for ticket in self.tickets:
            await ticket.done


def publish(session: AsyncSession, topic: str, payload: BaseModel) -> None:
    """Publish `payload` on `topic` once `session` commits. Raises UnknownTopic for an unregistered topic.

    If the broker is unavailable when the event's turn comes, the event is logged and lost; clients
    resuming across it get `recovered: false` only if the history was lost too, so keep REST the source of
    truth.
    """
    hub = hub_of(session)
    spec = hub.match(topic).spec
    publishes = session.info.get(_PUBLISHES_KEY)
    if not isinstance(publishes, _Publishes):
        publishes = session.info[_PUBLISHES_KEY] = _Publishes(hub)
        on_commit(session, publishes.published)
    publishes.waiting.append((topic, spec, payload.model_dump_json()))


async def publish_now(context: AppContext, topic: str, payload: BaseModel) -> None:
    """Publish `payload` on `topic` now, without a transaction (UnknownTopic for an unregistered topic);
    returns once it was handed to the broker (or logged and lost, as `publish` when the broker is down)."""
    hub = _hub_of_database(context.database)
    spec = hub.match(topic).spec
    ticket = hub.sequencer.reserve(topic, spec, payload.model_dump_json())
    ticket.fill()
    await ticket.done


def _hub_of_database(database: Database) -> Hub:
    hub = (database.sessionmaker.kw.get("info") or {}).get(HUB_KEY)
    if not isinstance(hub, Hub):
        raise RuntimeError("this database was not bound to a platform's hub, so it cannot publish")
    return hub


def recheck(
    session: AsyncSession, principal_ids: Iterable[uuid.UUID | str | None], topic: str | None = None
) -> None:
    """Once `session` commits, end what these principals may no longer read, on every node at once.

    With `topic`: their subscriptions to it are authorised again (those refused get `unsubscribed`).
    Without: their connections are revalidated whole (credentials and every subscription), e.g. after a
    grant or a role was taken away. None entries are ignored (e.g. a chat user without a linked account).
    """
    hub = hub_of(session)
    ids = sorted({str(principal_id) for principal_id in principal_ids if principal_id is not None})
    if not ids:
        return

    async def send() -> None:
        await hub.recheck(ids, topic)

    on_commit(session, send)


def recheck_topic(session: AsyncSession, topic: str) -> None:
    """Once `session` commits, authorise every subscription to `topic` again, on every node, whoever holds
    it: for a resource that stopped being readable by some who could not be listed (a public camera made
    private: anyone may have watched). Those refused get `unsubscribed`; costs one check per subscriber."""
    hub = hub_of(session)

    async def send() -> None:
        await hub.recheck([EVERY_SUBSCRIBER], topic)

    on_commit(session, send)


# Session events. They fire for savepoints too; only the outermost transaction's commit counts.


def _before_commit(session: Session) -> None:
    publishes = session.info.get(_PUBLISHES_KEY)
    if isinstance(publishes, _Publishes) and not session.in_nested_transaction():
        publishes.reserve()


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    publishes = session.info.pop(_PUBLISHES_KEY, None)
    if isinstance(publishes, _Publishes):
        publishes.fill()


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    publishes = session.info.pop(_PUBLISHES_KEY, None)
    if isinstance(publishes, _Publishes):
        publishes.cancel()


_LISTENERS: dict[str, Callable[..., None]] = {
    "before_commit": _before_commit,
    "after_commit": _after_commit,
    "after_transaction_end": _after_transaction_end,
}
