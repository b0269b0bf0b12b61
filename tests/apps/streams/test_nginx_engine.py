"""The nginx-rtmp engine without nginx: the config it writes (no HLS, no key in any log format, the
callbacks' secret, single process when Pentad runs it), and its callbacks' checks of who calls (the
end-to-end half, with nginx, is test_ingest_nginx.py); and the RTSP pull's ffconcat list."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pentad.apps.streams.media.engines import nginx_config
from pentad.apps.streams.media.engines.base import Drop, Publication
from pentad.apps.streams.media.engines.nginx import CallbackError, NginxEngine
from pentad.apps.streams.media.rtsp import PullSource, concat_list
from pentad.apps.streams.settings import StreamsSettings

SECRET = "s3cr3t-for-the-callbacks"
PUBLISH = b"app=live&flashver=x&addr=203.0.113.9&clientid=7&call=publish&name=psk_x&type=live"


class Host:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket_dir = root
        self.processes: Any = None
        self.callback_secret: str | None = SECRET
        self.opened: list[str] = []

    async def open_stream(self, raw_key: str, *, engine: str, peer: str, drop: Drop) -> Publication | None:
        self.opened.append(engine)
        return None

    async def close_stream(self, publication: Publication, reason: str) -> None:
        return None


def _settings(**nginx: Any) -> StreamsSettings:
    return StreamsSettings.model_validate({"engine": "nginx", "rtmp_port": 19350, "nginx": nginx})


def test_the_config_writes_no_media_and_no_key_into_logs(tmp_path: Path) -> None:
    text = nginx_config.render(_settings(), prefix=tmp_path, callback_port=4242, secret=SECRET, managed=True)
    assert "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;" in text
    assert "master_process off;" in text  # the kernel kills it with Pentad: no orphaned worker
    assert "daemon off;" in text
    assert f"on_publish http://127.0.0.1:4242/on_publish?secret={SECRET};" in text
    assert f"on_update http://127.0.0.1:4242/on_update?secret={SECRET};" in text
    assert f"on_publish_done http://127.0.0.1:4242/on_publish_done?secret={SECRET};" in text
    config = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for forbidden in ("hls ", "hls_path", "record all", "exec", "push ", "$name", "$args"):
        assert forbidden not in config, forbidden
    assert "error.log warn;" in text  # nginx-rtmp names the stream (the key) at info
    assert "allow play 127.0.0.1;\n            deny play all;" in text
    system = nginx_config.render(
        _settings(), prefix=tmp_path, callback_port=4242, secret=SECRET, managed=False
    )
    assert "master_process on;" in system


def test_the_callback_secret_is_derived_and_stable() -> None:
    first = nginx_config.callback_secret(b"x" * 48)
    assert first == nginx_config.callback_secret(b"x" * 48)
    assert first != nginx_config.callback_secret(b"y" * 48)
    assert len(first) == 32


def test_the_config_is_private(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "nginx.conf"
    nginx_config.write(target, "secret")
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("peer", "target", "status"),
    [
        ("203.0.113.9", f"/on_publish?secret={SECRET}", 403),  # not in CALLBACK_NETWORKS
        (None, f"/on_publish?secret={SECRET}", 403),
        ("127.0.0.1", "/on_publish?secret=nope", 403),
        ("127.0.0.1", f"/on_play?secret={SECRET}", 404),
    ],
)
async def test_callbacks_from_outside_or_without_the_secret_are_refused(
    tmp_path: Path, peer: str | None, target: str, status: int
) -> None:
    host = Host(tmp_path)
    engine = NginxEngine(_settings(), host)
    with pytest.raises(CallbackError) as refused:
        await engine.handle(peer, b"POST", target.encode(), PUBLISH)
    assert refused.value.status == status
    assert host.opened == []  # the key was not even looked at


async def test_a_refused_key_is_answered_403(tmp_path: Path) -> None:
    host = Host(tmp_path)
    engine = NginxEngine(_settings(), host)
    status, headers = await engine.handle(
        "127.0.0.1", b"POST", f"/on_publish?secret={SECRET}".encode(), PUBLISH
    )
    assert (status, headers) == (403, {})
    assert host.opened == ["nginx"]
    assert engine.live() == {}
    assert await engine.drop(uuid.uuid4(), "key_revoked") is False


def test_the_rtsp_list_names_only_an_rtsp_url() -> None:
    settings = StreamsSettings()
    camera = uuid.uuid4()
    text = concat_list(PullSource(camera, "rtsp://u:it's@10.0.0.5/x"), settings)
    assert text.splitlines()[1] == "file 'rtsp://u:it'\\''s@10.0.0.5/x'"
    assert "option rtsp_transport tcp" in text
    assert "it's" not in repr(PullSource(camera, "rtsp://u:it's@10.0.0.5/x"))
    for bad in ("file:///etc/passwd", "rtsp://h/x\nfile '/etc/passwd'", "http://h/x"):
        with pytest.raises(ValueError, match="rtsp"):
            concat_list(PullSource(camera, bad), settings)
    with pytest.raises(ValueError, match="transport"):
        concat_list(PullSource(camera, "rtsp://h/x", "http"), settings)
