"""Stats of a running game server, read with psutil over the shim's game process tree: CPU % (100 = one
core), RSS, the server folder's disk usage (rescanned at most every `disk_interval` seconds), uptime.
Network counters come from nftables (pentad.agent.netcount), not from here."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def folder_bytes(path: Path) -> int:
    """Apparent size of every regular file below `path`, symlinks not followed."""
    total = 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
                    elif stat.S_ISREG(info.st_mode):
                        total += info.st_size
        except OSError:
            continue
    return total


@dataclass
class Sample:
    cpu_percent: float
    memory_bytes: int
    disk_bytes: int
    uptime_seconds: float


@dataclass
class _Tracked:
    root_pid: int
    processes: dict[int, psutil.Process] = field(default_factory=dict)
    disk_bytes: int = 0
    disk_at: float = 0.0


class StatsCollector:
    """Keeps psutil Process objects between samples (CPU % is the time used since the last sample)."""

    def __init__(self, disk_interval: float = 30.0) -> None:
        self.disk_interval = disk_interval
        self._tracked: dict[str, _Tracked] = {}

    def sample(
        self,
        server_id: str,
        root_pid: int,
        folder: Path,
        started_at: float | None,
        *,
        fresh_disk: bool = False,
    ) -> Sample:
        """One sample of the process tree under `root_pid` (the shim's game process: bwrap, or the game);
        the folder is rescanned when `fresh_disk` or its last scan is older than disk_interval."""
        tracked = self._tracked.get(server_id)
        if tracked is None or tracked.root_pid != root_pid:
            tracked = self._tracked[server_id] = _Tracked(root_pid)
        try:
            root = tracked.processes.get(root_pid) or psutil.Process(root_pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        current: dict[int, psutil.Process] = {}
        cpu = 0.0
        memory = 0
        for process in tree:
            known = tracked.processes.get(process.pid)
            process = known if known is not None else process
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(None)
                    memory += process.memory_info().rss
            except psutil.Error:
                continue
            current[process.pid] = process
        tracked.processes = current
        now = time.monotonic()
        if fresh_disk or now - tracked.disk_at >= self.disk_interval or tracked.disk_at == 0.0:
            tracked.disk_bytes = folder_bytes(folder)
            tracked.disk_at = now
        uptime = max(0.0, time.time() - started_at) if started_at else 0.0
        return Sample(round(cpu, 1), memory, tracked.disk_bytes, round(uptime, 1))

    def forget(self, server_id: str) -> None:
        self._tracked.pop(server_id, None)


def host_facts(data_dir: Path) -> dict[str, object]:
    """The host for the panel: cores, memory, the data folder's file system, kernel."""
    disk = psutil.disk_usage(str(data_dir))
    return {
        "cores": psutil.cpu_count() or 1,
        "memory_bytes": psutil.virtual_memory().total,
        "disk_bytes": disk.total,
        "disk_free_bytes": disk.free,
        "kernel": os.uname().release,
    }
