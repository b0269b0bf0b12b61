"""deploy/compose: a valid Compose file (the compose-spec JSON schema), every secret it needs documented in
.env.example, every file it mounts present, Pentad's environment accepted by `pentad config show`, and
the nginx in front a configuration nginx itself accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.support import ROOT, VALID_SECRETS, config_show, env_example, interpolate
from tests.factories import free_port
from tests.servers import VENV_BIN

COMPOSE = ROOT / "deploy" / "compose"
SCHEMA = Path(__file__).with_name("compose-spec.json")
"""The Compose specification's schema (github.com/compose-spec/compose-spec, schema/compose-spec.json,
Apache-2.0), kept here because the tests run offline."""
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
PENTAD_SERVICES = {"migrate", "metrics-token", "web", "worker", "streams", "streams-nginx-config"}


def _filled() -> dict[str, str]:
    values = env_example(COMPOSE / ".env.example")
    return {
        name: value or VALID_SECRETS.get(name, f"example-{name.lower()}-value")
        for name, value in values.items()
    }


def _compose(values: dict[str, str] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        interpolate((COMPOSE / "compose.yaml").read_text(), values or _filled())
    )
    return document


def test_the_compose_file_follows_the_compose_specification() -> None:
    document = _compose()
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)
    services = document["services"]
    assert PENTAD_SERVICES | {
        "postgres",
        "redis",
        "minio",
        "nginx",
        "prometheus",
        "grafana",
        "nginx-rtmp",
    } <= set(services)
    assert services["web"]["deploy"]["replicas"] == 2
    # The web and worker start only after the migration has completed.
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # A typo'd field is caught by the same check.
    services["web"]["deplyo"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_every_required_variable_is_documented_and_refused_when_empty() -> None:
    text = (COMPOSE / "compose.yaml").read_text()
    documented = env_example(COMPOSE / ".env.example")
    required = {line.split("${", 1)[1].split(":?", 1)[0] for line in text.splitlines() if ":?" in line}
    assert required, "the compose file requires its secrets"
    assert required <= set(documented)
    for name in required:
        values = _filled()
        values[name] = ""
        with pytest.raises(KeyError, match=name):
            _compose(values)


def test_every_mounted_file_exists() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name} mounts {source}, which is missing"


@pytest.mark.parametrize("service", sorted(PENTAD_SERVICES))
def test_pentad_accepts_each_service_environment(service: str) -> None:
    environment = {key: str(value) for key, value in _compose()["services"][service]["environment"].items()}
    shown = config_show(environment)
    assert shown.returncode == 0, shown.stderr
    assert "unknown setting" not in shown.stderr, shown.stderr


@pytest.mark.skipif(shutil.which("nginx") is None, reason="Debian's nginx is not installed")
def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    # `nginx -t` resolves upstream names: the compose network's `web` becomes loopback here.
    server = (
        (COMPOSE / "nginx" / "pentad.conf").read_text().replace("server web:8000", "server 127.0.0.1:8000")
    )
    server = server.replace("server streams:8000", "server 127.0.0.1:8001")
    server = server.replace("listen 80;", "listen 127.0.0.1:18080;")
    (tmp_path / "pentad.conf").write_text(server)
    temp = "\n".join(f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        "pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\naccess_log off;\n"
        f"client_body_temp_path {tmp_path}/body;\n{temp}\ninclude {tmp_path}/pentad.conf;\n}}\n"
    )
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_prometheus_scrapes_the_web_replicas_and_the_worker_with_the_token() -> None:
    document = _compose()
    config = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"pentad-web", "pentad-worker"}
    token_mount = next(
        volume.split(":")[1]
        for volume in document["services"]["prometheus"]["volumes"]
        if "prometheus-token" in volume
    )
    worker_port = document["services"]["worker"]["environment"]["PENTAD_JOBS__METRICS_PORT"]
    for job in jobs.values():
        assert job["authorization"]["credentials_file"].startswith(token_mount + "/")
    assert jobs["pentad-worker"]["dns_sd_configs"][0]["port"] == int(worker_port)
    assert jobs["pentad-web"]["dns_sd_configs"][0]["names"] == ["web", "streams"]


def test_the_streams_node_runs_nginx_rtmp_beside_it_and_gets_the_media_routes() -> None:
    services = _compose()["services"]
    streams, rtmp = services["streams"], services["nginx-rtmp"]
    environment = streams["environment"]
    assert environment["PENTAD_STREAMS__ENGINE"] == "nginx"
    assert environment["PENTAD_STREAMS__NGINX__MANAGE"] == "false"
    # nginx-rtmp shares the streams node's network namespace: callbacks and pulls stay on loopback, and
    # the RTMP port is published by the streams service.
    assert rtmp["network_mode"] == "service:streams"
    assert environment["PENTAD_STREAMS__NGINX__CALLBACK_HOST"] == "127.0.0.1"
    assert any(port.endswith(":" + environment["PENTAD_STREAMS__RTMP_PORT"]) for port in streams["ports"])
    # The config is written from the same settings as the node's (the secret is derived from them), into
    # the volume nginx-rtmp runs from, at the prefix the node expects.
    assert services["streams-nginx-config"]["environment"] == environment
    prefix = environment["PENTAD_STREAMS__NGINX__PREFIX"]
    assert f"-o {prefix}/nginx.conf" in services["streams-nginx-config"]["command"][0]
    assert any(volume.endswith(":" + prefix) for volume in rtmp["volumes"])
    assert (ROOT / "deploy" / "docker" / rtmp["build"]["dockerfile"]).exists()
    # The web replicas are not the media node: no media plane, and nginx sends the media routes to
    # `streams` only.
    assert services["web"]["environment"]["PENTAD_STREAMS__MEDIA_PLANE"] == "false"
    assert "PENTAD_STREAMS__MEDIA_PLANE" not in environment
    config = (COMPOSE / "nginx" / "pentad.conf").read_text()
    media = config.split("location /streams/media/", 1)[1].split("}", 1)[0]
    assert "proxy_pass http://pentad_streams;" in media
    assert "server streams:8000" in config


@pytest.mark.skipif(
    shutil.which("nginx") is None or not Path(RTMP_MODULE).exists(),
    reason="Debian's nginx with libnginx-mod-rtmp is not installed",
)
def test_nginx_rtmp_accepts_the_config_the_streams_node_writes(tmp_path: Path) -> None:
    """What `streams-nginx-config` runs, with the streams node's environment (its prefix and port moved to
    this machine's free ones, the database to a file), passes `nginx -t` with the rtmp module."""
    environment = {
        key: str(value)
        for key, value in _compose()["services"]["streams-nginx-config"]["environment"].items()
    }
    prefix = tmp_path / "nginx-rtmp"
    environment.update(
        PENTAD_STREAMS__NGINX__PREFIX=str(prefix),
        PENTAD_STREAMS__RTMP_HOST="127.0.0.1",
        PENTAD_STREAMS__RTMP_PORT=str(free_port()),
        PENTAD_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        PENTAD_DATA_DIR=str(tmp_path),
    )
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    written = subprocess.run(
        [str(VENV_BIN / "pentad"), "streams", "nginx-config", "--managed", "-o", str(prefix / "nginx.conf")],
        env={**clean, **environment},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    assert (prefix / "nginx.conf").stat().st_mode & 0o077 == 0
    (prefix / "logs").mkdir()
    checked = subprocess.run(
        ["nginx", "-t", "-e", "stderr", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
