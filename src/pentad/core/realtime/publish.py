"""Publishing from services: buffered until the transaction commits, dropped on rollback.

    from pentad.core.realtime.publish import publish

    publish(session, f"chat.channel.{channel.id}", MessagePosted(...))

The payload is serialised at once (later changes to the model do not leak into the event) and published
after the commit, in call order. The session knows its platform's hub because `bind_sessions` put the hub
into every session's `info` when the platform was built.
"""

from __future__ import annotations

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.db.engine import Database
from pentad.core.db.hooks import on_commit
from pentad.core.realtime.brokers import BrokerUnavailable
from pentad.core.realtime.hub import Hub

HUB_KEY = "pentad.realtime.hub"

logger = structlog.get_logger("pentad.realtime")


def bind_sessions(database: Database, hub: Hub) -> None:
    """Every session the database hands out from now on can `publish` through `hub`."""
    info = dict(database.sessionmaker.kw.get("info") or {})
    database.sessionmaker.configure(info={**info, HUB_KEY: hub})


def hub_of(session: AsyncSession) -> Hub:
    hub = session.info.get(HUB_KEY)
    if not isinstance(hub, Hub):
        raise RuntimeError("this session was not made by a platform's database, so it has no realtime hub")
    return hub


def publish(session: AsyncSession, topic: str, payload: BaseModel) -> None:
    """Publish `payload` on `topic` once `session` commits. Raises UnknownTopic for an unregistered topic.

    If the broker is unavailable when the hook runs, the event is logged and lost; clients resuming
    across it get `recovered: false` only if the history was lost too, so keep REST the source of truth.
    """
    hub = hub_of(session)
    spec = hub.match(topic).spec
    data_json = payload.model_dump_json()

    async def send() -> None:
        try:
            await hub.publish_json(topic, spec, data_json)
        except BrokerUnavailable as exc:
            logger.warning("realtime_publish_failed", topic=topic, error=str(exc))

    on_commit(session, send)
