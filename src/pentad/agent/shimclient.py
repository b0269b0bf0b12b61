"""The agent's side of a shim's socket (pentad.agent.shim): launch a shim, attach and re-attach to it,
stream its console, send a line, send a signal, ask its status."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pentad.agent.shim import LAUNCH_NAME, SOCKET_NAME, read_state, write_json

FRAME_LIMIT = 16 * 1024 * 1024


class ShimError(Exception):
    """The shim refused a request or went away. `code`: the shim's error word, or "gone"."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


async def launch(run_dir: Path, launch: dict[str, Any], *, timeout: float = 30.0) -> int:  # noqa: ASYNC109
    """Write launch.json and start a shim for it; returns the shim's pid once it listens and the game was
    started (ShimError "launch_failed" with the shim's reason otherwise)."""
    await asyncio.to_thread(_write_launch, run_dir, launch)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-m",
        "pentad.agent.shim",
        str(run_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise ShimError("launch_failed", "the shim did not start in time") from None
    answer = out.decode(errors="replace").strip()
    if process.returncode != 0 or not answer.startswith("ok "):
        reason = answer or err.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise ShimError("launch_failed", reason)
    return int(answer.split()[1])


def _write_launch(run_dir: Path, launch: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_json(run_dir / LAUNCH_NAME, launch)


class ShimClient:
    """One connection to one shim. `frames()` yields the shim's "out" and "exit" frames in order; replies
    to requests go to the awaiting call. After the shim closed the connection, frames() ends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())
        self.closed = False

    @classmethod
    async def connect(cls, run_dir: Path) -> ShimClient:
        """Connect to the shim of `run_dir` (ShimError "gone" when no shim listens there)."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(run_dir / SOCKET_NAME), limit=FRAME_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ShimError("gone", f"no shim listens in {run_dir}: {exc}") from None
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                try:
                    frame = json.loads(line)
                except ValueError:
                    continue
                if frame.get("t") == "reply":
                    future = self._pending.pop(frame.get("id") or 0, None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                else:
                    self._frames.put_nowait(frame)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.closed = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ShimError("gone", "the shim closed the connection"))
            self._pending.clear()
            self._frames.put_nowait(None)

    async def request(self, op: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:  # noqa: ASYNC109
        """One request; the reply (ShimError with the shim's error word when it says ok: false)."""
        if self.closed:
            raise ShimError("gone", "the shim closed the connection")
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            self._writer.write(json.dumps({"op": op, "id": ident, **fields}).encode() + b"\n")
            await self._writer.drain()
            reply = await asyncio.wait_for(future, timeout)
        except (ConnectionError, TimeoutError) as exc:
            self._pending.pop(ident, None)
            raise ShimError("gone", f"{op}: {type(exc).__name__}") from None
        if not reply.get("ok"):
            raise ShimError(str(reply.get("error") or "error"), str(reply.get("message") or ""))
        return reply

    async def attach(self, since: int | None = None, tail: int = 0) -> int:
        """Start streaming: lines after `since` (or the last `tail` lines), then every new one. Returns the
        shim's last sequence number at the time of attaching."""
        reply = await self.request("attach", since=since, tail=tail)
        return int(reply["seq"])

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        while (frame := await self._frames.get()) is not None:
            yield frame

    async def send_line(self, line: str) -> None:
        await self.request("send", line=line)

    async def signal(self, signum: int, target: str = "game") -> int:
        """Send `signum` to the game ("game") or to the whole sandbox ("all"); how many processes got it."""
        reply = await self.request("signal", signal=int(signum), target=target)
        return int(reply.get("sent", 0))

    async def status(self) -> dict[str, Any]:
        return await self.request("status")

    async def history(self, lines: int = 100) -> list[str]:
        reply = await self.request("history", lines=lines)
        return [str(line) for line in reply["lines"]]

    async def close(self) -> None:
        self.closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def query_status(run_dir: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """Blocking: the shim's status reply, or None when no shim answers (for `pentad agent status`)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(run_dir / SOCKET_NAME))
            sock.sendall(b'{"op":"status","id":1}\n')
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    reply = json.loads(data)
    return reply if isinstance(reply, dict) and reply.get("ok") else None


__all__ = ["ShimClient", "ShimError", "launch", "query_status", "read_state"]
