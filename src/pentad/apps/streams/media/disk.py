"""Disk space where the media plane writes: checked before a stream's packager starts."""

from __future__ import annotations

import os
from pathlib import Path

MIN_FREE_FOR_LIVE = 64 * 1024 * 1024
"""Below this a new stream's HLS is not started (its ring of segments needs a few MB; the rest is margin)."""


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer where `path` is (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    stats = os.statvfs(probe)
    return stats.f_bavail * stats.f_frsize


def has_room(path: Path, needed: int = MIN_FREE_FOR_LIVE) -> bool:
    return free_bytes(path) >= needed
