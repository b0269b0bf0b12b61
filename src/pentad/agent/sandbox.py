"""The bubblewrap sandbox of a game server: its own mount view holding the server folder (at
/home/container, or /mnt/server for install scripts), /usr and the few /etc files programs need read-only,
a fresh /proc, /dev and /tmp — and nothing else: no other server's folder, not the agent's data folder or
its credential. Own PID, IPC and UTS namespaces, all capabilities dropped, a new session (no TIOCSTI), and
the game's own uid when the agent runs as root. The host network stays (the game binds its ports)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pentad.agent.settings import AgentSettings

CONTAINER_HOME = "/home/container"
INSTALL_MOUNT = "/mnt/server"
INSTALL_SCRIPT = "/mnt/install/install.sh"
# Read-only from the host when present: name resolution, TLS roots, time zone, the dynamic linker's cache.
ETC_FILES = (
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/mime.types",
)
# Top-level folders of the merged-/usr layout: symlinks into /usr on Debian 12, bound if they are folders.
USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games"


class SandboxUnavailable(RuntimeError):
    """bwrap cannot run here (and running unsandboxed was not allowed)."""


@dataclass(frozen=True)
class Identity:
    """Whom the game runs as: uid/gid on the host (None: the agent's own user)."""

    uid: int | None
    gid: int | None


def check_bwrap(settings: AgentSettings) -> str:
    """The bwrap version when `bwrap --ro-bind / / true` works here; SandboxUnavailable with the reason."""
    path = str(settings.bwrap_path)
    try:
        probe = subprocess.run(  # noqa: S603 (the configured bwrap binary)
            [path, "--ro-bind", "/", "/", "--unshare-pid", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
        version = subprocess.run(  # noqa: S603
            [path, "--version"], capture_output=True, timeout=20, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"{path}: {exc}") from None
    if probe.returncode != 0:
        reason = probe.stderr.decode(errors="replace").strip() or f"exit status {probe.returncode}"
        raise SandboxUnavailable(f"bwrap cannot run here: {reason}")
    return version.stdout.strip() or "bubblewrap"


def drops_privileges(settings: AgentSettings) -> bool:
    """Whether games get uids of their own (the agent runs as root and game_uid_base is set)."""
    return settings.game_uid_base != 0 and os.geteuid() == 0


def identity(settings: AgentSettings, server_id: str) -> Identity:
    """The server's own uid/gid when games get their own (drops_privileges), else the agent's user. Each
    server gets the next free number of the range on first use, kept in <data>/uids.json, so no two
    servers of this agent ever share a uid."""
    if not drops_privileges(settings):
        return Identity(None, None)
    table = settings.data_dir / "uids.json"
    try:
        uids: dict[str, int] = json.loads(table.read_text(encoding="utf-8"))
    except FileNotFoundError:
        uids = {}
    if server_id not in uids:
        taken = set(uids.values())
        free = next(
            (n for n in range(settings.game_uid_count) if settings.game_uid_base + n not in taken), None
        )
        if free is None:
            raise SandboxUnavailable(f"all {settings.game_uid_count} game uids are in use")
        uids[server_id] = settings.game_uid_base + free
        temp = table.with_name(".uids.json.tmp")
        temp.write_text(json.dumps(uids, sort_keys=True), encoding="utf-8")
        os.replace(temp, table)
    uid = int(uids[server_id])
    return Identity(uid, uid)


def release_identity(settings: AgentSettings, server_id: str) -> None:
    """Give the server's uid back (the server was deleted)."""
    table = settings.data_dir / "uids.json"
    try:
        uids = json.loads(table.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    if uids.pop(server_id, None) is not None:
        temp = table.with_name(".uids.json.tmp")
        temp.write_text(json.dumps(uids, sort_keys=True), encoding="utf-8")
        os.replace(temp, table)


def files_dir(settings: AgentSettings, server_id: str, who: Identity) -> Path:
    """<data>/sandbox/<id>/: what the sandbox binds read-only besides the server folder (passwd, group, the
    install script), readable by the game's uid (bwrap runs as that uid), by no other server's."""
    folder = settings.data_dir / "sandbox" / server_id
    folder.parent.mkdir(mode=0o711, exist_ok=True)
    folder.mkdir(mode=0o750, exist_ok=True)
    folder.parent.chmod(0o711)  # `pentad` runs with umask 077: the modes above would lose their x bits
    folder.chmod(0o750)
    if who.uid is not None and who.gid is not None:
        os.chown(folder, 0, who.gid)
    return folder


def write_account_files(folder: Path, who: Identity) -> tuple[Path, Path]:
    """A passwd and a group file naming only root and the game's user (`container`), for the sandbox."""
    uid = who.uid if who.uid is not None else os.geteuid()
    gid = who.gid if who.gid is not None else os.getegid()
    passwd = folder / "passwd"
    group = folder / "group"
    passwd.write_text(
        f"root:x:0:0:root:/root:/usr/sbin/nologin\ncontainer:x:{uid}:{gid}:container:{CONTAINER_HOME}:/bin/sh\n"
    )
    group.write_text(f"root:x:0:\ncontainer:x:{gid}:\n")
    passwd.chmod(0o644)
    group.chmod(0o644)
    return passwd, group


def bwrap_argv(
    settings: AgentSettings,
    *,
    server_id: str,
    server_dir: Path,
    command: list[str],
    mount_at: str = CONTAINER_HOME,
    extra_ro: tuple[tuple[Path, str], ...] = (),
    who: Identity | None = None,
) -> list[str]:
    """The bwrap command line running `command` with `server_dir` as `mount_at` (its working directory).
    `extra_ro`: more (host path, sandbox path) read-only binds (the install script)."""
    who = who or Identity(None, None)
    passwd, group = write_account_files(files_dir(settings, server_id, who), who)
    argv = [
        str(settings.bwrap_path),
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        server_id[:63],
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for top in USR_LINKS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for path in ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    argv += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/home"]  # noqa: S108 (inside)
    argv += ["--bind", str(server_dir), mount_at]
    for host, inside in extra_ro:
        argv += ["--ro-bind", str(host), inside]
    argv += ["--chdir", mount_at, "--", *command]
    return argv


def check_traversable(path: Path) -> str | None:
    """None when every folder above `path` lets other users pass (o+x), as game uids must to reach their
    server folder; else the first folder that does not."""
    for folder in [path, *path.parents]:
        try:
            if not folder.stat().st_mode & 0o001:
                return str(folder)
        except OSError:
            return str(folder)
    return None


def environment(env: dict[str, str], *, home: str, server_id: str) -> dict[str, str]:
    """The game's environment: the spec's variables over a small base (never the agent's own)."""
    return {
        "PATH": PATH,
        "HOME": home,
        "USER": "container",
        "LANG": "C.UTF-8",
        "TERM": "xterm",
        "SERVER_ID": server_id,
        **env,
    }
