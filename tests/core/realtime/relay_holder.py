"""A process that holds a relay address and answers every request with `<its pid>:<the request>`, for
tests/core/realtime/test_relay.py. It prints `holding` once the address is its own.

    python -m tests.core.realtime.relay_holder REDIS_URL ADDRESS LEASE_SECONDS"""

from __future__ import annotations

import asyncio
import os
import sys

from pentad.core.realtime.relay import RedisRelay


async def main(url: str, address: str, lease_seconds: float) -> None:
    relay = RedisRelay(url, lease_seconds=lease_seconds)
    async with relay.hold(address) as inbox:
        print("holding", flush=True)
        async for message in inbox:
            if message.reply is not None:
                text = message.data if isinstance(message.data, str) else message.data.decode()
                await message.reply(f"{os.getpid()}:{text}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
