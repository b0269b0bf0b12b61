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
def serving(env: dict[str, str], cwd: Path, port: int, log_path: Path) -> Iterator[str]:
    """`pentad serve` on a loopback port until the block ends, whatever happens in it."""
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base_url = f"http://{HOST}:{port}"
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while True:
                if process.poll() is not None:
                    pytest.fail(f"pentad serve exited with {process.returncode}:\n{log_tail(log_path)}")
                try:
                    httpx.get(f"{base_url}/healthz", timeout=2).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"pentad serve did not come up:\n{log_tail(log_path)}")
                    time.sleep(0.2)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
