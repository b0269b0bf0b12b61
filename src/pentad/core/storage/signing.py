"""Signed, time-limited URLs for the local backend's files, served by `GET /files/{key}`."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

from pentad.core.errors import PermissionDenied

_PURPOSE = b"pentad.storage.signed-url"
_EXPIRES = re.compile(r"[0-9]{1,12}")


class InvalidSignature(PermissionDenied):
    code = "invalid_signature"

    def __init__(self) -> None:
        super().__init__("This file link is not valid; ask for a new one.")


class LinkExpired(PermissionDenied):
    code = "link_expired"

    def __init__(self) -> None:
        super().__init__("This file link has expired; ask for a new one.")


class UrlSigner:
    """HMAC-SHA256 over the key, the expiry time and the download name.

    The HMAC key is derived from the platform's signing secret for this purpose alone, so a signature made
    here can never stand in for one made elsewhere (CSRF tokens, access tokens) or the other way round.
    """

    def __init__(self, signing_secret: bytes) -> None:
        self._key = hmac.new(signing_secret, _PURPOSE, hashlib.sha256).digest()

    def sign(self, key: str, expires: int, download_name: str | None) -> str:
        message = json.dumps([key, expires, download_name], ensure_ascii=False).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: str | None, download_name: str | None, signature: str | None) -> int:
        """Seconds the link has left; InvalidSignature or LinkExpired when it may not be served."""
        if expires is None or signature is None or not _EXPIRES.fullmatch(expires):
            raise InvalidSignature()
        expected = self.sign(key, int(expires), download_name)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidSignature()
        remaining = int(expires) - int(time.time())
        if remaining < 0:
            raise LinkExpired()
        return remaining
