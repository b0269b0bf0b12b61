"""Settings: PENTAD_ variables (and .env), an app's own settings, one clear line for a bad value, masking,
unknown variables reported, locations that follow the data directory and the port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from pentad.core.apps import AppSpec
from pentad.core.config import CommaList, SettingsError, load_settings, masked, unknown_settings
from pentad.core.platform import Platform


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENTAD_SERVER__PORT", "9000")
    monkeypatch.setenv("PENTAD_APPS", "chat, market")
    monkeypatch.setenv("PENTAD_SECURITY__TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1")
    settings = load_settings(_env_file=None)
    assert settings.server.port == 9000
    assert settings.apps == ["chat", "market"]
    assert settings.security.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PENTAD_SERVER__PORT", "eighty", "invalid setting PENTAD_SERVER__PORT:"),
        ("PENTAD_DATABASE__URL", "mongodb://x", "invalid setting PENTAD_DATABASE__URL:"),
        ("PENTAD_SECURITY__TRUSTED_PROXIES", "not-an-ip", "invalid setting PENTAD_SECURITY__TRUSTED_PROXIES"),
        ("PENTAD_LOG__LEVEL", "LOUD", "invalid setting PENTAD_LOG__LEVEL:"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_masked_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENTAD_DATABASE__URL", "postgresql+asyncpg://app:s3cret-db@db/pentad")
    monkeypatch.setenv("PENTAD_AUTH__SECRET_KEY", "s3cret-signing-key-" + "x" * 20)
    monkeypatch.setenv("PENTAD_MAIL__PASSWORD", "s3cret-mail")
    monkeypatch.setenv("PENTAD_RATELIMIT__STORAGE_URL", "redis://:s3cret-redis@127.0.0.1:6379/0")
    monkeypatch.setenv("PENTAD_CACHE__URL", "redis://:s3cret-cache@127.0.0.1:6379/1")
    monkeypatch.setenv("PENTAD_REALTIME__BROKER_URL", "redis://:s3cret-broker@127.0.0.1:6379/2")
    monkeypatch.setenv("PENTAD_STORAGE__S3_SECRET_KEY", "s3cret-s3")
    shown = str(masked(load_settings(_env_file=None)))
    assert "s3cret" not in shown
    assert "postgresql+asyncpg://app:********@db/pentad" in shown


# ------------------------------------------------------------------ an app's own settings


class TinySettings(BaseModel):
    """A tiny test app's settings: a plain value, a bounded one, a secret, a URL, a list."""

    greeting: str = "hello"
    limit: int = Field(10, ge=1)
    token: SecretStr | None = None
    upstream_url: str = "https://example.org/feed"
    peers: CommaList = Field(default_factory=list)


TINY = AppSpec(name="tiny", title="Tiny", settings=TinySettings)
INSTALLED_MODELS: dict[str, type[BaseModel] | None] = {"tiny": TinySettings, "bare": None}


def test_an_app_reads_its_settings_from_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENTAD_TINY__LIMIT", "3")
    monkeypatch.setenv("PENTAD_TINY__PEERS", "10.0.0.1, 10.0.0.2")
    tiny = load_settings(_env_file=None).app_settings("tiny", TinySettings)
    assert (tiny.greeting, tiny.limit, tiny.peers) == ("hello", 3, ["10.0.0.1", "10.0.0.2"])


def test_an_app_reads_its_settings_from_the_env_file_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PENTAD_TINY__GREETING=from the file\nPENTAD_TINY__LIMIT=4\n")
    monkeypatch.setenv("PENTAD_TINY__LIMIT", "5")
    tiny = load_settings(_env_file=env_file).app_settings("tiny", TinySettings)
    assert (tiny.greeting, tiny.limit) == ("from the file", 5)  # the environment wins over the file


async def test_the_platform_hands_an_enabled_app_its_validated_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PENTAD_TINY__LIMIT", "7")
    settings = load_settings(_env_file=None, **_local(tmp_path))
    platform = Platform.build(settings, [TINY])
    try:
        assert platform.app_settings(TinySettings).limit == 7
        assert platform.app_settings(TinySettings) is settings.app_settings("tiny", TinySettings)
    finally:
        await platform.close()


async def test_a_disabled_app_has_no_settings_on_the_platform(tmp_path: Path) -> None:
    platform = Platform.build(load_settings(_env_file=None, **_local(tmp_path)), [])
    try:
        with pytest.raises(LookupError, match="TinySettings"):
            platform.app_settings(TinySettings)
    finally:
        await platform.close()


def test_a_bad_app_setting_stops_the_start_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PENTAD_TINY__LIMIT", "0")
    settings = load_settings(_env_file=None, **_local(tmp_path))
    with pytest.raises(SettingsError) as caught:
        Platform.build(settings, [TINY])
    assert str(caught.value).startswith("invalid setting PENTAD_TINY__LIMIT: Input should be greater than")
    assert "\n" not in str(caught.value)


async def test_a_bad_setting_of_a_disabled_app_does_not_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PENTAD_TINY__LIMIT", "0")
    platform = Platform.build(load_settings(_env_file=None, **_local(tmp_path)), [])
    await platform.close()


def test_masked_hides_an_apps_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENTAD_TINY__TOKEN", "s3cret-token")
    monkeypatch.setenv("PENTAD_TINY__UPSTREAM_URL", "https://feed:s3cret-url@example.org/feed")
    shown = masked(load_settings(_env_file=None).app_settings("tiny", TinySettings))
    assert shown["token"] == "********"
    assert shown["upstream_url"] == "https://feed:********@example.org/feed"
    assert shown["greeting"] == "hello"


# ------------------------------------------------------------------ unknown variables


def test_unknown_variables_are_reported_with_the_nearest_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PENTAD_SERVR__PORT=9000\n")
    monkeypatch.setenv("PENTAD_TINY__LIMT", "3")
    monkeypatch.setenv("PENTAD_SERVER__PROT", "9000")
    monkeypatch.setenv("PENTAD_DATADIR", "/srv")
    monkeypatch.setenv("PENTAD_BARE__ANYTHING", "1")
    monkeypatch.setenv("PENTAD_STREAMS__KEY", "1")
    settings = load_settings(_env_file=env_file)
    assert unknown_settings(settings, INSTALLED_MODELS) == [
        "unknown setting PENTAD_BARE__ANYTHING is ignored",
        "unknown setting PENTAD_DATADIR is ignored; did you mean PENTAD_DATA_DIR?",
        "unknown setting PENTAD_SERVER__PROT is ignored; did you mean PENTAD_SERVER__PORT?",
        "unknown setting PENTAD_SERVR__PORT is ignored; did you mean PENTAD_SERVER__PORT?",
        "unknown setting PENTAD_STREAMS__KEY is ignored",
        "unknown setting PENTAD_TINY__LIMT is ignored; did you mean PENTAD_TINY__LIMIT?",
    ]
    assert settings.server.port == 8000


def test_known_variables_and_the_test_harness_are_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PENTAD_TINY__LIMIT", "3")
    monkeypatch.setenv("PENTAD_SERVER__PORT", "9000")
    monkeypatch.setenv("PENTAD_DATA_DIR", "/srv/pentad")
    monkeypatch.setenv("PENTAD_TEST_DATABASES", "sqlite")
    monkeypatch.setenv("PENTAD_RATELIMIT__CLASSES__INGEST", "5/second")
    settings = load_settings(_env_file=None)
    assert unknown_settings(settings, INSTALLED_MODELS) == []
    assert settings.ratelimit.classes == {"ingest": "5/second"}


def test_an_app_may_not_take_the_name_of_a_core_area() -> None:
    with pytest.raises(SettingsError, match="PENTAD_SERVER"):
        unknown_settings(load_settings(_env_file=None), {"server": TinySettings})


# ------------------------------------------------------------------ locations that follow other settings


def test_the_sqlite_file_lives_in_the_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PENTAD_DATA_DIR", str(tmp_path / "state"))
    assert load_settings(_env_file=None).database.url == f"sqlite+aiosqlite:///{tmp_path}/state/pentad.db"
    monkeypatch.setenv("PENTAD_DATABASE__URL", "postgresql+asyncpg://db/pentad")
    assert load_settings(_env_file=None).database.url == "postgresql+asyncpg://db/pentad"


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("127.0.0.1", "9123", "http://127.0.0.1:9123"),
        ("0.0.0.0", "8080", "http://127.0.0.1:8080"),
        ("::1", "8080", "http://[::1]:8080"),
        ("chat.internal", "80", "http://chat.internal:80"),
    ],
)
def test_the_base_url_follows_the_served_address_unless_set(
    monkeypatch: pytest.MonkeyPatch, host: str, port: str, base_url: str
) -> None:
    monkeypatch.setenv("PENTAD_SERVER__HOST", host)
    monkeypatch.setenv("PENTAD_SERVER__PORT", port)
    assert load_settings(_env_file=None).server.base_url == base_url
    monkeypatch.setenv("PENTAD_SERVER__BASE_URL", "https://chat.example.com")
    assert load_settings(_env_file=None).server.base_url == "https://chat.example.com"


def _local(data_dir: Path) -> dict[str, Any]:
    """Settings that build a platform in a scratch folder (keys generated there, SQLite in memory)."""
    return {"data_dir": data_dir, "database": {"url": "sqlite+aiosqlite://"}}
