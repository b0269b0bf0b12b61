"""Impression and click tokens: what the decision hands the loader, so beacons and clicks need no lookup to
be trusted.

A token is compact binary, base64url without padding (94 characters):
`version (1) | kind (1) | expires, unix seconds (4) | impression id (16) | creative id (16) | zone id (16)
| MAC (16)`, where MAC is HMAC-SHA256 over everything before it, cut to 128 bits, under a key derived from
the platform's signing secret per kind (`HMAC-SHA256(signing secret, "ads.click")`, likewise
"ads.impression"), so a token of one kind is never accepted as the other and the secret itself signs
nothing of ours. A click's destination is never in the token: the redirect reads it from the creative row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from pentad.core.errors import BadRequest

TokenKind = Literal["impression", "click"]
VERSION = 1
_KINDS: dict[TokenKind, int] = {"impression": 1, "click": 2}
_HEADER = struct.Struct(">BBI")
_MAC_BYTES = 16
_BODY_BYTES = _HEADER.size + 16 * 3
TOKEN_BYTES = _BODY_BYTES + _MAC_BYTES
LABELS: dict[TokenKind, bytes] = {"impression": b"ads.impression", "click": b"ads.click"}


class InvalidToken(BadRequest):
    def __init__(self, message: str = "The ad link is not valid.") -> None:
        super().__init__(message, code="invalid_ad_token")


class ExpiredToken(BadRequest):
    def __init__(self) -> None:
        super().__init__("The ad link has expired.", code="expired_ad_token")


@dataclass(frozen=True)
class AdToken:
    kind: TokenKind
    impression_id: uuid.UUID
    creative_id: uuid.UUID
    zone_id: uuid.UUID
    expires: int
    """Unix seconds after which the token is refused."""


def derive_key(signing_secret: bytes, kind: TokenKind) -> bytes:
    return hmac.new(signing_secret, LABELS[kind], hashlib.sha256).digest()


class TokenSigner:
    """Signs and verifies tokens of both kinds with keys derived from the platform's signing secret."""

    def __init__(self, signing_secret: bytes) -> None:
        self._keys = {kind: derive_key(signing_secret, kind) for kind in _KINDS}

    def sign(
        self,
        kind: TokenKind,
        *,
        impression_id: uuid.UUID,
        creative_id: uuid.UUID,
        zone_id: uuid.UUID,
        ttl: int,
        now: float | None = None,
    ) -> str:
        expires = int(now if now is not None else time.time()) + ttl
        body = (
            _HEADER.pack(VERSION, _KINDS[kind], expires)
            + impression_id.bytes
            + creative_id.bytes
            + zone_id.bytes
        )
        return base64.urlsafe_b64encode(body + self._mac(kind, body)).rstrip(b"=").decode("ascii")

    def verify(self, kind: TokenKind, token: str, *, now: float | None = None) -> AdToken:
        """The token's contents; InvalidToken if it was not signed by us as `kind`, ExpiredToken if late."""
        raw = _decode(token)
        body, mac = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
        if not hmac.compare_digest(mac, self._mac(kind, body)):
            raise InvalidToken()
        version, kind_code, expires = _HEADER.unpack_from(body)
        if version != VERSION or kind_code != _KINDS[kind]:
            raise InvalidToken()
        if (now if now is not None else time.time()) > expires:
            raise ExpiredToken()
        ids = [uuid.UUID(bytes=body[start : start + 16]) for start in range(_HEADER.size, _BODY_BYTES, 16)]
        return AdToken(kind, ids[0], ids[1], ids[2], expires)

    def _mac(self, kind: TokenKind, body: bytes) -> bytes:
        return hmac.new(self._keys[kind], body, hashlib.sha256).digest()[:_MAC_BYTES]


def _decode(token: str) -> bytes:
    if len(token) > 2 * TOKEN_BYTES or not token.isascii():
        raise InvalidToken()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidToken() from error
    if len(raw) != TOKEN_BYTES:
        raise InvalidToken()
    return raw
