"""The nginx.conf of the nginx-rtmp engine (`pentad streams nginx-config`, and what the engine writes for
the nginx it runs itself).

What it makes nginx do, and why:

- nginx-rtmp takes publishers on RTMP_HOST:RTMP_PORT, application NGINX__APPLICATION (`live`), and asks
  Pentad over loopback HTTP: `on_publish` (may this key publish? Pentad answers 302 with an internal
  stream name, or 403), `on_update` every NGINX__UPDATE_INTERVAL seconds (403 drops a publisher whose key
  was revoked), `on_publish_done`. Each callback URL carries the shared secret.
- nginx writes no HLS, no recording, no exec: nginx-rtmp's HLS and record modules name their files after
  the name the publisher sent (the key), even after an on_publish redirect renamed the stream (nginx-rtmp
  #777, #1013, #1705). Pentad plays the renamed stream back over loopback (only loopback may play) and
  packages it itself, under the camera's id.
- Logs never hold the stream name: the error log is at `warn` (nginx-rtmp logs `publish: name='…'` at
  `info`), and the RTMP access log's format has no `$name` or `$args`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

from pentad.apps.streams.settings import StreamsSettings

CALLBACK_LABEL = b"pentad.streams.nginx-callback.v1"
ACCESS_LOG_FORMAT = (
    '$remote_addr [$time_local] $command "$app" $bytes_received $bytes_sent ($session_readable_time)'
)


def callback_secret(signing_secret: bytes) -> str:
    """The shared secret of nginx's callbacks, derived from the platform's signing secret (so the
    config written by the CLI and the running engine agree without storing one)."""
    digest = hmac.new(signing_secret, CALLBACK_LABEL, hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def nginx_prefix(settings: StreamsSettings, media_root: Path) -> Path:
    return Path(settings.nginx.prefix) if settings.nginx.prefix else media_root / "nginx"


def loopback_for(host: str) -> str:
    """The address Pentad plays nginx's streams from (and that alone may play)."""
    if host in ("", "0.0.0.0", "127.0.0.1", "localhost"):  # noqa: S104 (the wildcard is read, not bound)
        return "127.0.0.1"
    if host in ("::", "::1"):
        return "::1"
    return host


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def callback_base(settings: StreamsSettings, port: int) -> str:
    host = loopback_for(settings.nginx.callback_host)
    return f"http://{_url_host(host)}:{port}"


def render(
    settings: StreamsSettings,
    *,
    prefix: Path,
    callback_port: int,
    secret: str,
    managed: bool,
) -> str:
    """The whole nginx.conf. `managed`: Pentad runs nginx as its child (foreground, one process, so the
    kernel kills it with Pentad: no orphaned worker keeps the port); otherwise nginx runs as a service of
    its own (systemd) and forks as usual."""
    nginx = settings.nginx
    base = callback_base(settings, callback_port)
    query = f"?secret={secret}"
    play_from = loopback_for(settings.rtmp_host)
    listen = f"{_url_host(settings.rtmp_host)}:{settings.rtmp_port}"
    logs = prefix / "logs"
    process = "daemon off;\nmaster_process off;\n" if managed else "daemon on;\nmaster_process on;\n"
    return f"""# nginx-rtmp ingest for Pentad streams: written by Pentad (`pentad streams nginx-config`).
# Holds the callbacks' shared secret: keep it private (mode 0600). Do not add hls/record/exec/push:
# they would name files and processes after the stream key.
load_module {nginx.module};
{process}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {logs / "error.log"} warn;

events {{
    worker_connections 4096;
}}

rtmp {{
    log_format pentad '{ACCESS_LOG_FORMAT}';
    access_log {logs / "rtmp_access.log"} pentad;

    server {{
        listen {listen};
        chunk_size 4096;
        timeout {int(settings.idle_timeout)}s;
        notify_method post;

        application {nginx.application} {{
            live on;
            record off;
            wait_key on;
            publish_notify on;
            drop_idle_publisher {int(settings.idle_timeout)}s;
            allow publish all;
            allow play {play_from};
            deny play all;
            on_publish {base}/on_publish{query};
            on_publish_done {base}/on_publish_done{query};
            on_update {base}/on_update{query};
            notify_update_timeout {nginx.update_interval}s;
            notify_relay_redirect off;
        }}
    }}
}}
"""


def write(path: Path, text: str) -> None:
    """Write the config readable by its owner alone (it holds the callbacks' secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    temporary.replace(path)
