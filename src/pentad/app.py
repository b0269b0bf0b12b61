"""create_app(settings): the core's middleware and routers, the enabled apps, the API docs."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

import pentad
from pentad.apps import INSTALLED, enabled_apps
from pentad.core.apps import AppSpec
from pentad.core.auth.endpoints import routers as auth_routers
from pentad.core.config import Settings, load_settings
from pentad.core.db.engine import Database
from pentad.core.errors import install_error_handlers
from pentad.core.jobs.endpoints import router as jobs_router
from pentad.core.jobs.pages import router as jobs_pages
from pentad.core.logging import configure_logging
from pentad.core.platform import Platform
from pentad.core.policy import UNLIMITED, RoutePolicy, install_route_policies
from pentad.core.realtime.endpoint import RealtimeEndpoint
from pentad.core.services import die_with_supervisor
from pentad.core.storage.endpoints import router as files_router
from pentad.core.web.health import router as health_router
from pentad.core.web.middleware import install_middleware
from pentad.core.web.pages.site import install_pages
from pentad.core.web.routing import install_route_index

STATIC_FILES = RoutePolicy(public="static files: style sheets, scripts, images", rate_limit=UNLIMITED)

API_DESCRIPTION = """
Pentad's REST API. Authenticate with `Authorization: Bearer <token>`, where the token is an access
token from `POST /api/auth/login`, an API key (`pak_…`) or a service token (`pst_…`).
Every error is an RFC 9457 `application/problem+json` document with a stable `code`.
No string may contain the NUL character (U+0000): a JSON or form body, query parameter or path holding one
is refused with 422 `validation_failed` (before authentication), each place named in `errors` with the type
`nul_character`; nothing is stored.
"""


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    apps: Sequence[AppSpec] | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log)
    specs = list(apps) if apps is not None else enabled_apps(settings)
    platform = Platform.build(settings, specs, installed=INSTALLED, database=database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await platform.open_resources()
        if settings.jobs.in_process_worker:
            platform.jobs.start_worker(platform)
        await platform.hub.start()
        await platform.principals.start()
        die_with_supervisor()
        # `worker` services go where the job worker goes: here too in the embedded default.
        await platform.services.start(("serve", "worker") if settings.jobs.in_process_worker else ("serve",))
        await platform.ingest.start()
        # Everything built so far lives as long as the process: keeping it out of the collector's
        # generations shortens the pauses that otherwise show up as realtime latency spikes.
        gc.collect()
        gc.freeze()
        yield
        await platform.services.stop()
        await platform.hub.stop()
        await platform.close()

    app = FastAPI(
        title="Pentad",
        version=pentad.__version__,
        description=API_DESCRIPTION,
        # FastAPI's own Swagger UI loads from a CDN with an inline script; core/web/pages/docs.py serves
        # /api/docs.
        docs_url=None,
        swagger_ui_oauth2_redirect_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        # Pentad configures no OpenTelemetry provider: with FastAPI's native telemetry on, every request
        # asks OpenTelemetry for its three global providers (environment reads, ~3 µs) to find that out.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(files_router)
    for router in auth_routers:
        app.include_router(router)
    app.include_router(jobs_router)
    for spec in specs:
        for router in spec.api_routers():
            app.include_router(router)
    app.include_router(jobs_pages)
    # A bare ASGI app (Starlette routes it as one); the annotation only knows WebSocket handlers.
    app.router.add_websocket_route("/ws", RealtimeEndpoint(platform))  # type: ignore[arg-type]
    install_pages(app, platform)
    policies = install_route_policies(
        app,
        settings,
        app_defaults={
            context.endpoint: spec.route_policy
            for spec in specs
            if spec.route_policy is not None
            for router in (*spec.api_routers(), *spec.page_routers())
            for context in iter_route_contexts(router.routes)
            if context.endpoint is not None
        },
        prefix_policies={"/static/": STATIC_FILES},
    )
    app.state.route_policies = policies
    install_middleware(app, platform, policies)
    install_route_index(app)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and `pentad serve`."""
    return create_app()
