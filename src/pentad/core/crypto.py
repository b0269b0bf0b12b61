"""Secrets at rest: AES-256-GCM with a key id on every ciphertext, and key rotation.

Ciphertext format: `v1.<kid>.<base64url(nonce || ciphertext+tag)>`. The first key of the ring encrypts;
every key decrypts, so adding a new first key and running `pentad keys rotate` re-encrypts old data.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pentad.core.config import Settings

_VERSION = "v1"
_NONCE_BYTES = 12
KEY_FILE_NAME = "encryption-keys"
SECRET_FILE_NAME = "secret-key"


class CryptoError(Exception):
    pass


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def column_context(table: str, column: str, row_id: object) -> str:
    """Associated data binding a ciphertext to its row, so it cannot be copied to another row."""
    return f"{table}.{column}:{row_id}"


def generate_key() -> str:
    """A new `kid:base64key` entry for PENTAD_CRYPTO__KEYS."""
    return f"k{secrets.token_hex(4)}:{_b64e(os.urandom(32))}"


class KeyRing:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise CryptoError("the key ring is empty")
        for kid, key in keys:
            if len(key) != 32:
                raise CryptoError(f"key {kid!r} is not 32 bytes")
            if not kid.isalnum():
                raise CryptoError(f"key id {kid!r} must be letters and digits")
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        self.active_kid = keys[0][0]

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        entries = []
        for item in spec.split(","):
            kid, sep, encoded = item.strip().partition(":")
            if not sep:
                raise CryptoError("each key must be written `kid:base64key`")
            try:
                entries.append((kid, _b64d(encoded)))
            except ValueError as exc:
                raise CryptoError(f"key {kid!r} is not valid base64") from exc
        return cls(entries)

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self.active_kid].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}.{self.active_kid}.{_b64e(nonce + sealed)}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        version, kid, payload = self._split(token)
        if version != _VERSION:
            raise CryptoError("unknown ciphertext version")
        aead = self._keys.get(kid)
        if aead is None:
            raise CryptoError(f"no key {kid!r} in the key ring")
        raw = _b64d(payload)
        try:
            return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except Exception as exc:
            raise CryptoError("ciphertext failed authentication") from exc

    def needs_rotation(self, token: str) -> bool:
        return self._split(token)[1] != self.active_kid

    @staticmethod
    def _split(token: str) -> tuple[str, str, str]:
        parts = token.split(".", 2)
        if len(parts) != 3:
            raise CryptoError("malformed ciphertext")
        return parts[0], parts[1], parts[2]


def write_private_file(path: Path, content: str) -> None:
    """Write (or replace) a file only its owner can read (mode 0600, also when it existed before)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def _read_or_create(path: Path, make: str) -> str:
    """Read a generated secret file, creating it (mode 0600) if absent; safe with several workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make


def load_keyring(settings: Settings) -> KeyRing:
    if settings.crypto.keys is not None:
        return KeyRing.parse(settings.crypto.keys.get_secret_value())
    if settings.environment == "production":
        raise CryptoError("PENTAD_CRYPTO__KEYS must be set in production")
    return KeyRing.parse(_read_or_create(settings.data_dir / KEY_FILE_NAME, generate_key()))


def load_signing_secret(settings: Settings) -> bytes:
    if settings.auth.secret_key is not None:
        value = settings.auth.secret_key.get_secret_value()
        if len(value) < 32:
            raise CryptoError("PENTAD_AUTH__SECRET_KEY must be at least 32 characters")
        return value.encode()
    if settings.environment == "production":
        raise CryptoError("PENTAD_AUTH__SECRET_KEY must be set in production")
    return _read_or_create(settings.data_dir / SECRET_FILE_NAME, secrets.token_urlsafe(48)).encode()
