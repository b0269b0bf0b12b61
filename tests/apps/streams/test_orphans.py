"""No ffmpeg outlives Pentad: a real `pentad serve` with a live stream is SIGKILLed, its packager dies with
it (PR_SET_PDEATHSIG, own process group), and after a restart none lingers and publishing works again."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apps.streams.media_node import MediaNode, node_env, packager_pids, publishing, require_ffmpeg
from tests.factories import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MediaNode]:
    require_ffmpeg()
    media = MediaNode(node_env(tmp_path), tmp_path / "serve.log", free_port())
    media.prepare()
    return media


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _live(playlist: Path) -> bool:
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return False
    return "#EXTINF" in text and "#EXT-X-ENDLIST" not in text


def test_a_sigkilled_server_leaves_no_ffmpeg_behind(node: MediaNode, tmp_path: Path) -> None:
    camera = node.new_camera()
    _, key = node.new_key(camera)
    orphans: list[int] = []
    try:
        with node.serving() as server, publishing(node.rtmp_url(key), tmp_path / "first.log"):
            node.wait(lambda: node.playlist(camera).exists(), "the stream is packaged")
            orphans = packager_pids(camera)
            assert len(orphans) == 1
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            node.wait(lambda: all(_gone(pid) for pid in orphans), "the packager died with the server")

        node.log = tmp_path / "restarted.log"
        with node.serving(), publishing(node.rtmp_url(key), tmp_path / "second.log"):
            assert all(_gone(pid) for pid in orphans)
            node.wait(lambda: _live(node.playlist(camera)), "live again")
            assert node.log_events("abandoned_sessions_ended")
            node.wait(lambda: len(packager_pids(camera)) == 1, "one new packager")
            assert not set(packager_pids(camera)) & set(orphans)
        node.wait(lambda: not packager_pids(camera), "the packager stopped with the server")
        assert node.camera_state(camera) == "offline"  # the killed run's session was ended too
    finally:
        for pid in orphans + packager_pids(camera):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
