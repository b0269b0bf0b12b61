"""Settings: environment variables with the PENTAD_ prefix, one clear line for a bad value, masking."""

from __future__ import annotations

import pytest

from pentad.core.config import SettingsError, load_settings, masked


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
