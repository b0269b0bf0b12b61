"""Recently authenticated credentials, kept a few seconds so that reads need no database round trip.

Every change that can end or narrow a credential (logout, revocation, disabling a user, new roles, a
password change or reset) forgets that subject's entries at once in this process. Other processes and
nodes keep serving a cached entry for at most `PENTAD_AUTH__PRINCIPAL_CACHE_TTL` seconds; set it to 0 to
check every request against the database.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime

from pentad.core.auth.principal import Principal
from pentad.core.db.base import utcnow


def _key(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()


class PrincipalCache:
    def __init__(self, ttl: float, *, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        self._by_subject: dict[uuid.UUID, set[bytes]] = {}

    def get(self, credential: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        key = _key(credential)
        entry = self._entries.get(key)
        if entry is None:
            return None
        principal, deadline = entry
        if time.monotonic() >= deadline:
            self._drop(key, principal.id)
            return None
        return principal

    def put(self, credential: str, principal: Principal, *, expires_at: datetime | None = None) -> None:
        if self.ttl <= 0:
            return
        lifetime = self.ttl
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - utcnow()).total_seconds())
        if lifetime <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self.clear()
        key = _key(credential)
        self._entries[key] = (principal, time.monotonic() + lifetime)
        self._by_subject.setdefault(principal.id, set()).add(key)

    def forget(self, subject_id: uuid.UUID) -> None:
        """Drop every cached credential of a user or service token."""
        for key in self._by_subject.pop(subject_id, set()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._by_subject.clear()

    def _drop(self, key: bytes, subject_id: uuid.UUID) -> None:
        self._entries.pop(key, None)
        keys = self._by_subject.get(subject_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_subject[subject_id]
