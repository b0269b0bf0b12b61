"""Resource limits of game servers: cgroup v2 where the unified hierarchy has the memory, cpu and pids
controllers, else rlimits set by the shim between fork and exec (RLIMIT_AS for memory, RLIMIT_FSIZE for
the disk quota — no single file larger than the quota, Pterodactyl #4554 —, RLIMIT_NOFILE, RLIMIT_NPROC
for the server's own uid) plus the runtime's RSS watchdog. Which one is in force is reported (`backend`,
and `notes` for what the backend cannot enforce)."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pentad.agent.settings import AgentSettings
from pentad.panel_wire.serverspec import ServerLimits

MIB = 1024 * 1024
CONTROLLERS = ("cpu", "memory", "pids")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class LimitsPlan:
    """What the shim applies to one game: rlimits (resource module names -> value) and a cgroup folder
    (None under rlimits); `notes`: limits asked for that this backend does not enforce."""

    backend: str
    rlimits: dict[str, int] = field(default_factory=dict)
    cgroup: str | None = None
    notes: tuple[str, ...] = ()


class CgroupV2:
    """The agent's cgroup v2 subtree: <root>/<parent>/<server id>, with memory.max, cpu.max, pids.max."""

    def __init__(self, root: Path, parent: str) -> None:
        self.root = root
        self.parent = root / parent

    def available(self) -> tuple[bool, str]:
        """Whether cgroup v2 limits can be used here, and why not."""
        try:
            controllers = (self.root / "cgroup.controllers").read_text().split()
        except OSError:
            return False, f"no cgroup v2 hierarchy at {self.root} (cgroup.controllers missing)"
        missing = [name for name in CONTROLLERS if name not in controllers]
        if missing:
            return False, f"cgroup v2 at {self.root} lacks the {', '.join(missing)} controller(s)"
        try:
            self.parent.mkdir(exist_ok=True)
            _enable_controllers(self.root)
            _enable_controllers(self.parent)
        except OSError as exc:
            return False, f"cannot delegate controllers under {self.root}: {exc.strerror or exc}"
        return True, "cgroup v2"

    def create(self, server_id: str, limits: ServerLimits) -> Path:
        """The server's cgroup with its limits written (an existing one is reused)."""
        path = self.parent / server_id
        path.mkdir(parents=True, exist_ok=True)
        memory = str(limits.memory_mb * MIB) if limits.memory_mb else "max"
        cpu = f"{limits.cpu_percent * CPU_PERIOD_US // 100} {CPU_PERIOD_US}" if limits.cpu_percent else "max"
        _write(path / "memory.max", memory)
        if limits.memory_mb:
            _write(path / "memory.swap.max", "0", optional=True)
        _write(path / "cpu.max", cpu)
        _write(path / "pids.max", str(limits.pids) if limits.pids else "max")
        return path

    def memory_current(self, server_id: str) -> int | None:
        try:
            return int((self.parent / server_id / "memory.current").read_text().strip())
        except (OSError, ValueError):
            return None

    def remove(self, server_id: str) -> None:
        """Remove the server's (empty) cgroup; a real cgroupfs refuses while processes remain."""
        path = self.parent / server_id
        with contextlib.suppress(OSError):
            path.rmdir()
        if path.exists() and not (self.root / "cgroup.procs").exists():  # a plain folder (tests)
            shutil.rmtree(path, ignore_errors=True)


def _enable_controllers(path: Path) -> None:
    current = set()
    with contextlib.suppress(OSError):
        current = set((path / "cgroup.subtree_control").read_text().split())
    if all(name in current for name in CONTROLLERS):
        return
    _write(path / "cgroup.subtree_control", " ".join(f"+{name}" for name in CONTROLLERS))


def _write(path: Path, value: str, *, optional: bool = False) -> None:
    try:
        with open(path, "w") as file:
            file.write(value)
    except OSError:
        if not optional:
            raise


class Limits:
    """Picks the backend once (settings.limits: auto | cgroup2 | rlimits) and plans each server's limits."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.cgroups = CgroupV2(settings.cgroup_root, settings.cgroup_parent)
        usable, reason = (
            (False, "rlimits chosen by setting") if settings.limits == "rlimits" else self.cgroups.available()
        )
        if settings.limits == "cgroup2" and not usable:
            raise RuntimeError(f"limits=cgroup2 but {reason}")
        self.backend = "cgroup2" if usable else "rlimits"
        self.reason = reason

    def plan(self, server_id: str, limits: ServerLimits, *, own_uid: bool) -> LimitsPlan:
        """The limits of one start. `own_uid`: the game runs as its own uid (RLIMIT_NPROC is per uid, so it
        is only set then)."""
        rlimits: dict[str, int] = {}
        notes: list[str] = []
        if limits.disk_mb:
            rlimits["RLIMIT_FSIZE"] = limits.disk_mb * MIB
        if limits.open_files:
            rlimits["RLIMIT_NOFILE"] = limits.open_files
        if self.backend == "cgroup2":
            path = self.cgroups.create(server_id, limits)
            return LimitsPlan("cgroup2", rlimits, str(path), ())
        if limits.memory_mb:
            rlimits["RLIMIT_AS"] = limits.memory_mb * MIB
            notes.append("memory: address-space limit (RLIMIT_AS) and an RSS watchdog, not a cgroup")
        if limits.pids and own_uid:
            rlimits["RLIMIT_NPROC"] = limits.pids
        elif limits.pids:
            notes.append("pids: not enforced (the game shares the agent's uid)")
        if limits.cpu_percent:
            notes.append("cpu_percent: not enforced under rlimits (needs cgroup v2)")
        return LimitsPlan("rlimits", rlimits, None, tuple(notes))

    def release(self, server_id: str) -> None:
        if self.backend == "cgroup2":
            self.cgroups.remove(server_id)
