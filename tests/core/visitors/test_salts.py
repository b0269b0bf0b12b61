"""Daily salts in `visitor_salts` on every engine: made once per day, encrypted at rest, only today's and
yesterday's kept, rotation deleting the rest (so earlier ids cannot be recomputed)."""

from __future__ import annotations

import base64
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from pentad.core.crypto import KeyRing
from pentad.core.db.engine import Database
from pentad.core.db.keyrotation import reencrypt_all
from pentad.core.visitors.ids import (
    Salts,
    SaltUnavailable,
    VisitorSalt,
    rotate_salts,
    salt_for,
    stored_days,
    visitor_id,
)
from tests.factories import TEST_CRYPTO_KEYS

KEYRING = KeyRing.parse(TEST_CRYPTO_KEYS)
TODAY = date(2026, 12, 4)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


async def test_a_days_salt_is_made_once_and_stored_encrypted(database: Database) -> None:
    async with database.transaction() as session:
        first = await salt_for(session, KEYRING, TODAY, create=True)
        again = await salt_for(session, KEYRING, TODAY, create=True)
    assert first == again
    assert len(first) == 32
    async with database.transaction() as session:
        stored = (await session.execute(text("SELECT salt FROM visitor_salts"))).scalar_one()
    assert stored.startswith("v1.ktest1.")
    assert first.hex() not in stored
    assert base64.b64encode(first).decode() not in stored
    assert first not in stored.encode()


async def test_the_stored_salt_is_bound_to_its_day(database: Database) -> None:
    """A ciphertext copied onto another day's row does not decrypt (the key ring's row context)."""
    async with database.transaction() as session:
        await salt_for(session, KEYRING, TODAY, create=True)
        row = await session.get(VisitorSalt, TODAY)
        assert row is not None
        session.add(VisitorSalt(day=TODAY - timedelta(days=1), salt=row.salt))
    with pytest.raises(Exception, match="authentication"):
        async with database.transaction() as session:
            await salt_for(session, KEYRING, TODAY - timedelta(days=1), create=False)


async def test_rotation_keeps_today_and_yesterday_and_deletes_the_rest(database: Database) -> None:
    async with database.transaction() as session:
        for back in (4, 3, 2, 1):
            await salt_for(session, KEYRING, TODAY - timedelta(days=back), create=True)
        old = await salt_for(session, KEYRING, TODAY - timedelta(days=2), create=False)
        deleted = await rotate_salts(session, KEYRING, TODAY)
        assert deleted == 3
        assert await stored_days(session) == [TODAY - timedelta(days=1), TODAY]
        with pytest.raises(SaltUnavailable):
            await salt_for(session, KEYRING, TODAY - timedelta(days=2), create=False)
        assert await rotate_salts(session, KEYRING, TODAY) == 0  # a re-run changes nothing
        fresh = await salt_for(session, KEYRING, TODAY - timedelta(days=2), create=True)
    assert fresh != old  # the old day's ids cannot be made again


async def test_key_rotation_reencrypts_the_salts(database: Database) -> None:
    async with database.transaction() as session:
        salt = await salt_for(session, KEYRING, TODAY, create=True)
    newer = KeyRing.parse(
        "knew:" + base64.urlsafe_b64encode(bytes(range(32, 64))).decode() + "," + TEST_CRYPTO_KEYS
    )
    async with database.transaction() as session:
        assert await reencrypt_all(session, newer) >= 1
        stored = (await session.execute(text("SELECT salt FROM visitor_salts"))).scalar_one()
        assert stored.startswith("v1.knew.")
        assert await salt_for(session, newer, TODAY, create=False) == salt


async def test_processes_share_the_days_salt_and_ids(database: Database) -> None:
    one, two = Salts(database, KEYRING), Salts(database, KEYRING)
    salt = await one.get(TODAY, today=TODAY)
    assert await two.get(TODAY, today=TODAY) == salt
    assert visitor_id(salt, "example.com", "198.51.100.7", UA) == visitor_id(
        await two.get(TODAY, today=TODAY), "example.com", "198.51.100.7", UA
    )
    assert one.cached(TODAY) == salt


async def test_yesterday_is_read_not_made_and_older_days_have_no_ids(database: Database) -> None:
    salts = Salts(database, KEYRING)
    with pytest.raises(SaltUnavailable):
        await salts.get(TODAY - timedelta(days=1), today=TODAY)  # none was made that day
    with pytest.raises(SaltUnavailable):
        await salts.get(TODAY - timedelta(days=2), today=TODAY)
    async with database.transaction() as session:
        assert await stored_days(session) == []
