"""Real `pentad serve` processes for end-to-end tests: started on loopback, awaited, always stopped."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 60.0


def log_tail(log_path: Path, lines: int = 20, width: int = 1200) -> str:
    """The last lines of the server log, each cut in the middle: a JSON traceback ends with its cause."""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(
        line if len(line) <= width else f"{line[:300]} … {line[-(width - 300) :]}" for line in tail
    )


@contextlib.contextmanager
def running(
    command: list[str],
    ready_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_status: bool = True,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process until the block ends, whatever happens in it, once `ready_url` answers
    (with a 2xx unless `ready_status` is False: then any HTTP answer will do)."""
    name = Path(command[0]).name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{log_tail(log_path)}")
            try:
                response = httpx.get(ready_url, timeout=2)
                if ready_status:
                    response.raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not come up:\n{log_tail(log_path)}")
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def serving(env: dict[str, str], cwd: Path, port: int, log_path: Path) -> Iterator[str]:
    """`pentad serve` on a loopback port until the block ends, whatever happens in it."""
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    base_url = f"http://{HOST}:{port}"
    with running(command, f"{base_url}/healthz", log_path, env=env, cwd=cwd):
        yield base_url
