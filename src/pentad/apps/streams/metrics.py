"""The streams app's Prometheus series (core app metrics: `pentad_streams_<name>` on /metrics).

Per live stream, labelled `camera` (the camera's id, never a key; a stream's series go when it ends):
`bitrate_bits_per_second`, `frame_rate`, `keyframe_interval_seconds`, `dropped_frames_total`,
`viewers{camera, protocol}` (protocol `hls` or `webrtc`). Per engine: `live` (streams live on this node).
Per reason: `publish_refusals_total` (`unknown_or_revoked_key`, `capacity`, `disk_full`, …).
They are written by the media plane's process (the `streams.ingest` service) every HEALTH_INTERVAL.
Glass-to-glass, by protocol (`webrtc`, `hls`), from the `streams.latency_probe` service:
`glass_to_glass_seconds` (a histogram of every sample) and `glass_to_glass_p95_seconds` (the last
interval's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pentad.apps.streams.settings import APP_NAME
from pentad.core.context import AppContext

PER_CAMERA = ("camera",)


def refusals(platform: AppContext) -> Counter:
    return platform.metrics.for_app(APP_NAME).counter(
        "publish_refusals", "Publishers and camera pulls refused, by reason.", ["reason"]
    )


def live(platform: AppContext) -> Gauge:
    return platform.metrics.for_app(APP_NAME).gauge(
        "live", "Streams live on this node, by ingest engine.", ["engine"]
    )


def bitrate(platform: AppContext) -> Gauge:
    return platform.metrics.for_app(APP_NAME).gauge(
        "bitrate_bits_per_second", "A live stream's bitrate over the last 5 s.", PER_CAMERA
    )


def frame_rate(platform: AppContext) -> Gauge:
    return platform.metrics.for_app(APP_NAME).gauge(
        "frame_rate", "A live stream's video frames per second over the last 5 s.", PER_CAMERA
    )


def keyframe_interval(platform: AppContext) -> Gauge:
    return platform.metrics.for_app(APP_NAME).gauge(
        "keyframe_interval_seconds", "Media time between a live stream's last two keyframes.", PER_CAMERA
    )


def dropped_frames(platform: AppContext) -> Counter:
    return platform.metrics.for_app(APP_NAME).counter(
        "dropped_frames", "Video frames missing at the source (gaps in the timestamps).", PER_CAMERA
    )


def viewers(platform: AppContext) -> Gauge:
    return platform.metrics.for_app(APP_NAME).gauge(
        "viewers", "Viewers of a live stream, by protocol (hls, webrtc).", ["camera", "protocol"]
    )


LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0)


def glass_to_glass(platform: AppContext) -> Histogram:
    return platform.metrics.for_app(APP_NAME).histogram(
        "glass_to_glass_seconds",
        "Glass-to-glass latency of the probe's stamped stream, by protocol (webrtc, hls).",
        ["protocol"],
        buckets=LATENCY_BUCKETS,
    )


def glass_to_glass_p95(platform: AppContext) -> Gauge:
    return platform.metrics.for_app(APP_NAME).gauge(
        "glass_to_glass_p95_seconds",
        "The probe's 95th percentile glass-to-glass latency over its last interval, by protocol.",
        ["protocol"],
        multiprocess_mode="livemostrecent",
    )


def per_camera(platform: AppContext) -> tuple[Gauge | Counter, ...]:
    """The series labelled by camera alone."""
    return (bitrate(platform), frame_rate(platform), keyframe_interval(platform), dropped_frames(platform))
