"""Secrets at rest: AES-256-GCM with key ids, bound to their row, and rotation to a new key."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pentad.core.auth.models import User
from pentad.core.crypto import CryptoError, KeyRing, generate_key, load_keyring
from pentad.core.db.keyrotation import reencrypt_all
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import TEST_CRYPTO_KEYS, access_token, bearer, create_user, login, totp_now


def test_round_trip_and_key_id() -> None:
    ring = KeyRing.parse(generate_key())
    sealed = ring.encrypt("hunter2", context="cameras.password:1")
    assert sealed.startswith(f"v1.{ring.active_kid}.")
    assert "hunter2" not in sealed
    assert ring.decrypt(sealed, context="cameras.password:1") == "hunter2"
    assert ring.encrypt("hunter2") != ring.encrypt("hunter2")


def test_ciphertext_is_bound_to_its_row() -> None:
    ring = KeyRing.parse(generate_key())
    sealed = ring.encrypt("hunter2", context="cameras.password:1")
    with pytest.raises(CryptoError):
        ring.decrypt(sealed, context="cameras.password:2")


def test_tampering_is_detected() -> None:
    ring = KeyRing.parse(generate_key())
    sealed = ring.encrypt("hunter2")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(CryptoError):
        ring.decrypt(flipped)


def test_old_keys_still_decrypt_after_a_new_first_key() -> None:
    old = generate_key()
    sealed = KeyRing.parse(old).encrypt("hunter2")
    ring = KeyRing.parse(f"{generate_key()},{old}")
    assert ring.decrypt(sealed) == "hunter2"
    assert ring.needs_rotation(sealed)
    with pytest.raises(CryptoError, match="no key"):
        KeyRing.parse(generate_key()).decrypt(sealed)


@pytest.mark.parametrize("spec", ["nokey", "k1:short", "bad id:AAAA"])
def test_bad_key_specs_are_refused(spec: str) -> None:
    with pytest.raises(CryptoError):
        KeyRing.parse(spec)


def test_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", crypto={"keys": None})
    first = load_keyring(settings)
    assert load_keyring(settings).active_kid == first.active_kid
    assert (tmp_path / "encryption-keys").stat().st_mode & 0o777 == 0o600


def test_production_requires_explicit_keys(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, "sqlite+aiosqlite:///x.db", crypto={"keys": None}, environment="production"
    )
    with pytest.raises(CryptoError, match="PENTAD_CRYPTO__KEYS"):
        load_keyring(settings)


async def test_rotate_reencrypts_stored_secrets(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform)
    token = await access_token(client, user)
    setup = (await client.post("/api/me/2fa/setup", headers=bearer(token))).json()
    await client.post("/api/me/2fa/enable", json={"code": totp_now(setup["secret"])}, headers=bearer(token))

    new_key = generate_key()
    rotated = KeyRing.parse(f"{new_key},{TEST_CRYPTO_KEYS}")
    async with platform.database.transaction() as session:
        assert await reencrypt_all(session, rotated) >= 1
        assert await reencrypt_all(session, rotated) == 0
        stored = await session.scalar(select(User.totp_secret).where(User.id == user.id))
    assert stored is not None
    assert stored.startswith(f"v1.{rotated.active_kid}.")

    # With only the new key in the ring, two-factor sign-in still works.
    platform.keyring = KeyRing.parse(new_key)
    challenge = await login(client, user.email)
    code = totp_now(setup["secret"], steps_ahead=1)
    done = await client.post("/api/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": code})
    assert done.status_code == 200
