"""The agent's file manager and archives, without a panel: confinement (traversal, absolute paths, symlinks
out, archive entries with `..`, absolute names, links), archive bombs (entry count, expanded size, ratio),
the disk limit at write time (nothing partial left), and backups made, pushed back and restored. No
database, no sandbox (as root, files get the server's own uid, as in production)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pentad.agent.files import ServerFiles, file_call
from pentad.agent.runtime import AgentError
from pentad.agent.settings import AgentSettings
from pentad.panel_wire import archives
from pentad.panel_wire import protocol as wire

SERVER = "srv1"
MiB = 1024 * 1024


@pytest.fixture
def files(tmp_path: Path) -> ServerFiles:
    settings = AgentSettings(data_dir=tmp_path / "agent", sandbox="none", nft_table="pentad_agent_test")
    service = ServerFiles(settings)
    root = service.root(SERVER)
    (root / "config").mkdir()
    (root / "config" / "game.cfg").write_text("port=1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("credential")
    return service


def outside(files: ServerFiles) -> Path:
    return files.settings.data_dir.parent / "outside"


def everything_outside(files: ServerFiles) -> list[str]:
    return sorted(str(path.relative_to(outside(files))) for path in outside(files).rglob("*"))


def tar_of(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tarred:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tarred.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def put(files: ServerFiles, path: str, data: bytes) -> None:
    (files.root(SERVER) / path).write_bytes(data)


def call(files: ServerFiles, params: wire.Frame) -> dict[str, Any]:
    return file_call(files, SERVER, params)


def upload(files: ServerFiles, path: str, data: bytes, *, quota: int = 0) -> None:
    for offset in range(0, len(data), wire.CHUNK_BYTES):
        chunk = data[offset : offset + wire.CHUNK_BYTES]
        params = wire.FileUploadParams(
            upload_id="upload-helper",
            path=path,
            offset=offset,
            data=base64.b64encode(chunk).decode(),
            final=offset + len(chunk) == len(data),
            quota_bytes=quota,
        )
        call(files, params)


@pytest.mark.parametrize(
    "path", ["../outside/secret", "config/../../outside/secret", "/etc/passwd", "a\\..\\b", "x\x00y"]
)
def test_paths_outside_are_refused_by_every_operation(files: ServerFiles, path: str) -> None:
    for params in (
        wire.FileListParams(path=path),
        wire.FileReadParams(path=path),
        wire.FileUploadParams(upload_id="u" * 16, path=path, offset=0, data="", final=True),
        wire.FileRenameParams(source="config/game.cfg", target=path),
        wire.FileRenameParams(source=path, target="stolen"),
        wire.FileDeleteParams(paths=[path]),
        wire.FileMkdirParams(path=path),
        wire.FileExtractParams(path=path),
    ):
        with pytest.raises(AgentError) as refused:
            call(files, params)
        assert refused.value.code == "path_refused", (params, refused.value.message)
    assert (outside(files) / "secret").read_text() == "credential"
    assert everything_outside(files) == ["secret"]


def test_symlinks_pointing_out_are_never_followed(files: ServerFiles) -> None:
    root = files.root(SERVER)
    (root / "link").symlink_to(outside(files) / "secret")
    (root / "dirlink").symlink_to(outside(files))
    for params in (
        wire.FileReadParams(path="link"),
        wire.FileReadParams(path="dirlink/secret"),
        wire.FileListParams(path="dirlink"),
        wire.FileUploadParams(
            upload_id="u" * 16, path="dirlink/new", offset=0, data=base64.b64encode(b"x").decode(), final=True
        ),
        wire.FileUploadParams(
            upload_id="v" * 16, path="link", offset=0, data=base64.b64encode(b"x").decode(), final=True
        ),
        wire.FileMkdirParams(path="dirlink/made"),
        wire.FileRenameParams(source="config/game.cfg", target="dirlink/moved"),
    ):
        with pytest.raises(AgentError) as refused:
            call(files, params)
        assert refused.value.code == "path_refused", (params, refused.value.message)
    # deleting the links removes the links only
    assert call(files, wire.FileDeleteParams(paths=["link", "dirlink"])) == {"deleted": 2}
    assert everything_outside(files) == ["secret"]
    assert (outside(files) / "secret").read_text() == "credential"
    # a folder that holds a symlink out is archived without it
    (root / "config" / "out").symlink_to(outside(files) / "secret")
    made = call(files, wire.FileArchiveParams(names=["config"]))
    assert made["files"] == 1
    assert made["skipped"] == 1


def test_list_read_write_rename_delete_mkdir(files: ServerFiles) -> None:
    listing = call(files, wire.FileListParams(path=""))["entries"]
    assert [(entry["name"], entry["kind"]) for entry in listing] == [("config", "folder")]
    data = os.urandom(3 * MiB)
    for offset in range(0, len(data), wire.CHUNK_BYTES):
        chunk = data[offset : offset + wire.CHUNK_BYTES]
        call(
            files,
            wire.FileUploadParams(
                upload_id="upload-1",
                path="maps/big.bin",
                offset=offset,
                data=base64.b64encode(chunk).decode(),
                final=offset + len(chunk) == len(data),
            ),
        )
    assert (files.root(SERVER) / "maps" / "big.bin").read_bytes() == data
    read = call(files, wire.FileReadParams(path="maps/big.bin", offset=MiB, length=10))
    assert base64.b64decode(read["data"]) == data[MiB : MiB + 10]
    assert read["size"] == len(data)
    call(files, wire.FileMkdirParams(path="maps/old"))
    call(files, wire.FileRenameParams(source="maps/big.bin", target="maps/old/big.bin"))
    with pytest.raises(AgentError) as exists:
        call(files, wire.FileRenameParams(source="config/game.cfg", target="maps/old/big.bin"))
    assert exists.value.code == "exists"
    with pytest.raises(AgentError) as missing:
        call(files, wire.FileReadParams(path="maps/big.bin"))
    assert missing.value.code == "not_found"
    call(files, wire.FileDeleteParams(paths=["maps"]))
    assert sorted(os.listdir(files.root(SERVER))) == ["config"]


def test_the_disk_limit_is_enforced_at_write_time_and_leaves_nothing(files: ServerFiles) -> None:
    quota = 2 * MiB + 4096  # config/game.cfg takes a few bytes
    put(files, "world.dat", b"w" * MiB)
    chunk = base64.b64encode(b"x" * (wire.CHUNK_BYTES)).decode()
    call(
        files,
        wire.FileUploadParams(upload_id="upload-q", path="new.bin", offset=0, data=chunk, quota_bytes=quota),
    )
    second = wire.FileUploadParams(
        upload_id="upload-q", path="new.bin", offset=wire.CHUNK_BYTES, data=chunk, quota_bytes=quota
    )
    call(files, second)  # 1 + 0.5 + 0.5 MiB: at the limit, not past it
    third = wire.FileUploadParams(
        upload_id="upload-q", path="new.bin", offset=2 * wire.CHUNK_BYTES, data=chunk, quota_bytes=quota
    )
    with pytest.raises(AgentError) as refused:
        call(files, third)
    assert refused.value.code == "disk_quota"
    assert not (files.root(SERVER) / "new.bin").exists()
    assert list((files.settings.run_dir / SERVER / "uploads").iterdir()) == []
    # replacing a file counts the difference only: 1 MiB + 1.5 MiB > 2 MiB, but it replaces the 1 MiB
    upload(files, "world.dat", b"v" * (3 * MiB // 2), quota=quota)
    assert (files.root(SERVER) / "world.dat").stat().st_size == 3 * MiB // 2
    # extracting past the limit is refused before anything lands
    archive = tar_of([(member(f"big/{n}.bin"), b"z" * (MiB // 2)) for n in range(4)])
    put(files, "big.tar.gz", archive)
    with pytest.raises(AgentError) as extract:
        call(files, wire.FileExtractParams(path="big.tar.gz", quota_bytes=quota))
    assert extract.value.code == "disk_quota"
    assert not (files.root(SERVER) / "big").exists()
    # an archive that would not fit either
    put(files, "noise.bin", os.urandom(MiB // 2))
    with pytest.raises(AgentError) as archive_refused:
        call(files, wire.FileArchiveParams(names=["noise.bin", "world.dat"], quota_bytes=quota))
    assert archive_refused.value.code == "disk_quota"
    assert not [name for name in os.listdir(files.root(SERVER)) if name.startswith("archive-")]


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([(member("../evil"), b"x")], "unsafe_path"),
        ([(member("ok/../../evil"), b"x")], "unsafe_path"),
        ([(member("/etc/evil"), b"x")], "unsafe_path"),
        ([(member("link", tarfile.SYMTYPE, "/etc/passwd"), None)], "link"),
        ([(member("link", tarfile.SYMTYPE, "../outside"), None), (member("link/secret"), b"x")], "link"),
        (
            [(member("config/game.cfg"), b"x"), (member("hard", tarfile.LNKTYPE, "config/game.cfg"), None)],
            "link",
        ),
        ([(member("fifo", tarfile.FIFOTYPE), None)], "special_file"),
        ([(member("dev", tarfile.CHRTYPE), None)], "special_file"),
    ],
)
def test_unsafe_tar_entries_are_refused_before_anything_is_written(
    files: ServerFiles, entries: list[tuple[tarfile.TarInfo, bytes | None]], reason: str
) -> None:
    put(files, "evil.tar.gz", tar_of(entries))
    before = sorted(os.listdir(files.root(SERVER)))
    with pytest.raises(AgentError) as refused:
        call(files, wire.FileExtractParams(path="evil.tar.gz"))
    assert refused.value.code == "archive_refused"
    assert refused.value.message.startswith(reason)
    assert sorted(os.listdir(files.root(SERVER))) == before
    assert everything_outside(files) == ["secret"]
    assert (files.root(SERVER) / "config" / "game.cfg").read_text() == "port=1\n"


def test_unsafe_zip_entries_are_refused(files: ServerFiles) -> None:
    makers: tuple[tuple[str, Callable[[zipfile.ZipFile], None]], ...] = (
        ("traversal.zip", lambda z: z.writestr("../../evil", b"x")),
        ("absolute.zip", lambda z: z.writestr("/tmp/evil", b"x")),
        ("symlink.zip", lambda z: z.writestr(_symlink_info("link"), b"/etc/passwd")),
    )
    for name, make in makers:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped:
            make(zipped)
        put(files, name, buffer.getvalue())
        with pytest.raises(AgentError) as refused:
            call(files, wire.FileExtractParams(path=name))
        assert refused.value.code == "archive_refused", name
    assert sorted(os.listdir(files.root(SERVER))) == [
        "absolute.zip",
        "config",
        "symlink.zip",
        "traversal.zip",
    ]


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_archive_bombs_are_refused(files: ServerFiles) -> None:
    # a zip of 50 MiB of zeros is ~50 KiB: ratio ~1000
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("zeros.bin", bytes(50 * MiB))
    put(files, "bomb.zip", buffer.getvalue())
    with pytest.raises(AgentError) as ratio:
        call(files, wire.FileExtractParams(path="bomb.zip"))
    assert ratio.value.code == "archive_refused"
    assert ratio.value.message.startswith("ratio")
    with pytest.raises(AgentError) as size:
        call(files, wire.FileExtractParams(path="bomb.zip", max_bytes=10 * MiB, max_ratio=100_000))
    assert size.value.message.startswith("too_large")
    many = tar_of([(member(f"f{n}"), b"") for n in range(50)])
    put(files, "many.tar.gz", many)
    with pytest.raises(AgentError) as entries:
        call(files, wire.FileExtractParams(path="many.tar.gz", max_entries=20))
    assert entries.value.message.startswith("too_many_entries")
    assert not (files.root(SERVER) / "zeros.bin").exists()
    assert not (files.root(SERVER) / "f0").exists()


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_archive_then_extract_round_trips(files: ServerFiles, fmt: str) -> None:
    put(files, "config/other.cfg", b"a=2\n")
    made = call(files, wire.FileArchiveParams(folder="config", format=fmt))
    path = str(made["path"])
    assert path.startswith("config/archive-")
    assert path.endswith(fmt)
    call(files, wire.FileMkdirParams(path="restored"))
    extracted = call(files, wire.FileExtractParams(path=path, folder="restored"))
    assert extracted["files"] == 2
    # entries are named relative to the folder archived in (as Pterodactyl's file manager does)
    assert (files.root(SERVER) / "restored" / "other.cfg").read_bytes() == b"a=2\n"
    assert not (files.root(SERVER) / "restored" / "config").exists()

    # so an archive extracted where it was made puts its files back in place
    picked = call(files, wire.FileArchiveParams(folder="config", names=["other.cfg"], format=fmt))
    call(files, wire.FileDeleteParams(paths=["config/other.cfg"]))
    call(files, wire.FileExtractParams(path=str(picked["path"]), folder="config"))
    assert (files.root(SERVER) / "config" / "other.cfg").read_bytes() == b"a=2\n"


def test_backup_make_read_push_restore(files: ServerFiles) -> None:
    root = files.root(SERVER)
    put(files, "world.dat", os.urandom(MiB + 7))
    (root / "cache").mkdir()
    put(files, "cache/tmp.bin", b"skip me")
    made = call(files, wire.BackupMakeParams(backup_id="backup-01", ignore=["cache/"]))
    original = archives.summarize(root)
    data = b""
    while len(data) < int(made["size"]):
        part = call(files, wire.BackupReadParams(backup_id="backup-01", offset=len(data)))
        data += base64.b64decode(part["data"])
    assert hashlib.sha256(data).hexdigest() == made["sha256"]
    assert made["files"] == 2  # config/game.cfg and world.dat; cache/ ignored
    call(files, wire.BackupDropParams(backup_id="backup-01"))

    put(files, "world.dat", b"broken")
    put(files, "new-after-backup.txt", b"x")
    for offset in range(0, len(data), wire.CHUNK_BYTES):
        call(
            files,
            wire.BackupPushParams(
                backup_id="backup-02",
                offset=offset,
                data=base64.b64encode(data[offset : offset + wire.CHUNK_BYTES]).decode(),
            ),
        )
    with pytest.raises(AgentError) as mismatch:
        call(files, wire.BackupRestoreParams(backup_id="backup-02", sha256="0" * 64))
    assert mismatch.value.code == "checksum_mismatch"
    assert (root / "world.dat").read_bytes() == b"broken"  # nothing changed
    for offset in range(0, len(data), wire.CHUNK_BYTES):
        chunk = base64.b64encode(data[offset : offset + wire.CHUNK_BYTES]).decode()
        call(files, wire.BackupPushParams(backup_id="backup-02", offset=offset, data=chunk))
    restored = call(files, wire.BackupRestoreParams(backup_id="backup-02", sha256=str(made["sha256"])))
    assert restored["digest"] == made["digest"]
    assert not (root / "new-after-backup.txt").exists()
    assert not (root / "cache").exists()
    after = archives.summarize(root)
    assert after.files == original.files - 1
    assert after.digest == made["digest"]
