"""The plain-FastAPI baseline: FastAPI with as many routers as Pentad includes and a GET /api/me with a
response model, and nothing else (no middleware, no authentication, no database).

The gap between this and Pentad's `GET /api/me` is what Pentad adds on top of the framework it is built on;
the gap between this and bench/bare_app.py is what FastAPI costs. Used by http_auth.py (served by uvicorn)
and stack_cost.py (called in-process).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

ROUTERS = 11
"""About as many routers as Pentad includes: FastAPI walks the included routers on every request."""


class Who(BaseModel):
    id: str
    email: str
    display_name: str
    roles: list[str]


ME = Who(
    id="0190f3b4-6c3e-7d4a-9b1e-2f6a8c0d1e2f",
    email="bench@example.com",
    display_name="bench",
    roles=["member"],
)


def build(routers: int = ROUTERS) -> FastAPI:
    app = FastAPI()
    for index in range(routers - 1):
        router = APIRouter(prefix=f"/api/r{index}")

        @router.get("/x")
        async def other() -> dict[str, str]:
            return {}

        app.include_router(router)
    me = APIRouter(prefix="/api/me")

    @me.get("", response_model=Who)
    async def read_me() -> Who:
        return ME

    app.include_router(me)
    return app


app = build()
