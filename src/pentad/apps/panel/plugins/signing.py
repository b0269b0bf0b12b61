"""Ed25519 signatures of plugin indexes and packages (PyNaCl), base64 encoded everywhere.

A marketplace signs its `index.json` (the signature is `index.json.sig`); a publisher signs each package
(the zip's bytes), and the index carries that signature and the package's SHA-256. The panel trusts index
keys from PENTAD_PANEL__MARKET_TRUSTED_KEYS and publisher keys an admin added (`pentad panel plugins
trust-key`).
"""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey


class SignatureInvalid(Exception):
    """The signature, or the key, is not valid for these bytes."""


def keygen() -> tuple[str, str]:
    """A new (private, public) key pair, base64."""
    key = SigningKey.generate()
    return base64.b64encode(bytes(key)).decode(), base64.b64encode(bytes(key.verify_key)).decode()


def public_key(private: str) -> str:
    return base64.b64encode(bytes(_signing_key(private).verify_key)).decode()


def _signing_key(private: str) -> SigningKey:
    try:
        return SigningKey(base64.b64decode(private.strip(), validate=True))
    except (binascii.Error, ValueError, CryptoError) as exc:
        raise SignatureInvalid(f"not an ed25519 private key: {exc}") from None


def sign(private: str, data: bytes) -> str:
    """The detached signature of `data`, base64."""
    return base64.b64encode(_signing_key(private).sign(data).signature).decode()


def check_key(public: str) -> str:
    """`public` if it is a base64 ed25519 public key; SignatureInvalid otherwise."""
    try:
        VerifyKey(base64.b64decode(public.strip(), validate=True))
    except (binascii.Error, ValueError, CryptoError) as exc:
        raise SignatureInvalid(f"not an ed25519 public key: {exc}") from None
    return public.strip()


def verify(public: str, data: bytes, signature: str) -> None:
    """SignatureInvalid unless `signature` is `public`'s signature of `data`."""
    try:
        VerifyKey(base64.b64decode(public.strip(), validate=True)).verify(
            data, base64.b64decode(signature.strip(), validate=True)
        )
    except (binascii.Error, ValueError, BadSignatureError, CryptoError) as exc:
        raise SignatureInvalid(str(exc) or "bad signature") from None


def verify_any(keys: list[str], data: bytes, signature: str) -> str:
    """The key among `keys` that signed `data`; SignatureInvalid when none did."""
    for key in keys:
        try:
            verify(key, data, signature)
        except SignatureInvalid:
            continue
        return key
    raise SignatureInvalid("no trusted key made this signature")
