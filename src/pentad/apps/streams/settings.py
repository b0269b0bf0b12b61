"""The streams app's settings: PENTAD_STREAMS__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(StreamsSettings)`. Every setting of the plan (docs/plans/streams.md §3) is here from
the first session, so the media plane's parts only read them."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pentad.core.config import CommaList

APP_NAME = "streams"


def _check_networks(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)
    return values


def _check_ladder(value: str) -> str:
    rungs = [part.strip() for part in value.split(",") if part.strip()]
    if not rungs:
        raise ValueError("name at least one rung, e.g. 720:2800")
    for rung in rungs:
        height, sep, kbps = rung.partition(":")
        if not sep or not height.isdigit() or not kbps.isdigit() or not 0 < int(height) <= 4320:
            raise ValueError(f"{rung!r}: write rungs as height:kbit/s, e.g. 720:2800,480:1200")
    return ",".join(rungs)


class RtspSettings(BaseModel):
    """Pulling from IP cameras over RTSP."""

    connect_timeout: float = Field(5.0, gt=0, le=120, description="TCP connect timeout to a camera, seconds.")
    read_timeout: float = Field(
        10.0, gt=0, le=300, description="Silence after which a pull reconnects, seconds."
    )
    backoff_base: float = Field(
        1.0, gt=0, le=60, description="First reconnect delay, seconds; doubles per try."
    )
    backoff_max: float = Field(60.0, gt=0, le=3600, description="Longest reconnect delay, seconds.")
    allow_private: bool = Field(
        True, description="Admins (`streams.admin`) may add cameras on private addresses; owners never may."
    )


class RecordingSettings(BaseModel):
    """Recording (under MEDIA_DIR/recordings) and its retention."""

    segment_seconds: int = Field(
        10, ge=1, le=600, description="Unused: recorded segments are the live HLS segments (docs/streams.md)."
    )
    retention_days: int = Field(
        7, ge=0, le=36_500, description="Default age limit of recordings, days (0: none)."
    )
    retention_bytes: int = Field(
        0, ge=0, description="Default size limit of one camera's recordings (0: none)."
    )
    min_free_bytes: int = Field(
        1_073_741_824, ge=0, description="Free disk below which recordings stop (`disk_full`), bytes."
    )


class ExportSettings(BaseModel):
    """MP4 exports of recorded ranges."""

    max_seconds: int = Field(
        3600, ge=1, le=86_400, description="Longest range one export may cover, seconds."
    )
    ttl: int = Field(86_400, ge=60, description="How long an export file is kept, seconds.")


class WebRtcSettings(BaseModel):
    """WHEP playback and WHIP ingest."""

    host_addresses: CommaList = Field(
        default_factory=list,
        description="Addresses offered as ICE host candidates (empty: every interface but loopback).",
    )
    allowed_peer_networks: CommaList = Field(
        default_factory=list, description="CIDRs remote candidates must be in (empty: any)."
    )
    stun_urls: CommaList = Field(default_factory=list, description="STUN servers (empty: none are asked).")
    max_viewers: int = Field(200, ge=0, description="Most WebRTC viewers on one node.")
    opus_bitrate: int = Field(96_000, ge=6_000, le=510_000, description="Bit rate of the Opus audio, bit/s.")
    aac_bitrate: int = Field(
        128_000,
        ge=16_000,
        le=512_000,
        description="Bit rate of the AAC made of a WHIP publisher's Opus, bit/s.",
    )

    @field_validator("allowed_peer_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _check_networks(value)


class NginxSettings(BaseModel):
    """The nginx-rtmp ingest engine (`ENGINE=nginx`)."""

    manage: bool = Field(True, description="Pentad starts and supervises nginx itself.")
    binary: str = Field("/usr/sbin/nginx", description="The nginx binary.")
    module: str = Field(
        "/usr/lib/nginx/modules/ngx_rtmp_module.so", description="nginx-rtmp's module file (load_module)."
    )
    hls: bool = Field(
        False,
        description="Unused: nginx never writes HLS (its files would carry the stream key, nginx-rtmp"
        " #777); Pentad's packager does.",
    )
    callback_networks: CommaList = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="CIDRs whose nginx may call the on_publish / on_publish_done / on_update routes.",
    )
    update_interval: int = Field(5, ge=1, le=300, description="nginx's on_update interval, seconds.")
    application: str = Field(
        "live", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="nginx-rtmp application publishers use."
    )
    callback_host: str = Field(
        "127.0.0.1",
        description="Address Pentad answers nginx's callbacks on (loopback unless nginx is remote).",
    )
    callback_port: int = Field(
        0,
        ge=0,
        le=65_535,
        description="Port of the callbacks; 0: any free port (only with `MANAGE`: Pentad writes the"
        " config at start).",
    )
    prefix: str | None = Field(
        None, description="nginx's prefix (config, pid, logs). Unset: `<MEDIA_DIR>/nginx`."
    )

    @field_validator("callback_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _check_networks(value)


class LatencyProbeSettings(BaseModel):
    """The continuous glass-to-glass latency probe (the `streams.latency_probe` service)."""

    enabled: bool = Field(False, description="Run the probe (a stamped test stream, measured end to end).")
    camera: uuid.UUID | None = Field(
        None,
        description="The probe's camera (public or unlisted, RTMP, nobody else publishing to it); required"
        " when ENABLED. The probe gives it a stream key of its own while it runs.",
    )
    protocols: CommaList = Field(
        default_factory=lambda: ["webrtc", "hls"], description="Protocols the probe watches."
    )
    interval: float = Field(1.0, gt=0, le=60, description="Seconds between latency samples.")

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - {"webrtc", "hls"})
        if unknown:
            raise ValueError(f"unknown protocol {unknown[0]!r} (webrtc, hls)")
        return value

    @model_validator(mode="after")
    def _camera(self) -> LatencyProbeSettings:
        if self.enabled and self.camera is None:
            raise ValueError("LATENCY_PROBE__CAMERA is required when the probe is enabled")
        if not self.protocols:
            raise ValueError("LATENCY_PROBE__PROTOCOLS needs webrtc, hls or both")
        return self


class StreamsSettings(BaseModel):
    """The streams app (apps/streams): ingest, HLS, WebRTC, recording, playback tokens."""

    media_plane: bool = Field(
        True,
        description="Run the media plane (`streams.ingest`: RTMP ingest, RTSP pulls, HLS, WebRTC) in this"
        " node's `pentad serve`. False on web nodes of a deployment with a streams node (docs/deploy.md).",
    )
    engine: Literal["builtin", "nginx"] = Field(
        "builtin", description="Ingest engine: the built-in RTMP server or nginx-rtmp."
    )
    rtmp_host: str = Field("127.0.0.1", description="Address the RTMP ingest listens on.")
    rtmp_port: int = Field(1935, ge=1, le=65_535, description="TCP port the RTMP ingest listens on.")
    public_rtmp_url: str | None = Field(
        None,
        description="RTMP URL shown to owners with their key. Unset: `rtmp://<base host>:<port>/live`.",
    )
    media_dir: str | None = Field(
        None, description="Live HLS, temporary files, nginx prefix. Unset: `<data dir>/streams`."
    )
    public_media_url: str | None = Field(
        None, description="Where players of this node's live media are sent. Unset: the base URL."
    )
    ffmpeg: str = Field("ffmpeg", description="The ffmpeg binary.")
    ffprobe: str = Field("ffprobe", description="The ffprobe binary.")
    hls_segment_seconds: float = Field(
        1.0, ge=0.2, le=10, description="Target HLS segment length, seconds (really: at least one GOP)."
    )
    hls_list_size: int = Field(6, ge=2, le=60, description="Segments in a live playlist.")
    hls_parts: bool = Field(False, description="Low-latency HLS partial segments.")
    ladder: str = Field(
        "720:2800,480:1200,360:700", description="Rungs (height:kbit/s) of the adaptive-bitrate profile."
    )
    max_streams: int = Field(64, ge=1, description="Live streams one node takes (more are refused).")
    max_bitrate_kbps: int = Field(
        20_000, ge=100, description="Publishers sending faster are dropped, kbit/s."
    )
    handshake_timeout: float = Field(
        5.0, gt=0, le=60, description="Time an RTMP client has to finish its handshake, s."
    )
    idle_timeout: float = Field(
        15.0, gt=0, le=600, description="A publisher sending no media is dropped after this, s."
    )
    keyframe_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="A stream without a keyframe for this long is ended (`no_keyframe`), s.",
    )
    process_backoff_base: float = Field(
        0.5, gt=0, le=60, description="First restart delay of an ffmpeg child, s."
    )
    process_backoff_max: float = Field(
        30.0, gt=0, le=3600, description="Longest restart delay of an ffmpeg child, s."
    )
    thumbnail_interval: int = Field(
        10, ge=1, le=3600, description="Seconds between grid thumbnails of a live camera."
    )
    snapshot_max_age: float = Field(
        1.0, ge=0, le=60, description="How long an on-demand snapshot is reused, s."
    )
    playback_token_ttl: int = Field(
        300, ge=10, le=86_400, description="Lifetime of a private camera's playback token, seconds."
    )
    rtsp: RtspSettings = Field(default_factory=RtspSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    webrtc: WebRtcSettings = Field(default_factory=WebRtcSettings)
    nginx: NginxSettings = Field(default_factory=NginxSettings)
    latency_probe: LatencyProbeSettings = Field(default_factory=LatencyProbeSettings)

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, value: str) -> str:
        return _check_ladder(value)

    @property
    def ladder_rungs(self) -> list[tuple[int, int]]:
        """LADDER as (height, kbit/s) pairs, highest first."""
        pairs = [tuple(int(n) for n in rung.split(":")) for rung in self.ladder.split(",")]
        return sorted(((h, k) for h, k in pairs), reverse=True)
