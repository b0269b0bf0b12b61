"""The `pentad` command with the realtime benchmark's app (`rtbench`) installed.

    python bench/realtime_fanout_app.py serve --host 127.0.0.1 --port 8000   # with PENTAD_APPS=rtbench
    python bench/realtime_fanout_app.py apikey create --email ... --name ...

The app is what a real one would contribute, and nothing more:

* the topic family `bench.fanout.{stream}`: subscribing needs the permission `rtbench.read`, which every
  member holds (the check runs once per subscription, as an app's authorize callback does);
* `POST /api/rtbench/streams/{stream}/events` (permission `rtbench.publish`): the server-side publishing path
  of an app route, `pentad.core.realtime.publish.publish(session, topic, payload)`, i.e. the event is queued
  on the request's transaction and handed to the hub once it commits, before the response starts.

bench/realtime_fanout.py drives it; it is a `*_app.py` module, so bench/run does not run it as a benchmark.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import db_session, require
from pentad.core.auth.permissions import MEMBER, Permission
from pentad.core.auth.principal import Principal
from pentad.core.realtime.publish import publish
from pentad.core.realtime.topics import TopicAccess, TopicSpec

APP_NAME = "rtbench"
TOPIC_PREFIX = "bench.fanout."

READ = Permission("rtbench.read", "Follow the benchmark's event streams.")
PUBLISH = Permission("rtbench.publish", "Publish on the benchmark's event streams.")


async def may_read(access: TopicAccess) -> bool:
    return access.principal.has(READ)


class BenchEvent(BaseModel):
    """What the load generator publishes: a sequence number, its send time (time.monotonic(), seconds;
    the subscribers run on the same host, so they read the same clock) and some text to give the event a
    realistic size."""

    n: int = Field(ge=0)
    t: float
    text: str = Field("", max_length=4096)


class Published(BaseModel):
    topic: str


router = APIRouter(prefix=f"/api/{APP_NAME}", tags=[APP_NAME])


@router.post("/streams/{stream}/events", response_model=Published, summary="Publish a benchmark event")
async def publish_event(
    stream: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    event: BenchEvent,
    session: Annotated[AsyncSession, Depends(db_session)],
    principal: Annotated[Principal, Depends(require(PUBLISH))],
) -> Published:
    topic = TOPIC_PREFIX + stream
    publish(session, topic, event)
    return Published(topic=topic)


# A small replay buffer, as a chat channel would keep; no presence (it is not what is measured).
FANOUT_TOPIC = TopicSpec(TOPIC_PREFIX + "{stream}", may_read, history_size=100, requires=READ)

APP = AppSpec(
    name=APP_NAME,
    title="Realtime benchmark",
    routers=[router],
    permissions=[READ, PUBLISH],
    role_permissions={MEMBER: [READ, PUBLISH]},
    topics=[FANOUT_TOPIC],
)


if __name__ == "__main__":
    import sys

    from pentad import apps
    from pentad.cli import main

    # This file's folder is on sys.path (it is run as a script), so the app imports as `realtime_fanout_app`.
    apps.INSTALLED[APP_NAME] = apps.InstalledApp("realtime_fanout_app:APP")
    main(sys.argv[1:], prog_name="pentad")
