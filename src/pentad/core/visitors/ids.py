"""Daily visitor ids: keyed BLAKE2b over (the UTC day's salt, scope, IP, UA), folded to a signed 63-bit int.

The salts live in the core table `visitor_salts`, one row per UTC day, the value encrypted with the key
ring. Only today's and yesterday's rows exist: the cron job `core.rotate_visitor_salts` (00:00 UTC) makes
today's and deletes older ones, so nobody (an operator with the database and the keys included) can
recompute or link the ids of earlier days. Every process keeps the two salts in memory and reads (or makes)
a day's salt once, on the first request of that day.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.crypto import KeyRing, column_context
from pentad.core.db.base import Base, EncryptedText, TimestampMixin
from pentad.core.db.engine import Database

SALT_BYTES = 32
KEPT_DAYS = 2
"""Today and yesterday: an event that arrives just after midnight (a beacon queued offline) still counts."""
ROTATE_SALTS_JOB = "core.rotate_visitor_salts"
_ID_MASK = (1 << 63) - 1


class VisitorSalt(TimestampMixin, Base):
    """One UTC day's visitor-id salt (32 random bytes, base64, encrypted with the key ring)."""

    __tablename__ = "visitor_salts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(EncryptedText)


class SaltUnavailable(LookupError):
    """The day's salt is gone (older than yesterday) or not yet made (after tomorrow): no id for that day."""


def utc_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def _context(day: date) -> str:
    return column_context(VisitorSalt.__tablename__, "salt", day)


def visitor_id(salt: bytes, scope: str, client_ip: str, user_agent: str) -> int:
    """The id of (ip, ua) within scope for the day whose salt this is. The parts are length-prefixed, so
    no two different tuples hash the same input."""
    digest = hashlib.blake2b(digest_size=8, key=salt)
    for part in (scope, client_ip, user_agent):
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    value = int.from_bytes(digest.digest(), "big") & _ID_MASK
    # Signed 63-bit: fits BIGINT on every engine and ClickHouse Int64, spread over negative and positive.
    return value - (1 << 62)


async def _read(session: AsyncSession, keyring: KeyRing, day: date) -> bytes | None:
    row = await session.get(VisitorSalt, day, populate_existing=True)
    if row is None:
        return None
    return base64.b64decode(keyring.decrypt(row.salt, context=_context(day)))


async def salt_for(session: AsyncSession, keyring: KeyRing, day: date, *, create: bool) -> bytes:
    """The day's salt; made (in the caller's transaction) when absent and `create`. Two processes making
    the same day's salt at once: the second insert fails on the primary key and reads the first's."""
    found = await _read(session, keyring, day)
    if found is not None:
        return found
    if not create:
        raise SaltUnavailable(f"no visitor salt for {day.isoformat()}")
    raw = os.urandom(SALT_BYTES)
    row = VisitorSalt(day=day, salt=keyring.encrypt(base64.b64encode(raw).decode(), context=_context(day)))
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        session.expunge(row)
        found = await _read(session, keyring, day)
        if found is None:  # pragma: no cover - the conflicting row vanished again (a rotation in between)
            raise
        return found
    return raw


async def rotate_salts(session: AsyncSession, keyring: KeyRing, today: date) -> int:
    """Make today's salt and delete every salt older than yesterday; returns how many were deleted."""
    await salt_for(session, keyring, today, create=True)
    oldest_kept = today - timedelta(days=KEPT_DAYS - 1)
    result = await session.execute(delete(VisitorSalt).where(VisitorSalt.day < oldest_kept))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def stored_days(session: AsyncSession) -> list[date]:
    return list((await session.scalars(select(VisitorSalt.day).order_by(VisitorSalt.day))).all())


class Salts:
    """The salts of the current and previous UTC day, cached in memory per process.

    `get(day)` is a dict lookup once the day is loaded; the first call of a new day reads (or makes) its
    salt in a short transaction of its own, one at a time per process.
    """

    def __init__(self, database: Database, keyring: KeyRing) -> None:
        self._database = database
        self._keyring = keyring
        self._cache: dict[date, bytes] = {}
        self._lock = asyncio.Lock()

    def cached(self, day: date) -> bytes | None:
        return self._cache.get(day)

    async def get(self, day: date, *, today: date | None = None) -> bytes:
        found = self._cache.get(day)
        if found is not None:
            return found
        today = today or utc_today()
        if day < today - timedelta(days=KEPT_DAYS - 1) or day > today + timedelta(days=1):
            raise SaltUnavailable(f"visitor ids exist for {KEPT_DAYS} days only, not for {day.isoformat()}")
        async with self._lock:
            found = self._cache.get(day)
            if found is not None:
                return found
            async with self._database.transaction() as session:
                # Today's (and, a minute past midnight on a slow clock, tomorrow's) salt may be made here;
                # yesterday's only read: making it now would give ids nobody computed that day.
                salt = await salt_for(session, self._keyring, day, create=day >= today)
            self._cache[day] = salt
            for old in [d for d in self._cache if d < today - timedelta(days=KEPT_DAYS - 1)]:
                del self._cache[old]
            return salt

    def forget(self) -> None:
        """Drop the cached salts (after a rotation in this process; tests)."""
        self._cache.clear()
