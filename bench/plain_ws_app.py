"""The baseline of the realtime benchmark: a plain `websockets` broadcast server, nothing else.

    python bench/plain_ws_app.py PORT

Any connection to `/` is a subscriber. Each text message received on a connection to `/publish` is
wrapped into the same event frame Pentad sends (op, topic, seq, epoch, ts, data) and handed to
`websockets.broadcast` for every subscriber: no authentication, no topics, no per-subscriber queue.
Served on uvloop like `pentad serve`, with the library's defaults otherwise (keepalive pings every 20 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

TOPIC = "bench.fanout.main"
EPOCH = "plain"

subscribers: set[ServerConnection] = set()
sequence = 0


async def handler(connection: ServerConnection) -> None:
    global sequence
    if connection.request is not None and connection.request.path == "/publish":
        with contextlib.suppress(ConnectionClosed):  # the load generator just drops its connections
            async for data in connection:
                sequence += 1
                text = data if isinstance(data, str) else data.decode()
                frame = (
                    f'{{"op":"event","topic":"{TOPIC}","seq":{sequence},"epoch":"{EPOCH}",'
                    f'"ts":{int(time.time() * 1000)},"data":{text}}}'
                )
                broadcast(subscribers, frame)
        return
    subscribers.add(connection)
    try:
        await connection.wait_closed()
    finally:
        subscribers.discard(connection)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    # backlog as uvicorn's default: the memory part opens thousands of connections at once.
    async with serve(handler, "127.0.0.1", port, backlog=2048):
        await stop


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(main(int(sys.argv[1])))
