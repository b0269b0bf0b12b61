"""The `pentad` command, run as a user runs it: a real process against a fresh SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

import pentad.apps as pentad_apps
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import Database
from pentad.core.jobs.queue import enqueue
from pentad.core.mail import SEND_MAIL
from tests.factories import free_port
from tests.servers import serving

PENTAD = [sys.executable, "-m", "pentad"]


def _environment(folder: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("PENTAD_")}
    values.update(
        PENTAD_DATA_DIR=str(folder),
        PENTAD_DATABASE__URL=f"sqlite+aiosqlite:///{folder}/pentad.db",
        PENTAD_LOG__LEVEL="WARNING",
    )
    return values


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return _environment(tmp_path)


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `pentad migrate` per module (every app's migrations take seconds); tests copy its result."""
    folder = tmp_path_factory.mktemp("migrated")
    pentad(_environment(folder), "migrate")
    return folder / "pentad.db"


@pytest.fixture
def migrated(env: dict[str, str], migrated_database: Path, tmp_path: Path) -> dict[str, str]:
    """`env` with its database already migrated to the heads (what `pentad migrate` leaves)."""
    shutil.copy(migrated_database, tmp_path / "pentad.db")
    return env


def pentad(
    env: dict[str, str], *args: str, check: bool = True, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*PENTAD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
        cwd=cwd,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def pentad_here(
    env: dict[str, str], *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`pentad ARGS` run inside this process (click's runner, `env` as the whole PENTAD_ environment):
    the same command line and output without paying a Python start-up and the imports per call. Tests of
    an app's commands use it; tests of the process itself (signals, exit codes of `serve`) use `pentad`."""
    from click.testing import CliRunner

    from pentad.cli import main

    isolated = {key: None for key in os.environ if key.startswith("PENTAD_")}
    isolated.update({key: value for key, value in env.items() if key.startswith("PENTAD_")})
    outcome = CliRunner(env=isolated).invoke(main, list(args), input=stdin, catch_exceptions=False)
    result = subprocess.CompletedProcess(
        ["pentad", *args], outcome.exit_code, stdout=outcome.stdout, stderr=outcome.stderr
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_user_and_api_key_lifecycle(env: dict[str, str]) -> None:
    assert "up to date" in pentad(env, "migrate").stdout  # a real process; the rest run in this one
    pentad_here(
        env,
        "user",
        "create",
        "--email",
        "Ops@Example.com",
        "--password",
        "a long cli password",
        "--role",
        "admin",
    )
    listed = pentad_here(env, "user", "list").stdout
    assert "ops@example.com\tadmin,member\tactive" in listed

    created = pentad_here(env, "apikey", "create", "--email", "ops@example.com", "--name", "deploy")
    token = created.stdout.strip()
    assert token.startswith("pak_")
    assert "shown only now" in created.stderr
    keys = pentad_here(env, "apikey", "list").stdout
    assert "deploy" in keys
    assert token not in keys
    key_id = keys.split("\t", 1)[0]
    pentad_here(env, "apikey", "revoke", key_id)
    assert "revoked" in pentad_here(env, "apikey", "list").stdout

    pentad_here(env, "user", "create", "--email", "m@example.com", "--password", "another long password")
    pentad_here(env, "user", "disable", "m@example.com")
    assert "m@example.com\tmember\tdisabled" in pentad_here(env, "user", "list").stdout


def test_errors_are_one_clear_line(migrated: dict[str, str]) -> None:
    env = migrated
    weak = pentad(env, "user", "create", "--email", "w@example.com", "--password", "short", check=False)
    assert weak.returncode != 0
    assert "at least 12 characters" in weak.stderr
    missing = pentad(env, "user", "disable", "ghost@example.com", check=False)
    assert missing.returncode != 0
    assert "No such user" in missing.stderr
    bad = pentad({**env, "PENTAD_SERVER__PORT": "eighty"}, "config", "show", check=False)
    assert bad.returncode != 0
    assert "invalid setting PENTAD_SERVER__PORT" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_config_show_masks_secrets(env: dict[str, str]) -> None:
    shown = pentad({**env, "PENTAD_MAIL__PASSWORD": "mail-s3cret"}, "config", "show").stdout
    assert '"password": "********"' in shown
    assert "mail-s3cret" not in shown


def test_config_show_includes_each_apps_settings_and_reports_unknown_variables(env: dict[str, str]) -> None:
    shown = pentad(
        {**env, "PENTAD_CHAT__MAX_MESSAGE_LENGTH": "123", "PENTAD_CHAT__MAX_MESAGE_LENGTH": "5"},
        "config",
        "show",
    )
    assert json.loads(shown.stdout)["chat"]["max_message_length"] == 123
    assert shown.stderr.splitlines() == [
        "warning: unknown setting PENTAD_CHAT__MAX_MESAGE_LENGTH is ignored; "
        "did you mean PENTAD_CHAT__MAX_MESSAGE_LENGTH?"
    ]


def test_a_bad_app_setting_stops_a_command_unless_the_app_is_disabled(env: dict[str, str]) -> None:
    bad = {**env, "PENTAD_CHAT__HISTORY_PAGE_MAX": "many"}
    stopped = pentad(bad, "migrate", check=False)
    assert stopped.returncode != 0
    assert "invalid setting PENTAD_CHAT__HISTORY_PAGE_MAX: Input should be a valid integer" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    disabled = pentad({**bad, "PENTAD_APPS": "[]"}, "config", "show")
    assert json.loads(disabled.stdout)["chat"] is None
    assert "invalid setting PENTAD_CHAT__HISTORY_PAGE_MAX" in disabled.stderr
    assert "(app chat is not enabled)" in disabled.stderr


def test_the_database_follows_the_data_directory(env: dict[str, str], tmp_path: Path) -> None:
    moved = {name: value for name, value in env.items() if name != "PENTAD_DATABASE__URL"}
    moved["PENTAD_DATA_DIR"] = str(tmp_path / "state")
    work = tmp_path / "work"
    work.mkdir()
    pentad(moved, "migrate", cwd=work)
    assert (tmp_path / "state" / "pentad.db").is_file()
    assert list(work.iterdir()) == []


def test_links_point_at_the_port_given_to_serve(migrated: dict[str, str], tmp_path: Path) -> None:
    """`pentad serve --port P` without PENTAD_SERVER__BASE_URL: an attachment's link is served on P."""
    env = {**migrated, "PENTAD_APPS": "chat", "PENTAD_ADMIN__PASSWORD": "a long admin password"}
    pentad_here(env, "chat", "tenant", "create", "acme", "--name", "Acme")
    created = pentad_here(env, "chat", "key", "create", "acme", "--name", "backend")
    server_key = created.stdout.splitlines()[-1]
    with serving(env, tmp_path, free_port(), tmp_path / "server.log") as base_url:
        backend = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {server_key}"}, timeout=10
        )
        assert backend.put("/api/chat/server/users/ann", json={"name": "Ann"}).status_code in (200, 201)
        token = backend.post("/api/chat/server/users/ann/tokens").json()["token"]
        channel = backend.post(
            "/api/chat/server/channels", json={"kind": "public", "name": "files", "created_by": "ann"}
        ).json()
        uploaded = httpx.post(
            f"{base_url}/api/chat/channels/{channel['id']}/attachments",
            files={"file": ("notes.txt", b"hello from ann", "text/plain")},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert uploaded.status_code == 201, uploaded.text
        link = uploaded.json()["url"]
        assert link.startswith(f"{base_url}/files/")
        assert httpx.get(link, timeout=10).content == b"hello from ann"


def test_keys_rotate_moves_secrets_to_the_new_key(migrated: dict[str, str], tmp_path: Path) -> None:
    env = migrated
    pentad_here(env, "user", "list")  # the first command that opens the platform generates the key file
    old = (tmp_path / "encryption-keys").read_text().strip()
    new = pentad_here(env, "keys", "generate").stdout.strip()
    rotated_env = {**env, "PENTAD_CRYPTO__KEYS": f"{new},{old}"}
    assert "Re-encrypted 0 value(s)." in pentad_here(rotated_env, "keys", "rotate").stdout


def test_grant_on_unknown_resource_type_is_refused(migrated: dict[str, str]) -> None:
    env = migrated
    pentad_here(env, "user", "create", "--email", "g@example.com", "--password", "a long cli password")
    refused = pentad_here(
        env, "user", "grant", "g@example.com", "owner", "--resource", "nothing.here:1", check=False
    )
    assert refused.returncode != 0
    assert "Unknown role" in refused.stderr
    granted = pentad_here(
        env, "user", "grant", "g@example.com", "moderator", "--resource", f"chat.channel:{uuid.uuid4()}"
    )
    assert granted.returncode == 0


async def _enqueue_unsendable_mail(url: str) -> uuid.UUID:
    """A mail job without its encrypted message: every attempt fails."""
    database = Database.from_settings(DatabaseSettings(url=url))  # type: ignore[call-arg]
    try:
        async with database.transaction() as session:
            job_id = await enqueue(session, SEND_MAIL, {"template": "password_reset"})
    finally:
        await database.dispose()
    assert job_id is not None
    return job_id


def test_worker_runs_due_jobs_and_dead_ones_are_retried(migrated: dict[str, str]) -> None:
    env = {**migrated, "PENTAD_JOBS__MAX_ATTEMPTS": "1"}
    job_id = asyncio.run(_enqueue_unsendable_mail(env["PENTAD_DATABASE__URL"]))
    pentad(env, "worker", "--burst")
    dead = pentad_here(env, "jobs", "list", "--status", "dead").stdout
    assert dead.startswith(f"{job_id}\tcore.send_mail\tdead\t1\t")
    assert "LookupError" in dead
    assert pentad_here(env, "jobs", "retry", str(job_id)).stdout.strip() == f"Queued job {job_id} again."
    assert f"{job_id}\tcore.send_mail\tqueued\t0\t" in pentad_here(env, "jobs", "list").stdout
    again = pentad_here(env, "jobs", "retry", str(job_id), check=False)
    assert again.returncode != 0
    assert "Only dead jobs can be retried" in again.stderr


def test_addresses_sign_in_would_refuse_are_refused_everywhere(migrated: dict[str, str]) -> None:
    env = migrated
    refused = pentad_here(
        env, "user", "create", "--email", "ops@example.test", "--password", "a long cli password", check=False
    )
    assert refused.returncode != 0
    assert "special-use" in refused.stderr
    assert "ops@example.test" not in pentad_here(env, "user", "list").stdout
    bad_admin = pentad_here(
        {**env, "PENTAD_ADMIN__EMAIL": "root@pentad.local"}, "config", "show", check=False
    )
    assert bad_admin.returncode != 0
    assert "PENTAD_ADMIN__EMAIL" in bad_admin.stderr or "admin" in bad_admin.stderr.lower()


def test_the_database_and_generated_secrets_are_private(env: dict[str, str], tmp_path: Path) -> None:
    loose = tmp_path / "pentad.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    pentad(env, "migrate")
    pentad(env, "user", "create", "--email", "p@example.com", "--password", "a long cli password")
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert {loose.name, "secret-key", "encryption-keys"} <= {p.name for p in files}
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, (path.name, oct(path.stat().st_mode))


def test_the_generated_first_admin_password_goes_to_a_private_file(
    migrated: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pentad.cli import FIRST_ADMIN_PASSWORD_FILE, _ensure_first_admin, _settings

    env = migrated
    for name in [k for k in os.environ if k.startswith("PENTAD_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("PENTAD_"):
            monkeypatch.setenv(name, value)
    _ensure_first_admin(_settings())
    secret_file = tmp_path / FIRST_ADMIN_PASSWORD_FILE
    password = secret_file.read_text().strip()
    assert len(password) >= 20
    assert secret_file.stat().st_mode & 0o777 == 0o600
    stderr = capsys.readouterr().err
    assert str(secret_file) in stderr
    assert password not in stderr  # not a terminal: a supervisor would keep it
    assert "admin@example.com\tadmin,member\tactive" in pentad_here(env, "user", "list").stdout


def test_an_operator_can_hand_out_a_reset_link(migrated: dict[str, str]) -> None:
    env = migrated
    pentad_here(env, "user", "create", "--email", "r@example.com", "--password", "a long cli password")
    printed = pentad_here(env, "user", "reset-link", "r@example.com").stdout
    assert "/reset-password?token=" in printed
    unknown = pentad_here(env, "user", "reset-link", "nobody@example.com", check=False)
    assert unknown.returncode != 0


LOADED_AFTER = """
import json, sys
from click.testing import CliRunner
from pentad.cli import main
result = CliRunner().invoke(main, sys.argv[1:])
heavy = ["fastapi", "sqlalchemy", "alembic", "uvicorn", "PIL", "boto3"]
heavy += ["pentad.core.platform", "pentad.apps.chat.spec"]
loaded = [module for module in heavy if module in sys.modules]
print(json.dumps({"exit": result.exit_code, "output": result.output, "loaded": loaded}))
"""


def _loaded_after(env: dict[str, str], *args: str) -> dict[str, object]:
    """Run `pentad args` in a fresh interpreter; its exit code, output and which heavy modules it loaded."""
    ran = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, object] = json.loads(ran.stdout)
    return found


@pytest.mark.parametrize("args", [["--help"], ["config", "show"], ["keys", "generate"]])
def test_commands_that_need_no_platform_do_not_load_it_nor_any_app(
    env: dict[str, str], args: list[str]
) -> None:
    ran = _loaded_after(env, *args)
    assert ran["exit"] == 0, ran["output"]
    assert ran["loaded"] == []


def test_help_lists_each_installed_apps_group_by_its_declared_help(env: dict[str, str]) -> None:
    listed = _loaded_after(env, "--help")
    assert "chat           Chat tenants, server keys and the search index." in str(listed["output"])
    unknown = _loaded_after(env, "chatt")
    assert unknown["exit"] != 0
    assert "No such command 'chatt'" in str(unknown["output"])


ROUTES_LOADED_AFTER = """
import json, sys
from click.testing import CliRunner
from pentad.cli import main
result = CliRunner().invoke(main, sys.argv[2:])
watched = json.loads(sys.argv[1])
loaded = [module for module in watched if module in sys.modules]
platform = "pentad.core.platform" in sys.modules
print(json.dumps({"exit": result.exit_code, "output": result.output, "loaded": loaded, "platform": platform}))
"""


def test_commands_that_need_the_platform_load_no_routes_nor_pages(env: dict[str, str]) -> None:
    """`pentad user list` (like `pentad worker`) needs every app's models, jobs and settings, not the
    endpoint modules whose routes FastAPI builds at import (seconds): those load only with a web app."""
    apps = Path(pentad_apps.__file__).parent
    routes = sorted(
        ".".join(("pentad.apps", *path.relative_to(apps).with_suffix("").parts))
        for pattern in ("*endpoints.py", "*pages.py")
        for path in apps.glob(f"*/{pattern}")
    )
    assert "pentad.apps.chat.endpoints" in routes
    pentad(env, "migrate")
    ran = subprocess.run(
        [sys.executable, "-c", ROUTES_LOADED_AFTER, json.dumps(routes), "user", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(ran.stdout)
    assert outcome["exit"] == 0, outcome["output"]
    assert outcome["platform"] is True
    assert outcome["loaded"] == []
