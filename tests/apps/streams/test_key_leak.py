"""The stream key never leaves the publisher: a synthetic camera publishes with its key to the built-in
RTMP engine of a real `pentad serve` (debug logging on), viewers fetch its HLS, an admin reads the API,
the metrics and the camera's live events; a revoked key and an unknown key try to publish too. Then every
byte the platform produced is searched for each key (whole, its secret part, and its first 16 characters,
which would catch a key cut short in a log line): the media dir's file names and contents, the whole data
dir (the SQLite database and its WAL included: only the key's hash is stored), the server's log, every
HTTP response body and header the test received, every hub frame, the command lines of the server's
children (ffmpeg), and /metrics.

The same scenario runs on the nginx-rtmp engine (nginx as the server's child, its prefix under the data
dir: config, logs, pid), so both engines are covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.apps.streams.media_node import require_nginx
from tests.apps.streams.support import (
    child,
    needs_ffmpeg,
    playlist_uris,
    probe_streams,
    publish_command,
    starts_on_keyframe,
)
from tests.factories import free_port
from tests.servers import HOST, VENV_BIN, log_tail, running

pytestmark = needs_ffmpeg

WAIT_SECONDS = 30.0


def _pentad(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run(
        [str(VENV_BIN / "pentad"), *args], env=env, cwd=cwd, check=True, capture_output=True, timeout=90
    )


async def _until(condition: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT_SECONDS:.0f} s\n{log_tail(log)}")
        await asyncio.sleep(0.2)


def _descendants(pid: int) -> list[int]:
    """The process ids below `pid` (its children, theirs, …), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child_pid for child_pid, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def _command_lines(pids: list[int]) -> list[bytes]:
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    return found


def _ended(process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    return lambda: process.poll() is not None


def _needles(key: str) -> list[bytes]:
    secret = key.removeprefix("psk_")
    return [key.encode(), secret.encode(), secret[:16].encode()]


@contextlib.asynccontextmanager
async def _hub(base_url: str, token: str, topics: list[str], frames: list[str]) -> AsyncIterator[None]:
    """A hub client subscribed to `topics`, keeping every frame it receives in `frames`."""
    async with websockets.connect(base_url.replace("http://", "ws://") + "/ws") as socket:
        await socket.send(json.dumps({"op": "auth", "id": 1, "token": token}))
        frames.append(str(await socket.recv()))
        for number, topic in enumerate(topics, start=2):
            await socket.send(json.dumps({"op": "subscribe", "id": number, "topic": topic}))
            answer = str(await socket.recv())
            frames.append(answer)
            assert json.loads(answer)["ok"], answer

        async def read() -> None:
            async for frame in socket:
                frames.append(str(frame))

        reader = asyncio.create_task(read())
        try:
            yield
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader


async def test_the_stream_key_appears_nowhere_in_what_the_builtin_engine_produces(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    await _leak_scenario(tmp_path_factory, "builtin")


async def test_the_stream_key_appears_nowhere_in_what_the_nginx_engine_produces(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same on nginx-rtmp: its config, error and access logs, pid file (all under the data dir here,
    MEDIA_DIR's default), the callbacks' answers as nginx got them (logged nowhere but tested through the
    publishers' outcome), and nginx and the pull among the server's children."""
    require_nginx()
    await _leak_scenario(tmp_path_factory, "nginx")


async def _leak_scenario(tmp_path_factory: pytest.TempPathFactory, engine: str) -> None:
    data_dir = tmp_path_factory.mktemp("key-leak-data")
    outside = tmp_path_factory.mktemp("key-leak-test")  # the publishers' own logs: they hold the key
    rtmp_port, http_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "DEBUG",
        "PENTAD_APPS": "streams",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{http_port}",
        "PENTAD_STREAMS__RTMP_HOST": "127.0.0.1",
        "PENTAD_STREAMS__RTMP_PORT": str(rtmp_port),
        "PENTAD_STREAMS__ENGINE": engine,
    }
    email, password = "admin@example.com", secrets.token_urlsafe(18)
    _pentad(env, data_dir, "migrate")
    _pentad(env, data_dir, "user", "create", "--email", email, "--password", password, "--role", "admin")
    server_log = outside / "server.log"
    responses: list[httpx.Response] = []
    frames: list[str] = []
    argv: list[bytes] = []

    async with httpx.AsyncClient(timeout=10) as http:

        async def get(url: str, **kwargs: Any) -> httpx.Response:
            response = await http.get(url, **kwargs)
            responses.append(response)
            return response

        async def post(url: str, **kwargs: Any) -> httpx.Response:
            response = await http.post(url, **kwargs)
            responses.append(response)
            return response

        base = f"http://{HOST}:{http_port}"
        command = [
            str(VENV_BIN / "pentad"),
            "serve",
            "--host",
            HOST,
            "--port",
            str(http_port),
            "--workers",
            "1",
        ]
        with running(command, f"{base}/healthz", server_log, env=env, cwd=data_dir) as server:
            login = await post(f"{base}/api/auth/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            admin = {"Authorization": f"Bearer {token}"}
            created = await post(
                f"{base}/api/streams/cameras", json={"name": "Gate", "visibility": "public"}, headers=admin
            )
            assert created.status_code == 201, created.text
            camera_id = created.json()["id"]
            keys_url = f"{base}/api/streams/cameras/{camera_id}/keys"
            made = await post(keys_url, json={"name": "obs"}, headers=admin)
            key = made.json()["key"]  # the one response allowed to hold it: the owner's, once
            responses.remove(made)
            revoked_made = await post(keys_url, json={"name": "old"}, headers=admin)
            revoked = revoked_made.json()["key"]
            responses.remove(revoked_made)
            revoking = await http.delete(f"{keys_url}/{revoked_made.json()['id']}", headers=admin)
            assert revoking.status_code == 204
            unknown = "psk_" + secrets.token_urlsafe(32)
            assert len(unknown) == 47

            rtmp = f"rtmp://127.0.0.1:{rtmp_port}/live"
            async with _hub(base, token, [f"streams.camera.{camera_id}", "streams.directory"], frames):
                # Refused keys first: nothing may remember them either.
                for bad, name in ((revoked, "revoked"), (unknown, "unknown")):
                    command = publish_command(f"{rtmp}/{bad}", size="320x180")
                    with child(command, outside / f"{name}.log") as refused:
                        await _until(_ended(refused), f"the {name} key refused", server_log)
                    assert refused.returncode != 0

                playlist_url = f"{base}/streams/media/{camera_id}/index.m3u8"
                with child(publish_command(f"{rtmp}/{key}?obs=1", size="320x180"), outside / "good.log"):
                    ready: list[bool] = [False]

                    async def poll() -> None:
                        answer = await get(playlist_url)
                        ready[0] = answer.status_code == 200 and len(playlist_uris(answer.text)) >= 3

                    deadline = time.monotonic() + WAIT_SECONDS
                    while not ready[0]:
                        if time.monotonic() > deadline:
                            pytest.fail(f"no HLS within {WAIT_SECONDS:.0f} s\n{log_tail(server_log)}")
                        await poll()
                        await asyncio.sleep(0.3)
                    playlist = await get(playlist_url)
                    for uri in playlist_uris(playlist.text):
                        assert (await get(f"{base}/streams/media/{camera_id}/{uri}")).status_code == 200
                        # A real HLS client reads the engine's segments through the media route.
                        assert await asyncio.to_thread(
                            starts_on_keyframe, f"{base}/streams/media/{camera_id}/{uri}"
                        ), uri
                    streams = await asyncio.to_thread(probe_streams, playlist_url)
                    assert streams["video"]["codec_name"] == "h264"
                    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
                    assert streams["audio"]["codec_name"] == "aac"
                    await get(f"{base}/api/streams/cameras/{camera_id}", headers=admin)
                    await get(f"{base}/api/streams/cameras", headers=admin)
                    await get(f"{base}/api/streams/directory", headers=admin)
                    await get(keys_url, headers=admin)
                    await get(f"{base}/readyz")
                    await post(f"{base}/api/streams/cameras/{camera_id}/playback-token", headers=admin)
                    argv += _command_lines(_descendants(server.pid))
                    assert any(b"ffmpeg" in line for line in argv), (
                        "the packager is not a child of the server"
                    )
                    if engine == "nginx":
                        assert any(b"nginx" in line for line in argv), "nginx is not a child of the server"
                        assert any(b"rtmp://" in line for line in argv), "no pull from nginx"
                await _until(
                    lambda: any('"camera.offline"' in frame for frame in frames), "camera.offline", server_log
                )
                assert any('"camera.online"' in frame for frame in frames)
            metrics = await get(f"{base}/metrics", headers=admin)
            assert metrics.status_code == 200
        # The server has stopped: its log is complete.

    produced: dict[str, bytes] = {
        "server log": server_log.read_bytes(),
        "hub frames": "\n".join(frames).encode(),
        "children's argv": b"\n".join(argv),
    }
    for number, response in enumerate(responses):
        head = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        produced[f"response {number} {response.request.method} {response.request.url.path}"] = (
            f"{response.request.url}\n{head}\n".encode() + response.content
        )
    for path in sorted(data_dir.rglob("*")):
        produced[f"name of {path}"] = str(path.relative_to(data_dir)).encode()
        if path.is_file():
            produced[f"file {path}"] = path.read_bytes()
    assert any(label.endswith(".ts") for label in produced), "the engine wrote no HLS"
    if engine == "nginx":
        assert any(label.endswith("nginx.conf") for label in produced), "nginx's config was not searched"
        assert any(label.endswith("rtmp_access.log") for label in produced), "nginx's log was not searched"
    log = produced["server log"]
    assert log.count(b'"publish_refused"') == 2, "the refused keys were not refused by the engine"
    assert b'"stream_opened"' in log

    leaks = [
        f"{label} holds {needle.decode()[:8]}…"
        for label, content in produced.items()
        for key_text in (key, revoked, unknown)
        for needle in _needles(key_text)
        if needle in content
    ]
    assert leaks == []
