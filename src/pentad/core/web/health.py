"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

import redis.asyncio
import structlog
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from pentad.core.auth.dependencies import require
from pentad.core.auth.permissions import METRICS_READ
from pentad.core.errors import problem_response, problem_responses
from pentad.core.health import HealthContext
from pentad.core.platform import get_platform
from pentad.core.policy import UNLIMITED, route_policy
from pentad.core.services import ServiceHealth, Services

READINESS_TIMEOUT_SECONDS = 2.0

CheckStatus = Literal["ok", "failed"]

logger = structlog.get_logger("pentad.health")
router = APIRouter(tags=["operations"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, CheckStatus] = Field(
        description="Each dependency checked (`database`; `redis` and `realtime` (the hub's broker) when "
        "configured; `services` when this process runs or stands by for app services: failed while a "
        "critical one is not running; each enabled app's own checks as `<app>.<check>`) and its state."
    )
    services: dict[str, ServiceHealth] | None = Field(
        None,
        description="The app services of this node's placement (`running`, `restarting`, `crash_loop`, "
        "`standby`, `stopped`), whether each is critical, and how often it was restarted.",
    )


@router.get("/healthz", summary="Liveness: the process answers")
@route_policy(public="liveness probe", rate_limit=UNLIMITED)
async def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: the database (and Redis, when configured) answer, critical app services run",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses=problem_responses(503),
)
@route_policy(public="readiness probe", rate_limit=UNLIMITED)
async def readyz(request: Request) -> Response | Readiness:
    platform = get_platform(request)
    probes: dict[str, Awaitable[None]] = {"database": platform.database.ping()}
    if platform.settings.redis.url:
        probes["redis"] = _ping_redis(platform.settings.redis.url)
    if platform.settings.realtime.broker_url:
        probes["realtime"] = platform.hub.check_broker()
    context = HealthContext(platform.settings, platform.database)
    for spec in platform.apps:
        for check in spec.health_checks:
            probes[f"{spec.name}.{check.name}"] = check.probe(context)
    results = await asyncio.gather(*(_check(name, probe) for name, probe in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    services = platform.services.health() or None
    if services is not None:
        checks["services"] = "ok" if Services.ready(services) else "failed"
    failed = [name for name, status in checks.items() if status != "ok"]
    if not failed:
        return Readiness(checks=checks, services=services)
    extra: dict[str, Any] = {"services": {n: h.model_dump() for n, h in services.items()}} if services else {}
    return problem_response(
        503,
        "not_ready",
        "A dependency of the platform is unavailable: " + ", ".join(failed),
        request_id=getattr(request.state, "request_id", None),
        checks=checks,
        **extra,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(require(METRICS_READ))],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 429),
    },
)
async def metrics(request: Request) -> Response:
    return Response(get_platform(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _check(name: str, probe: Awaitable[None]) -> CheckStatus:
    # Readiness is public: the reason for a failure goes to the log, not to the caller.
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await probe
    except Exception as exc:
        logger.warning("readiness_check_failed", check=name, error=repr(exc))
        return "failed"
    return "ok"


async def _ping_redis(url: str) -> None:
    timeout = READINESS_TIMEOUT_SECONDS
    async with redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout
    ) as client:
        await client.ping()
