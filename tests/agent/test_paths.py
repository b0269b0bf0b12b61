"""Path confinement: reads and writes stay inside the root whatever the path says or the folder holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pentad.panel_wire import paths
from pentad.panel_wire.paths import PathRefused


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "server"
    root.mkdir()
    (root / "config").mkdir()
    (root / "config" / "game.cfg").write_text("port=1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("credential")
    return root


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside/secret", "parent"),
        ("config/../../outside/secret", "parent"),
        ("/etc/passwd", "absolute"),
        ("config\\..\\x", "backslash"),
        ("nul\x00byte", "nul"),
        ("x" * 256, "too_long"),
        ("", "is_root"),
        (".", "is_root"),
    ],
)
def test_paths_naming_outside_are_refused(root: Path, path: str, reason: str) -> None:
    with pytest.raises(PathRefused) as refused:
        paths.read_bytes(root, path)
    assert refused.value.reason == reason
    with pytest.raises(PathRefused):
        paths.write_bytes(root, path, b"x")


def test_symlinks_out_are_refused_for_reading_and_writing(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret"
    (root / "link").symlink_to(secret)
    (root / "dirlink").symlink_to(tmp_path / "outside")
    for path in ("link", "dirlink/secret"):
        with pytest.raises(PathRefused):
            paths.read_bytes(root, path)
        with pytest.raises(PathRefused):
            paths.write_bytes(root, path, b"overwritten")
    assert secret.read_text() == "credential"
    assert (root / "link").is_symlink()  # left as it was, not replaced
    assert not paths.exists(root, "link")


def test_hard_links_fifos_and_devices_are_refused(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret"
    os.link(secret, root / "hard")
    with pytest.raises(PathRefused) as refused:
        paths.write_bytes(root, "hard", b"overwritten")
    assert refused.value.reason == "not_a_file"
    assert secret.read_text() == "credential"
    os.mkfifo(root / "fifo")
    with pytest.raises(PathRefused) as refused:
        paths.read_bytes(root, "fifo")  # would block forever if opened without O_NONBLOCK
    assert refused.value.reason == "not_a_file"
    (root / "null").symlink_to("/dev/null")
    with pytest.raises(PathRefused):
        paths.read_bytes(root, "null")


def test_writes_inside_work_and_are_atomic(root: Path) -> None:
    paths.write_bytes(root, "config/game.cfg", b"port=2\n")
    paths.write_bytes(root, "new/deep/file.txt", b"hello")
    assert paths.read_bytes(root, "config/game.cfg") == b"port=2\n"
    assert paths.read_bytes(root, "./new/deep/file.txt") == b"hello"
    assert sorted(p.name for p in (root / "config").iterdir()) == ["game.cfg"]  # no temporary file left
    with pytest.raises(PathRefused) as refused:
        paths.read_bytes(root, "config/game.cfg", limit=3)
    assert refused.value.reason == "too_large"
    with pytest.raises(FileNotFoundError):
        paths.read_bytes(root, "missing.txt")
