"""What the Runtime tells the link (and through it the panel): console batches, state changes, stats.
`Runtime.events()` yields these, in order per server."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ServerState(StrEnum):
    """A server's state as the agent sees it (Pterodactyl's four, plus install and crash-loop states)."""

    OFFLINE = "offline"  # not running (never started, stopped, or exited and not restarted)
    INSTALLING = "installing"  # the install script runs
    STARTING = "starting"  # the game runs, its "done" line not seen yet
    RUNNING = "running"
    STOPPING = "stopping"  # stop command or signal sent, waiting for the exit
    CRASHED = (
        "crashed"  # crash loop: exited unexpectedly crash_max_restarts times in crash_window; no restarts
    )


@dataclass(frozen=True, slots=True)
class ConsoleBatch:
    """Console lines of one server, at most `console_batch_lines`, gathered for at most `console_batch_ms`.
    When the throttle dropped lines, `dropped` counts them and the batch carries a visible line
    "[pentad] N lines dropped (throttled)" where they were. `seq` is the shim's number of the last line
    (ascending per server run; re-attach continues after it). `source`: "game" or "install"."""

    server_id: str
    lines: tuple[str, ...]
    dropped: int = 0
    seq: int = 0
    source: str = "game"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A server moved from `previous` to `state`. `reason`: why, a short word: "start", "done_line",
    "stop", "kill", "exited", "crash_restart", "crash_loop", "install", "install_failed", "reattached",
    "shim_lost". `exit_code` / `signal` are set when the game exited; `crash_count` counts unexpected exits
    in the current window."""

    server_id: str
    state: ServerState
    previous: ServerState
    reason: str
    exit_code: int | None = None
    signal: int | None = None
    crash_count: int = 0


@dataclass(frozen=True, slots=True)
class ServerStats:
    """One stats sample of a running server (the shim's game process tree; net_*: the nftables counters
    of its allocated ports since they were created, rx = to the server)."""

    server_id: str
    state: ServerState
    cpu_percent: float  # 100 = one core
    memory_bytes: int  # RSS of the process tree
    memory_limit_bytes: int | None
    disk_bytes: int  # the server folder's apparent size
    uptime_seconds: float
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    net_rx_packets: int | None = None
    net_tx_packets: int | None = None
    net_reason: str | None = None  # why the net figures are null (nft missing, not permitted, no ports)
    limits_backend: str = "rlimits"
    players: int | None = None  # from the game's status query (ServerSpec.query), when it answered
    max_players: int | None = None


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What `Runtime.status()` answers for one server."""

    server_id: str
    state: ServerState
    pid: int | None = None  # the shim's
    game_pid: int | None = None
    started_at: float | None = None  # epoch seconds
    exit_code: int | None = None
    signal: int | None = None
    crash_count: int = 0
    attached: bool = False
    extra: dict[str, object] = field(default_factory=dict)


RuntimeEvent = ConsoleBatch | StateChanged | ServerStats
