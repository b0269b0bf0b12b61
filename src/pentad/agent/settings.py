"""The agent's settings: PENTAD_AGENT__<NAME> variables, its own model (the agent never loads the
platform's Settings: it talks to the panel over the network only)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    """One host's agent. `data_dir` holds servers/<id>/ (the game folders), run/<id>/ (each server's shim:
    socket, state, console log) and the node credential."""

    model_config = SettingsConfigDict(env_prefix="PENTAD_AGENT__", env_nested_delimiter="__", extra="ignore")

    panel_url: str = Field("", description="The panel's base URL, e.g. https://panel.example.com.")
    data_dir: Path = Field(Path("/var/lib/pentad-agent"), description="Servers, shims and the credential.")
    credential_file: Path | None = Field(
        None, description="The node credential (default <data_dir>/credential); outside every sandbox."
    )
    node_credential: SecretStr | None = Field(
        None, description="The node credential itself, instead of credential_file (containers)."
    )
    sandbox: Literal["bwrap", "none"] = Field("bwrap", description="bwrap, or none with allow_unsandboxed.")
    allow_unsandboxed: bool = Field(False, description="Permit sandbox=none (logged at every start).")
    bwrap_path: Path = Field(Path("/usr/bin/bwrap"), description="The bubblewrap binary.")
    limits: Literal["auto", "cgroup2", "rlimits"] = Field(
        "auto", description="Resource limits: cgroup v2 where delegatable (auto), else rlimits."
    )
    cgroup_root: Path = Field(Path("/sys/fs/cgroup"), description="The cgroup v2 (unified) mount.")
    cgroup_parent: str = Field("pentad-agent", description="The agent's cgroup under cgroup_root.")
    game_uid_base: int = Field(
        200_000, ge=1000, description="Games run as uid/gid base + n (0: as the agent's user)."
    )
    game_uid_count: int = Field(100_000, ge=1, description="Size of the uid range of game servers.")
    reconnect_max: float = Field(30.0, gt=0, le=600, description="Longest wait between reconnects, s.")
    console_batch_ms: int = Field(50, ge=1, le=1000, description="Console batch window, milliseconds.")
    console_batch_lines: int = Field(512, ge=1, le=10_000, description="Most lines in one console batch.")
    console_lines_per_second: int = Field(
        5000, ge=1, description="Per-server console rate (token bucket); excess is dropped with a marker."
    )
    console_burst_lines: int = Field(10_000, ge=1, description="Token bucket size (lines).")
    console_ring_lines: int = Field(2000, ge=10, le=1_000_000, description="Lines kept by each shim.")
    stop_timeout: float = Field(30.0, gt=0, description="Stop command -> SIGTERM after this many seconds.")
    kill_timeout: float = Field(10.0, gt=0, description="SIGTERM -> SIGKILL after this many seconds.")
    crash_max_restarts: int = Field(3, ge=0, description="Restarts within crash_window before 'crashed'.")
    crash_window: float = Field(120.0, gt=0, description="Crash-loop window, seconds.")
    crash_restart_delay: float = Field(1.0, ge=0, description="Wait before restarting a crashed server.")
    stats_interval: float = Field(1.0, gt=0, description="Seconds between stats reports.")
    install_timeout: float = Field(3600.0, gt=0, description="Longest install script run, seconds.")
    net_counters: Literal["nft", "off"] = Field(
        "nft", description="Per-server network counters: nftables (needs root or CAP_NET_ADMIN), or off."
    )
    nft_path: Path | None = Field(None, description="The nft binary (default: nft on PATH, /usr/sbin/nft).")
    nft_table: str = Field(
        "pentad_agent",
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$",
        description="The agent's own nftables table (inet family); one per agent on a host.",
    )

    @property
    def credential_path(self) -> Path:
        return self.credential_file or self.data_dir / "credential"

    @property
    def servers_dir(self) -> Path:
        return self.data_dir / "servers"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"
