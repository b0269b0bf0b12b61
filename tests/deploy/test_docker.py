"""deploy/docker/Dockerfile: hadolint passes, the image is built the way docs/deploy.md says (multi-stage,
locked dependencies, non-root, a health check, no secret in a layer), and the environment the image sets
is one Pentad accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, VALID_SECRETS, config_show

DOCKER = ROOT / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|CRYPTO__KEYS|ACCESS_KEY", re.IGNORECASE)


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "nginx-rtmp.Dockerfile"])
def test_hadolint_passes(dockerfile: str) -> None:
    linted = subprocess.run(
        [str(HADOLINT), "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKER / dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install pentad\n")
    linted = subprocess.run(
        [str(HADOLINT), "--config", str(DOCKER / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert linted.returncode != 0
    assert "DL3007" in linted.stdout  # the latest tag


def test_the_image_is_multi_stage_non_root_and_healthchecked() -> None:
    instructions = _instructions()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) >= 3
    runtime = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    final = instructions[runtime:]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the runtime stage sets a user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert any(keyword == "HEALTHCHECK" and "/healthz" in args for keyword, args in final)
    entrypoint = next(args for keyword, args in final if keyword == "ENTRYPOINT")
    assert '"pentad"' in entrypoint
    # The locked dependencies: `uv sync --frozen`, the Makefile's uv version, `npm ci`.
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "uv sync --frozen --no-dev" in runs
    assert "npm ci --ignore-scripts" in runs
    makefile_uv = re.search(r"^UV_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert makefile_uv is not None
    assert f'"uv=={makefile_uv.group(1)}"' in runs
    assert "ffmpeg" in runs


def test_no_secret_is_baked_into_a_layer() -> None:
    for keyword, args in _instructions():
        if keyword in {"ENV", "ARG"}:
            for assignment in shlex.split(args):
                name = assignment.split("=", 1)[0]
                assert not SECRET_NAMES.search(name), f"{keyword} {name} would put a secret in the image"
        if keyword in {"COPY", "ADD"}:
            assert ".env" not in args.split()
    ignored = (ROOT / ".dockerignore").read_text().split()
    for private in (".env", ".git", ".venv", "var", "web/node_modules"):
        assert private in ignored


def test_what_the_image_copies_exists() -> None:
    for keyword, args in _instructions():
        if keyword == "COPY" and "--from=" not in args:
            *sources, _destination = [part for part in shlex.split(args) if not part.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing"


def test_pentad_accepts_the_images_environment() -> None:
    environment = {}
    for keyword, args in _instructions():
        if keyword == "ENV":
            for assignment in shlex.split(args):
                name, _, value = assignment.partition("=")
                if name.startswith("PENTAD_"):
                    environment[name] = value
    assert environment["PENTAD_ENVIRONMENT"] == "production"
    assert environment["PENTAD_SERVER__HOST"] == "0.0.0.0"
    environment.pop("PENTAD_DATA_DIR")  # a folder of the image: config_show gives a temporary one
    shown = config_show({**environment, **VALID_SECRETS})
    assert shown.returncode == 0, shown.stderr
    assert "unknown setting" not in shown.stderr, shown.stderr


def test_the_nginx_rtmp_image_is_non_root_and_runs_the_config_pentad_writes() -> None:
    text = (DOCKER / "nginx-rtmp.Dockerfile").read_text()
    assert "libnginx-mod-rtmp" in text
    assert "USER 10001:10001" in text
    assert not SECRET_NAMES.search(re.sub(r"#.*", "", text))
    assert '"-c", "/var/lib/nginx-rtmp/nginx.conf"' in text
