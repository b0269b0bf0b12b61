"""The offline API docs (Swagger UI from /static/vendor) and the vendor files they load."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import FileResponse, Response

import pentad
from pentad.core.errors import NotFound
from pentad.core.security import CONTENT_SECURITY_POLICY
from pentad.core.web.pages.kit import templates

router = APIRouter(include_in_schema=False)

VENDOR_DIR = Path(pentad.__file__).resolve().parents[2] / "web" / "node_modules"
"""web/node_modules of the source tree, installed by `make install` from web/package-lock.json."""

VENDOR_FILES = {
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "uplot/uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uplot/uPlot.min.css": "uplot/dist/uPlot.min.css",
}
"""The only files of web/node_modules served, as /static/vendor/<key>."""


@router.get("/api/docs")
async def api_docs(request: Request) -> Response:
    """Swagger UI from /static/vendor, started by an external script: works offline under the strict CSP."""
    app: FastAPI = request.app
    return templates.TemplateResponse(
        request,
        "api_docs.html",
        {"title": app.title, "openapi_url": app.openapi_url},
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/static/vendor/{name:path}")
async def vendor_file(name: str) -> Response:
    relative = VENDOR_FILES.get(name)
    path = VENDOR_DIR / relative if relative else None
    if path is None or not path.is_file():
        raise NotFound("No such file.")
    return FileResponse(path)
