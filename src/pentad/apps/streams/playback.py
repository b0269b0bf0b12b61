"""Playback tokens: short-lived, signed, scoped to one camera (`psp_…`).

A private camera plays only for someone holding a role on it, or with a playback token its viewers get
from `POST /api/streams/cameras/{id}/playback-token` and hand to a player (in the playlist URL's query, as
the WHEP bearer token, or to the hub). The token is compact binary, base64url without padding:
`version (1) | expires, unix seconds (4) | camera id (16) | nonce (8) | MAC (16)`, the MAC being
HMAC-SHA256 over what precedes it, cut to 128 bits, under a key derived from the platform's signing
secret for this purpose only (`HMAC-SHA256(signing secret, "streams.playback")`). Nothing is stored: a
token cannot be revoked before it expires (PLAYBACK_TOKEN_TTL, 5 minutes by default); players renew.

As a bearer credential (the `psp` CredentialScheme) a token is a principal of kind `streams.playback`
whose id is the camera's and whose only permission is `streams.watch`, so it reads that camera's topic and
nothing else of the API. (`pst_` would have matched the plan, but core service tokens own that prefix.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams import repository
from pentad.apps.streams.permissions import STREAMS_WATCH
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemes import CredentialScheme
from pentad.core.context import AppContext

PREFIX = "psp"
PRINCIPAL_KIND = "streams.playback"
VERSION = 1
_HEADER = struct.Struct(">BI")
_NONCE_BYTES = 8
_MAC_BYTES = 16
_BODY_BYTES = _HEADER.size + 16 + _NONCE_BYTES
TOKEN_BYTES = _BODY_BYTES + _MAC_BYTES
LABEL = b"streams.playback"


@dataclass(frozen=True)
class PlaybackGrant:
    camera_id: uuid.UUID
    expires: int
    """Unix seconds after which the token is refused."""
    nonce: bytes

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


def _key(signing_secret: bytes) -> bytes:
    return hmac.new(signing_secret, LABEL, hashlib.sha256).digest()


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def issue_token(signing_secret: bytes, camera_id: uuid.UUID, ttl: int, *, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + ttl
    body = _HEADER.pack(VERSION, expires) + camera_id.bytes + secrets.token_bytes(_NONCE_BYTES)
    raw = body + _mac(_key(signing_secret), body)
    return f"{PREFIX}_{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def read_token(signing_secret: bytes, token: str, *, now: float | None = None) -> PlaybackGrant | None:
    """The grant a genuine, unexpired token carries; None for anything else (tampered, expired, garbled)."""
    prefix, sep, text = token.partition("_")
    if prefix != PREFIX or not sep or len(text) > 2 * TOKEN_BYTES:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != TOKEN_BYTES:
        return None
    body, mac = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
    if not hmac.compare_digest(mac, _mac(_key(signing_secret), body)):
        return None
    version, expires = _HEADER.unpack_from(body)
    if version != VERSION or expires <= (now if now is not None else time.time()):
        return None
    camera_id = uuid.UUID(bytes=body[_HEADER.size : _HEADER.size + 16])
    return PlaybackGrant(camera_id, expires, body[_HEADER.size + 16 :])


def is_playback_principal(principal: Principal) -> bool:
    return principal.kind == PRINCIPAL_KIND


async def _authenticate(session: AsyncSession, platform: AppContext, raw: str) -> tuple[Principal, datetime]:
    grant = read_token(platform.signing_secret, raw)
    if grant is None:
        raise InvalidToken()
    camera = await repository.get_camera(session, grant.camera_id)
    if camera is None:
        raise InvalidToken()
    principal = Principal(
        kind=PRINCIPAL_KIND,
        id=camera.id,
        label=f"playback token of camera {camera.id}",
        roles=frozenset(),
        permissions=frozenset({STREAMS_WATCH.key}),
        via="streams_playback_token",
        credential_id=uuid.UUID(bytes=grant.nonce * 2),
        display_name=camera.name,
    )
    return principal, grant.expires_at


def _expiry(platform: AppContext, raw: str) -> float | None:
    grant = read_token(platform.signing_secret, raw)
    return float(grant.expires) if grant else None


PLAYBACK_SCHEME = CredentialScheme(PREFIX, _authenticate, _expiry)
