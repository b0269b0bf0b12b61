"""The baseline: one Starlette route returning a small JSON document, nothing else.

Served by uvicorn with the options `pentad serve` uses, so the gap between this and Pentad's
`GET /api/me` is the cost of Pentad's middleware, authentication and database work.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ME = {
    "id": "0190f3b4-6c3e-7d4a-9b1e-2f6a8c0d1e2f",
    "email": "bench@example.com",
    "display_name": "bench",
    "roles": ["member"],
}


async def me(_request: Request) -> JSONResponse:
    return JSONResponse(ME)


app = Starlette(routes=[Route("/api/me", me)])
