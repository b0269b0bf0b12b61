"""The panel app's settings: PENTAD_PANEL__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(PanelSettings)`. Every setting of the plan (docs/plans/panel.md §3) is here from the
first session, so the later parts (agent link, files, backups, schedules, plugins) only read them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pentad.core.config import CommaList

APP_NAME = "panel"


class PanelSettings(BaseModel):
    """The panel app (apps/panel): nodes, game servers, templates, agents, backups, schedules, plugins."""

    heartbeat_interval: float = Field(
        2.0, gt=0, le=60, description="Seconds between an agent's heartbeats (sent to agents in `hello`)."
    )
    heartbeat_timeout: float = Field(
        6.0, gt=0, le=600, description="A node that sent nothing for this long is offline, seconds."
    )
    enrolment_token_ttl: int = Field(
        3600, ge=60, le=604_800, description="Lifetime of a one-time node enrolment token (`pne_…`), seconds."
    )
    agent_command_timeout: float = Field(
        15.0, gt=0, le=600, description="How long the panel waits for an agent's answer to a call, seconds."
    )
    console_history_lines: int = Field(
        1000, ge=0, le=100_000, description="Console lines a freshly opened console gets from the agent."
    )
    console_batch_ms: int = Field(
        50, ge=1, le=5000, description="Longest an agent holds console output before sending it, ms."
    )
    console_lines_per_second: int = Field(
        5000, ge=1, description="Console lines per second one server may send; more are dropped (marked)."
    )
    stats_interval: float = Field(1.0, gt=0, le=300, description="Seconds between a server's stats reports.")
    stop_timeout: int = Field(
        30, ge=1, le=3600, description="Time a server has to stop after its stop command before SIGTERM, s."
    )
    crash_max_restarts: int = Field(
        3,
        ge=0,
        le=100,
        description="Restarts after crashes within CRASH_WINDOW before a server is `crashed`.",
    )
    crash_window: int = Field(120, ge=1, le=86_400, description="The crash-loop window, seconds.")
    file_read_max_bytes: int = Field(
        5_242_880, ge=1, description="Largest file the file manager reads or edits in place, bytes."
    )
    upload_max_bytes: int = Field(1_073_741_824, ge=1, description="Largest file upload, bytes.")
    archive_max_entries: int = Field(
        100_000, ge=1, description="Most entries an archive may hold to be extracted."
    )
    archive_max_ratio: int = Field(
        200, ge=1, description="Largest expanded/compressed size ratio of an extracted archive."
    )
    backup_retention: int = Field(
        5, ge=0, le=1000, description="Backups kept per server; the oldest unlocked are pruned (0: no limit)."
    )
    backup_limit: str = Field("20GB", description="Largest backup archive stored (core storage limit).")
    schedule_min_interval: int = Field(
        60, ge=1, le=86_400, description="Shortest interval between two runs of a schedule, seconds."
    )
    require_two_factor_for_owners: bool = Field(
        False, description="Refuse server actions from accounts without two-factor authentication."
    )
    plugins_dir: str | None = Field(
        None, description="Where installed plugins are unpacked. Unset: `<data dir>/panel/plugins`."
    )
    plugin_memory_mb: int = Field(256, ge=16, description="Address-space limit of one plugin process, MiB.")
    plugin_cpu_seconds: int = Field(3600, ge=1, description="CPU-time limit of one plugin process, seconds.")
    plugin_call_timeout: float = Field(
        5.0, gt=0, le=300, description="How long a plugin has to answer one call, seconds."
    )
    plugin_ping_interval: float = Field(
        10.0, gt=0, le=3600, description="Seconds between liveness pings to a plugin."
    )
    plugin_max_frame_bytes: int = Field(
        1_048_576, ge=1024, description="Largest JSON-RPC frame a plugin may send, bytes."
    )
    plugin_garbage_limit: int = Field(
        20, ge=1, description="Malformed frames per minute after which a plugin is stopped as `failed`."
    )
    plugin_sandbox: Literal["auto", "bwrap", "none"] = Field(
        "auto",
        description="Run plugins inside bubblewrap (the panel's data, /tmp, /home and /root hidden, the rest "
        "read-only): `auto` when bwrap works here, `bwrap` always (a plugin fails to start without it), "
        "`none` never.",
    )
    market_sources: CommaList = Field(
        default_factory=list, description="URLs of signed plugin indexes (marketplaces)."
    )
    market_trusted_keys: CommaList = Field(
        default_factory=list, description="Ed25519 public keys (base64) trusted to sign plugin indexes."
    )
    file_operation_timeout: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How long the panel waits for an agent's archive, extract, delete or backup, seconds.",
    )
