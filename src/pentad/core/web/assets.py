"""Static files with hashed URLs: `static_url(app, path)` names a file by its content, so a browser may keep
it for a year and still gets a new copy the moment the file changes.

    static_url(None, "css/pentad.css")        -> /static/css/pentad.css?v=1a2b3c4d      (the core's)
    static_url("analytics", "js/charts.js")   -> /static/analytics/js/charts.js?v=5e6f7a8b (an app's)

`v` is the first 8 hex digits of the file's SHA-256, computed once per file version (the file's size and
modification time key the cache, so an edited file gets a new `v` without a restart). HashedStaticFiles
serves the mounts under /static: a request whose `v` matches the file's current digest is answered with
`Cache-Control: public, max-age=31536000, immutable`; one with another `v` (a page rendered before a
deploy) gets the current file with `no-cache`, so the stale URL is never kept; no `v` leaves Starlette's
defaults (ETag, Last-Modified). The page kit (core/web/pages/kit.py) gives every page `static_url`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

IMMUTABLE: Final = "public, max-age=31536000, immutable"
CORE_STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

_directories: dict[str | None, Path] = {None: CORE_STATIC_DIR}
_digests: dict[str, tuple[int, int, str]] = {}


def register_static(app: str, directory: Path) -> None:
    """Note where an app's static files live (install_pages does, for each app with a static_dir)."""
    _directories[app] = Path(directory).resolve()


def file_digest(path: str) -> str | None:
    """The first 8 hex digits of a file's SHA-256; None when there is no such file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    cached = _digests.get(path)
    if cached is not None and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
        return cached[2]
    with open(path, "rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()[:8]
    _digests[path] = (stat.st_mtime_ns, stat.st_size, digest)
    return digest


def static_url(app: str | None, path: str) -> str:
    """The URL of `path` in the core's static files (app None) or an app's, with its content's `v`."""
    prefix = "/static/" if app is None else f"/static/{app}/"
    path = path.lstrip("/")
    directory = _directories.get(app)
    if directory is None:
        raise LookupError(f"no static files are registered for the app {app!r}")
    full = (directory / path).resolve()
    if not full.is_relative_to(directory):
        raise ValueError(f"{path!r} is outside the static files of {app or 'the core'}")
    digest = file_digest(str(full))
    return f"{prefix}{path}" if digest is None else f"{prefix}{path}?v={digest}"


class HashedStaticFiles(StaticFiles):
    """StaticFiles that let a browser keep a file forever when it is asked for by its current digest."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code not in (200, 304):
            return response
        versions = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v")
        if not versions:
            return response
        full_path, _ = await anyio.to_thread.run_sync(self.lookup_path, path)
        current = await anyio.to_thread.run_sync(file_digest, full_path) if full_path else None
        response.headers["Cache-Control"] = IMMUTABLE if versions[-1] == current else "no-cache"
        return response
