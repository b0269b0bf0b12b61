"""The fake ESI as tests use it: one server per test session, reset for each test, and a client wired
to the fake's clock (its sleeps move that clock instead of waiting, so no test waits for real)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pentad.apps.market.esi.client import EsiClient, EsiConfig
from pentad.apps.market.esi.governor import Governor
from tests.fakes.market.esi import FakeEsi, serving

CONTACT = "ops@pentad.test"
COMPATIBILITY_DATE = date(2025, 12, 16)
FROZEN_AT = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
"""Where the fake's clock stands in each test: mid-minute, so the error window does not roll over."""


@dataclass
class FakeEsiServer:
    fake: FakeEsi
    url: str
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        """What the client's sleeps do in tests: note them and move the fake's clock on."""
        self.sleeps.append(seconds)
        self.fake.advance(seconds)
        await asyncio.sleep(0)

    def config(self, **overrides: object) -> EsiConfig:
        values: dict[str, object] = {
            "base_url": self.url,
            "contact": CONTACT,
            "compatibility_date": COMPATIBILITY_DATE,
            "timeout": 5.0,
            "max_retries": 3,
            "page_concurrency": 4,
        }
        values.update(overrides)
        return EsiConfig(**values)  # type: ignore[arg-type]

    def client(self, governor: Governor | None = None, **overrides: object) -> EsiClient:
        return EsiClient(
            self.config(**overrides),
            governor or Governor(clock=lambda: self.fake.now().timestamp()),
            sleep=self.sleep,
            now=self.fake.now,
            rand=lambda: 1.0,
        )


async def start_fake_esi() -> AsyncIterator[FakeEsiServer]:
    fake = FakeEsi()
    async with serving(fake) as url:
        yield FakeEsiServer(fake, url)
