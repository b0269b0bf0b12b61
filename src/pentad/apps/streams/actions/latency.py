"""The continuous latency probe's side of the platform (the `streams.latency_probe` service, services.py):
the probe camera's own stream key, and the figures it measures (Prometheus, the camera's hub topic).

The key is named PROBE_KEY_NAME; the probe revokes the ones it left before making a new one, and revokes
its key when it stops. It is never logged or published."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from pentad.apps.streams import metrics, repository
from pentad.apps.streams.actions.keys import hash_key, new_key
from pentad.apps.streams.events import CameraLatency, LatencyFigures, camera_topic
from pentad.apps.streams.media.latency_probe import percentile
from pentad.apps.streams.models import StreamsKey
from pentad.apps.streams.permissions import CAMERA_RESOURCE
from pentad.core import audit
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow, uuid7
from pentad.core.realtime.publish import publish_now

PROBE_KEY_NAME = "latency probe"


class ProbeCameraUnusable(RuntimeError):
    """LATENCY_PROBE__CAMERA is not a public or unlisted RTMP camera."""


async def revoke_probe_keys(platform: AppContext, camera_id: uuid.UUID) -> None:
    async with platform.database.transaction() as session:
        for key in await repository.list_keys(session, camera_id):
            if key.name == PROBE_KEY_NAME and key.revoked_at is None:
                key.revoked_at = utcnow()
                audit.record(
                    session,
                    audit.SYSTEM,
                    "streams.key.revoke",
                    resource_type=CAMERA_RESOURCE,
                    resource_id=str(camera_id),
                    key_id=str(key.id),
                    hint=key.hint,
                )


async def probe_key(platform: AppContext, camera_id: uuid.UUID) -> str:
    """A new stream key of the probe camera (the probe's earlier ones revoked)."""
    await revoke_probe_keys(platform, camera_id)
    async with platform.database.transaction() as session:
        camera = await repository.get_camera(session, camera_id)
        if camera is None or camera.source != "rtmp" or camera.visibility == "private":
            raise ProbeCameraUnusable(
                f"latency probe camera {camera_id}: not a public or unlisted RTMP camera"
            )
        raw = new_key()
        key = StreamsKey(
            id=uuid7(),
            camera_id=camera.id,
            name=PROBE_KEY_NAME,
            secret_hash=hash_key(raw),
            hint=raw[-4:],
            created_by=None,
            created_at=utcnow(),
        )
        session.add(key)
        await session.flush()
        audit.record(
            session,
            audit.SYSTEM,
            "streams.key.create",
            resource_type=CAMERA_RESOURCE,
            resource_id=str(camera.id),
            key_id=str(key.id),
            hint=key.hint,
        )
    return raw


async def report_latency(
    platform: AppContext, camera_id: uuid.UUID, samples: Mapping[str, Sequence[float]]
) -> CameraLatency | None:
    """One interval's samples (ms, by protocol): into the histogram, the p95 gauge and a `camera.latency`
    event on the camera's topic. Nothing for an interval without samples."""
    figures = {}
    for protocol, values in samples.items():
        if not values:
            continue
        histogram = metrics.glass_to_glass(platform).labels(protocol)
        for value in values:
            histogram.observe(value / 1000)
        p95 = percentile(list(values), 95)
        metrics.glass_to_glass_p95(platform).labels(protocol).set(p95 / 1000)
        figures[protocol] = LatencyFigures(
            samples=len(values),
            p50_ms=round(percentile(list(values), 50), 1),
            p95_ms=round(p95, 1),
            max_ms=round(max(values), 1),
        )
    if not figures:
        return None
    event = CameraLatency(camera_id=camera_id, protocols=figures)
    await publish_now(platform, camera_topic(camera_id), event)
    return event
