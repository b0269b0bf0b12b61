"""Fixtures for core tests that need Redis."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import redis.asyncio

from pentad.core.ratelimit import KEY_PREFIX, address_subject
from tests.databases import REQUIRE_SERVICES

REDIS_URL = os.environ.get("PENTAD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class RedisScratch:
    """The test Redis, and the rate-limit keys a test counted there, deleted when the test ends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fragments: list[str] = []

    def key(self) -> str:
        """A rate-limit key no other test or earlier run uses."""
        self.fragments.append(f"test-{uuid.uuid4().hex}")
        return self.fragments[-1]

    def address(self) -> str:
        """A client address no other test or earlier run uses."""
        address = str(ipaddress.IPv6Address(uuid.uuid4().int))
        self.fragments.append(address_subject(address))
        return address

    async def forget(self) -> None:
        async with redis.asyncio.Redis.from_url(self.url) as client:
            for fragment in self.fragments:
                async for key in client.scan_iter(match=f"{KEY_PREFIX}:*{fragment}*"):
                    await client.delete(key)


@pytest.fixture
async def test_redis() -> AsyncIterator[RedisScratch]:
    """Redis from PENTAD_TEST_REDIS_URL; skipped when unreachable unless PENTAD_TEST_REQUIRE_SERVICES=1."""
    parsed = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            pass
    except OSError:
        if REQUIRE_SERVICES:
            pytest.fail(
                f"Redis is required (PENTAD_TEST_REQUIRE_SERVICES=1) but {REDIS_URL} is not reachable"
            )
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    scratch = RedisScratch(REDIS_URL)
    yield scratch
    await scratch.forget()
