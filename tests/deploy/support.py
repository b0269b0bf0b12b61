"""What the deploy tests share: `pentad config show` as a judge of an environment, compose interpolation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PENTAD = str(Path(sys.executable).parent / "pentad")
VALID_SECRETS = {
    "PENTAD_CRYPTO__KEYS": "k1:" + "A" * 43 + "=",
    "PENTAD_AUTH__SECRET_KEY": "s" * 48,
    "PENTAD_ADMIN__EMAIL": "admin@example.com",
    "PENTAD_ADMIN__PASSWORD": "a-long-enough-password",
}
"""Stand-ins for the secrets a deployment supplies (shape-valid, never used to encrypt anything)."""


def config_show(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pentad config show` (every app enabled unless PENTAD_APPS says otherwise) with `environment` and
    nothing else of ours: it fails on an invalid value and warns about a variable no setting has."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    with tempfile.TemporaryDirectory() as data:
        clean.update(environment)
        clean["PENTAD_DATA_DIR"] = data
        return subprocess.run(
            [PENTAD, "config", "show"],
            env=clean,
            cwd=data,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$$`; a required variable that is
    missing or empty raises KeyError, as `docker compose` refuses to start."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, argument = match.groups()
        value = values.get(name, "")
        if kind == "?" and not value:
            raise KeyError(f"{name}: {argument}")
        if kind == "-" and not value:
            return argument
        return value

    return _VARIABLE.sub(one, text)


def env_example(path: Path) -> dict[str, str]:
    """The variables an .env.example file names, with the values it gives (empty for the secrets)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found
