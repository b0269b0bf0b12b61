"""The streams app's AppSpec: what it hands the core (pentad.apps.INSTALLED names this module).

Session 1 part B: the control plane (cameras, keys, roles, playback tokens, topics, domain events). The
media plane (services, media routes, jobs, pages) adds its entries to these lists."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from pentad.apps.streams import (
    permissions,
    services,
    tasks,
    topics,
)
from pentad.apps.streams.events import DOMAIN_EVENTS
from pentad.apps.streams.playback import PLAYBACK_SCHEME
from pentad.apps.streams.settings import APP_NAME, StreamsSettings
from pentad.core.apps import AppSpec

PACKAGE = Path(__file__).parent


def routers() -> list[APIRouter]:
    """The REST and media routers, imported when a web app is built (not by `pentad worker` or the CLI)."""
    from pentad.apps.streams import (
        endpoints,
        health_endpoints,
        images_endpoints,
        media_endpoints,
        recordings_endpoints,
        webrtc_endpoints,
    )

    return [
        endpoints.router,
        health_endpoints.router,
        images_endpoints.router,
        media_endpoints.router,
        recordings_endpoints.router,
        recordings_endpoints.media_router,
        webrtc_endpoints.router,
    ]


def pages() -> list[APIRouter]:
    """The pages, imported when a web app is built."""
    from pentad.apps.streams import pages

    return [pages.router]


APP = AppSpec(
    name=APP_NAME,
    title="Streams",
    description="Camera streaming: RTMP/RTSP in, HLS and WebRTC out, recording.",
    routers=routers,
    pages=pages,
    migrations=PACKAGE / "migrations" / "versions",
    permissions=permissions.ALL,
    role_permissions={"member": [permissions.STREAMS_USE, permissions.STREAMS_WATCH]},
    resource_roles={permissions.CAMERA_RESOURCE: permissions.CAMERA_ROLES},
    credential_schemes=[PLAYBACK_SCHEME],
    topics=topics.TOPICS,
    events=DOMAIN_EVENTS,
    settings=StreamsSettings,
    static_dir=PACKAGE / "static",
    services=services.SERVICES,
    home_path="/streams",
    jobs=tasks.JOBS,
    cron=tasks.CRON,
)
