"""The core's pages put together with the apps' pages and static files, and the page errors' handlers."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from pentad.core.platform import Platform
from pentad.core.web.assets import HashedStaticFiles, register_static
from pentad.core.web.pages import account, admin, docs, signin
from pentad.core.web.pages.kit import WEB_DIR, add_page_error_handlers

STATIC_DIR = WEB_DIR / "static"

PUBLIC_PAGES = frozenset(
    {
        "/login",
        "/login/2fa",
        "/forgot-password",
        "/reset-password",
        "/api/docs",
        "/static",
        "/static/vendor/{name:path}",
    }
)
"""Page paths that work without a session; every other page redirects anonymous visitors to /login.
Apps' static files are mounted under /static/<app name> and are public too."""

ROUTERS: tuple[APIRouter, ...] = (signin.router, account.router, admin.router, docs.router)
"""The core's pages, each module's router (all left out of the OpenAPI document)."""


def install_pages(app: FastAPI, platform: Platform) -> None:
    """Mount the core's pages and static files, and each enabled app's pages."""
    add_page_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    for spec in platform.apps:
        for pages in spec.page_routers():
            app.include_router(pages)
        if spec.static_dir is not None:
            register_static(spec.name, spec.static_dir)
            app.mount(
                f"/static/{spec.name}",
                HashedStaticFiles(directory=spec.static_dir),
                name=f"static-{spec.name}",
            )
    app.mount("/static", HashedStaticFiles(directory=STATIC_DIR), name="static")
