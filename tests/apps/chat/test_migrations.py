"""Chat's migrations keep users' data: the VAPID key pair moves to the core's push_vapid_keys re-encrypted
for its new table (the same key, so browsers' subscriptions keep working), only with the key ring, and back
on downgrade."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.chat.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.crypto import KeyRing, column_context
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async
from tests.factories import TEST_CRYPTO_KEYS

KEY_ID = uuid.UUID(int=1)
PUBLIC = "BPublicKeyOfTheOldPair"
PRIVATE = "private-scalar-base64url"


async def _scalars(engine: AsyncEngine, query: str) -> list[object]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(query))).all())


async def test_the_vapid_key_moves_to_the_core_only_with_the_key_ring_and_back(scratch_url: str) -> None:
    keyring = KeyRing.parse(TEST_CRYPTO_KEYS)
    await upgrade_async(scratch_url, [APP], revision="chat_0002")
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO chat_vapid_keys (id, public_key, private_key, created_at)"
                    " VALUES (:id, :public, :private, CURRENT_TIMESTAMP)"
                ),
                {
                    "id": KEY_ID.hex if engine.dialect.name != "postgresql" else KEY_ID,
                    "public": PUBLIC,
                    "private": keyring.encrypt(
                        PRIVATE, context=column_context("chat_vapid_keys", "private_key", KEY_ID)
                    ),
                },
            )

        with pytest.raises(RuntimeError, match="pentad migrate"):
            await upgrade_async(scratch_url, [APP])
        assert len(await _scalars(engine, "SELECT id FROM chat_vapid_keys")) == 1

        await upgrade_async(scratch_url, [APP], keyring=keyring)
        ((public, private),) = await _scalars(engine, "SELECT public_key, private_key FROM push_vapid_keys")
        assert public == PUBLIC
        moved = keyring.decrypt(
            str(private), context=column_context("push_vapid_keys", "private_key", KEY_ID)
        )
        assert moved == PRIVATE
        with pytest.raises(Exception, match="chat_vapid_keys"):
            await _scalars(engine, "SELECT id FROM chat_vapid_keys")

        config = alembic_config(scratch_url, [APP], keyring)
        await asyncio.to_thread(command.downgrade, config, "chat_0002")
        assert await _scalars(engine, "SELECT id FROM push_vapid_keys") == []
        ((private,),) = await _scalars(engine, "SELECT private_key FROM chat_vapid_keys")
        back = keyring.decrypt(str(private), context=column_context("chat_vapid_keys", "private_key", KEY_ID))
        assert back == PRIVATE
    finally:
        await engine.dispose()
