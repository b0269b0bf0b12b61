"""Plugins inside bubblewrap: what a plugin process sees of the host's files.

The whole filesystem read-only, with the panel's data folder (its database file, storage, plugin
settings), /tmp, /home and /root replaced by empty tmpfs; then, back in: the Python that runs the plugin
(read-only), the plugin's own folder (read-only, its working directory) and the folder of its socket.
Own PID, IPC and UTS namespaces, no capabilities, killed with its parent. The network is shared: a plugin
may call out (a webhook); what it may do *to the panel* is its approved capabilities.

No `--new-session`: the plugin stays in the process group the supervisor signals.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

HIDDEN = ("/tmp", "/home", "/root")  # noqa: S108 (paths inside the sandbox)


class SandboxUnavailable(RuntimeError):
    pass


@cache
def bwrap_path() -> str | None:
    """bwrap's path when `bwrap --ro-bind / / true` works here (asked once per process), else None."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        probe = subprocess.run(  # noqa: S603 (bwrap found on PATH, fixed arguments)
            [path, "--ro-bind", "/", "/", "--unshare-pid", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if probe.returncode == 0 else None


def choose(mode: str) -> str | None:
    """The bwrap to use for `mode` (auto, bwrap, none); SandboxUnavailable when `bwrap` is required but
    cannot run."""
    if mode == "none":
        return None
    path = bwrap_path()
    if path is None and mode == "bwrap":
        raise SandboxUnavailable("PENTAD_PANEL__PLUGIN_SANDBOX=bwrap but bwrap cannot run here")
    return path


def wrap(bwrap: str, command: list[str], *, data_dir: Path, plugin_dir: Path, socket_dir: Path) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += [
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    for hidden in (*HIDDEN, str(data_dir)):
        argv += ["--tmpfs", hidden]
    for prefix in sorted({sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)}):
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--ro-bind", str(plugin_dir), str(plugin_dir), "--bind", str(socket_dir), str(socket_dir)]
    return [*argv, "--chdir", str(plugin_dir), "--", *command]
