"""Opaque credentials (API keys, refresh tokens, service tokens...) and signed access tokens (JWT).

An opaque token reads `<kind>_<id as 32 hex>_<secret>`. The id finds the row; only a SHA-256 of the
secret is stored (the secrets are random, 256 bits, so a slow hash adds nothing) and it is compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

API_KEY = "pak"
SERVICE_TOKEN = "pst"
REFRESH_TOKEN = "prt"
BROWSER_SESSION = "pss"
PASSWORD_RESET = "ppr"

ACCESS_AUDIENCE = "pentad:access"
MFA_AUDIENCE = "pentad:mfa"
JWT_ALGORITHM = "HS256"


@dataclass(frozen=True)
class OpaqueToken:
    kind: str
    id: uuid.UUID
    secret: str

    def __str__(self) -> str:
        return f"{self.kind}_{self.id.hex}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)

    @property
    def hint(self) -> str:
        return f"{self.kind}_…{self.secret[-4:]}"


def new_token(kind: str, token_id: uuid.UUID) -> OpaqueToken:
    return OpaqueToken(kind, token_id, secrets.token_urlsafe(32))


def parse_token(raw: str, kind: str) -> OpaqueToken | None:
    prefix, sep, rest = raw.partition("_")
    if not sep or prefix != kind or len(rest) < 34 or rest[32] != "_":
        return None
    try:
        token_id = uuid.UUID(hex=rest[:32])
    except ValueError:
        return None
    return OpaqueToken(kind, token_id, rest[33:])


def token_kind(raw: str) -> str:
    return raw.partition("_")[0]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def issue_jwt(
    key: bytes, *, issuer: str, audience: str, subject: str, ttl: int, **claims: Any
) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl)
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(8),
        **claims,
    }
    return jwt.encode(payload, key, algorithm=JWT_ALGORITHM), expires


def read_jwt(key: bytes, token: str, *, issuer: str, audience: str) -> dict[str, Any] | None:
    """The verified claims, or None for anything tampered, expired, unsigned or of another audience."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return None
    return claims
