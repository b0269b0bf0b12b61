"""The per-server shim: `python -I -m pentad.agent.shim <run dir>`. Stdlib only (starts fast, small).

It double-forks and calls setsid, so it belongs to no agent process and survives the agent being killed or
upgraded (no PDEATHSIG). The daemon it leaves behind owns the game process (usually bwrap, which owns the
game in its own PID namespace), the game's stdin pipe, a ring of the last console lines (also appended to
console.log, rotated at 1 MiB), and a Unix socket <run dir>/shim.sock where agents attach. It records the
game's start and exit in state.json (written atomically at once, not at shutdown), so an agent that was
away learns how the game ended. When the game has exited and the attached agents were told, it exits.

What it runs is <run dir>/launch.json, written by the agent: argv, env, cwd, rlimits, cgroup, uid/gid,
ring_lines, and whether argv[0] is bwrap (then `--info-fd` tells the sandbox's PID-namespace init, the
target of "kill everything").

Socket protocol: newline-delimited JSON both ways.
  agent -> shim: {"op": "attach", "since": seq|null, "tail": n}   lines after `since` (or the last n), then
                 every new line; {"op": "send", "line": s}; {"op": "signal", "signal": n, "target":
                 "game"|"all"}; {"op": "status"}; {"op": "history", "lines": n}. Each may carry "id".
  shim -> agent: {"t": "reply", "id": …, "ok": true|false, …}, {"t": "out", "first": seq, "lines": […]},
                 {"t": "exit", "exit_code": n|null, "signal": n|null}.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

IGNORED_SIGNALS = ("SIGHUP", "SIGINT", "SIGTTOU", "SIGTTIN", "SIGTSTP")
LINE_MAX = 8192
READ_CHUNK = 65536
CLIENT_BUFFER_MAX = 8 * 1024 * 1024
LOG_MAX_BYTES = 1024 * 1024
EXIT_FLUSH_SECONDS = 2.0
FIRST_ATTACH_WAIT = 10.0  # a game that exits at once still waits this long for the agent that launched it
SOCKET_NAME = "shim.sock"
STATE_NAME = "state.json"
LAUNCH_NAME = "launch.json"
LOG_NAME = "console.log"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a temporary file beside it, fsynced, then renamed."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as file:
        json.dump(data, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The shim's state.json, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((run_dir / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive: its exit is waiting to be collected.
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (read from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    result: list[int] = []
    queue = deque(children.get(pid, []))
    while queue:
        child = queue.popleft()
        result.append(child)
        queue.extend(children.get(child, []))
    return result


class _Client:
    __slots__ = ("attached", "inbuf", "outbuf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = bytearray()
        self.attached = False


class Shim:
    def __init__(self, run_dir: Path, launch: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.launch = launch
        self.ring: deque[tuple[int, str]] = deque(maxlen=int(launch.get("ring_lines", 2000)))
        self.seq = 0
        self.partial = b""
        self.clients: dict[int, _Client] = {}
        self.selector = selectors.DefaultSelector()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sandbox_pid: int | None = None
        self.info_fd: int | None = None
        self.info_buffer = b""
        self.stdout_open = True
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.state: dict[str, Any] = {}
        self.ever_attached = False
        self.log = open(run_dir / LOG_NAME, "ab")  # noqa: SIM115 (open for the shim's life)

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        sock_path = self.run_dir / SOCKET_NAME
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(sock_path))
        os.chmod(sock_path, 0o600)
        self.listener.listen(16)
        self.listener.settimeout(0.0)
        self.selector.register(self.listener, selectors.EVENT_READ, "listen")

        argv = list(self.launch["argv"])
        pass_fds: tuple[int, ...] = ()
        info_w = None
        if self.launch.get("bwrap"):
            self.info_fd, info_w = os.pipe()
            argv = [argv[0], "--info-fd", str(info_w), *argv[1:]]
            pass_fds = (info_w,)
        self.proc = subprocess.Popen(  # noqa: S603 (the agent's own launch file)
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.launch.get("cwd") or None,
            env=self.launch.get("env") or {},
            pass_fds=pass_fds,
            preexec_fn=self._prepare_child,
            start_new_session=True,
        )
        if info_w is not None:
            os.close(info_w)
        if self.info_fd is not None:
            # bwrap writes {"child-pid": …} once the sandbox exists: wait for it, so that state.json names
            # the sandbox's init before anyone may ask to kill it (EOF: bwrap failed; its output says why).
            deadline = time.monotonic() + 30.0
            while self.sandbox_pid is None and self.info_fd is not None and time.monotonic() < deadline:
                ready, _, _ = select.select([self.info_fd], [], [], max(0.0, deadline - time.monotonic()))
                if ready:
                    self._read_info()
            if self.info_fd is not None:
                os.set_blocking(self.info_fd, False)
                self.selector.register(self.info_fd, selectors.EVENT_READ, "info")
        assert self.proc.stdout is not None
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stdin.fileno(), True)
        self.selector.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
        self.state = {
            "shim_pid": os.getpid(),
            "game_pid": self.proc.pid,
            "sandbox_pid": self.sandbox_pid,
            "started_at": time.time(),
            "running": True,
            "exit_code": None,
            "signal": None,
            "finished_at": None,
        }
        write_json(self.run_dir / STATE_NAME, self.state)

    def _prepare_child(self) -> None:
        """Between fork and exec of the game: default signal handling (the shim ignores some, and ignoring
        is inherited), cgroup, rlimits, then the game's uid (order matters)."""
        for name in IGNORED_SIGNALS:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        cgroup = self.launch.get("cgroup")
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as file:
                file.write("0")
        for name, value in (self.launch.get("rlimits") or {}).items():
            limit = getattr(resource, name)
            resource.setrlimit(limit, (value, value))
        gid, uid = self.launch.get("gid"), self.launch.get("uid")
        if gid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
        if uid is not None:
            os.setresuid(uid, uid, uid)

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        exited_at: float | None = None
        while True:
            for key, events in self.selector.select(timeout=0.5):
                kind = key.data
                if kind == "listen":
                    self._accept()
                elif kind == "stdout":
                    self._read_stdout()
                elif kind == "info":
                    self._read_info()
                elif kind == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                elif isinstance(kind, _Client):
                    if events & selectors.EVENT_READ:
                        self._read_client(kind)
                    if events & selectors.EVENT_WRITE and kind.sock.fileno() in self.clients:
                        self._write_client(kind)
            assert self.proc is not None
            if self.exit_code is None and self.exit_signal is None and self.proc.poll() is not None:
                self._record_exit(self.proc.returncode)
                exited_at = time.monotonic()
            # The exit is final once the output is drained (or a straggler holds stdout for too long).
            drained = exited_at is not None and (not self.stdout_open or time.monotonic() - exited_at > 1.0)
            if drained and (self.ever_attached or time.monotonic() - (exited_at or 0.0) > FIRST_ATTACH_WAIT):
                self._finish()
                return

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.settimeout(0.0)
        client = _Client(sock)
        self.clients[sock.fileno()] = client
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _read_info(self) -> None:
        assert self.info_fd is not None
        try:
            data = os.read(self.info_fd, 4096)
        except BlockingIOError:
            return
        if data:
            # bwrap may write its JSON in pieces: parse what has come so far.
            self.info_buffer += data
            if self.sandbox_pid is None:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    self.sandbox_pid = int(json.loads(self.info_buffer.decode()).get("child-pid"))
                    if self.state:
                        self.state["sandbox_pid"] = self.sandbox_pid
                        write_json(self.run_dir / STATE_NAME, self.state)
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.info_fd)
        os.close(self.info_fd)
        self.info_fd = None

    def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            data = os.read(self.proc.stdout.fileno(), READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(self.proc.stdout)
            self.stdout_open = False
            if self.partial:
                self._add_lines([self.partial])
                self.partial = b""
            return
        data = self.partial + data
        pieces = data.split(b"\n")
        self.partial = pieces.pop()
        while len(self.partial) > LINE_MAX:
            pieces.append(self.partial[:LINE_MAX])
            self.partial = self.partial[LINE_MAX:]
        lines: list[bytes] = []
        for piece in pieces:
            while len(piece) > LINE_MAX:
                lines.append(piece[:LINE_MAX])
                piece = piece[LINE_MAX:]
            lines.append(piece)
        self._add_lines(lines)

    def _add_lines(self, raw: list[bytes]) -> None:
        lines = [line.rstrip(b"\r").decode("utf-8", "replace") for line in raw]
        first = self.seq + 1
        for line in lines:
            self.seq += 1
            self.ring.append((self.seq, line))
        self._log(lines)
        frame = _encode({"t": "out", "first": first, "lines": lines})
        for client in list(self.clients.values()):
            if client.attached:
                self._queue(client, frame)

    def _log(self, lines: list[str]) -> None:
        try:
            self.log.write(("\n".join(lines) + "\n").encode())
            self.log.flush()
            if self.log.tell() > LOG_MAX_BYTES:
                self.log.close()
                os.replace(self.run_dir / LOG_NAME, self.run_dir / (LOG_NAME + ".1"))
                self.log = open(self.run_dir / LOG_NAME, "ab")  # noqa: SIM115
        except OSError:
            pass  # a full disk must not stop the game's console

    # ------------------------------------------------------------------ clients

    def _read_client(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbuf += data
        if len(client.inbuf) > 1024 * 1024:
            self._drop(client)
            return
        *frames, client.inbuf = client.inbuf.split(b"\n")
        for frame in frames:
            if frame.strip():
                self._handle(client, frame)

    def _handle(self, client: _Client, frame: bytes) -> None:
        try:
            request = json.loads(frame)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            self._queue(client, _encode({"t": "reply", "id": None, "ok": False, "error": "bad_frame"}))
            return
        ident = request.get("id")
        try:
            reply = self._answer(client, request)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        self._queue(client, _encode({"t": "reply", "id": ident, **reply}))
        if request.get("op") == "attach" and reply.get("ok"):
            since = request.get("since")
            if since is not None:
                backlog = [(seq, line) for seq, line in self.ring if seq > int(since)]
            else:
                tail = int(request.get("tail") or 0)
                backlog = list(self.ring)[-tail:] if tail > 0 else []
            if backlog:
                frame_out = {"t": "out", "first": backlog[0][0], "lines": [line for _, line in backlog]}
                self._queue(client, _encode(frame_out))
            client.attached = True
            self.ever_attached = True

    def _answer(self, client: _Client, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "attach":
            return {"ok": True, "seq": self.seq}
        if op == "status":
            return {"ok": True, "seq": self.seq, "state": self.state}
        if op == "history":
            count = max(0, int(request.get("lines", 100)))
            return {"ok": True, "lines": [line for _, line in list(self.ring)[-count:]] if count else []}
        if op == "send":
            line = str(request["line"])
            if "\n" in line or "\x00" in line:
                return {"ok": False, "error": "bad_line"}
            assert self.proc is not None
            assert self.proc.stdin is not None
            if self.proc.poll() is not None:
                return {"ok": False, "error": "not_running"}
            try:
                os.write(self.proc.stdin.fileno(), line.encode() + b"\n")
            except BrokenPipeError:
                return {"ok": False, "error": "stdin_closed"}
            return {"ok": True}
        if op == "signal":
            return self._signal(int(request["signal"]), str(request.get("target", "game")))
        if op == "detach":
            client.attached = False
            return {"ok": True}
        return {"ok": False, "error": "unknown_op"}

    def _signal(self, signum: int, target: str) -> dict[str, Any]:
        """`game`: every process of the game (the sandbox's processes below its init, or the game's process
        group); `all`: the sandbox's init and bwrap itself (SIGKILL of a PID namespace's init ends every
        process in it)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return {"ok": False, "error": "not_running"}
        sent = 0
        if self.sandbox_pid is not None:
            targets = [self.sandbox_pid, self.proc.pid] if target == "all" else descendants(self.sandbox_pid)
            for pid in targets:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
                    sent += 1
        elif self.launch.get("bwrap"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)
                sent += 1
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)
                sent += 1
        return {"ok": True, "sent": sent}

    def _queue(self, client: _Client, data: bytes) -> None:
        if len(client.outbuf) + len(data) > CLIENT_BUFFER_MAX:
            self._drop(client)  # a stalled agent re-attaches with `since`; the game never waits for it
            return
        was_empty = not client.outbuf
        client.outbuf += data
        if was_empty:
            self._write_client(client)

    def _write_client(self, client: _Client) -> None:
        if client.sock.fileno() not in self.clients:
            return
        try:
            sent = client.sock.send(client.outbuf)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(client)
            return
        del client.outbuf[:sent]
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        self.selector.modify(client.sock, mask, client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(client.sock)
            client.sock.close()

    # ------------------------------------------------------------------ exit

    def _record_exit(self, returncode: int) -> None:
        code: int | None = returncode
        sig: int | None = None
        if returncode < 0:
            code, sig = None, -returncode
        elif self.launch.get("bwrap") and returncode > 128:
            code, sig = None, returncode - 128  # bwrap reports a signalled game as 128 + signal
        self.exit_code, self.exit_signal = code, sig
        self.state.update(running=False, exit_code=code, signal=sig, finished_at=time.time())
        write_json(self.run_dir / STATE_NAME, self.state)

    def _finish(self) -> None:
        frame = _encode(
            {"t": "exit", "exit_code": self.exit_code, "signal": self.exit_signal, "seq": self.seq}
        )
        for client in list(self.clients.values()):
            if client.attached:
                self._queue(client, frame)
        self.selector.unregister(self.listener)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / SOCKET_NAME).unlink()
        deadline = time.monotonic() + EXIT_FLUSH_SECONDS
        while any(client.outbuf for client in self.clients.values()) and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=0.1):
                if isinstance(key.data, _Client):
                    self._write_client(key.data)
        for client in list(self.clients.values()):
            self._drop(client)
        self.log.close()


def _encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode() + b"\n"


def _daemonize(run_dir: Path) -> None:
    """Fork, setsid, fork: the caller (the agent's launcher) gets "ok <pid>" or "error: …" on stdout once
    the shim listens and the game was started; the shim itself is nobody's child."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(ready_w)
        chunks = []
        while chunk := os.read(ready_r, 4096):
            chunks.append(chunk)
        os.waitpid(pid, 0)
        answer = b"".join(chunks).decode() or "error: the shim died before it was ready"
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()
        os._exit(0 if answer.startswith("ok") else 1)
    os.close(ready_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    for name in IGNORED_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    errors = os.open(run_dir / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(errors, 2)
    os.close(null)
    os.close(errors)
    try:
        launch = json.loads((run_dir / LAUNCH_NAME).read_text(encoding="utf-8"))
        shim = Shim(run_dir, launch)
        shim.start()
    except Exception as exc:  # the launcher reports it; nothing else would
        with contextlib.suppress(OSError):
            os.write(ready_w, f"error: {type(exc).__name__}: {exc}".encode())
        os._exit(1)
    os.write(ready_w, f"ok {os.getpid()}".encode())
    os.close(ready_w)
    try:
        shim.run()
    except Exception as exc:
        sys.stderr.write(f"shim failed: {type(exc).__name__}: {exc}\n")
        os._exit(1)
    os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -I -m pentad.agent.shim <run dir>\n")
        return 2
    run_dir = Path(argv[1])
    if not (run_dir / LAUNCH_NAME).is_file():
        sys.stderr.write(f"no {LAUNCH_NAME} in {run_dir}\n")
        return 2
    os.umask(0o077)
    _daemonize(run_dir)
    return 0  # pragma: no cover (both processes leave through os._exit)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
