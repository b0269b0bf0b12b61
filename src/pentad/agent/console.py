"""Console batching and throttling: lines from the shims become ConsoleBatch events of at most
`batch_lines` lines and BATCH_CHARS characters, sent at most `batch_ms` after their first line. A per-server
token bucket (`lines_per_second`, `burst`) keeps a flooding game from starving the host or the panel:
lines beyond it are dropped — never the game — and the batch shows where with "[pentad] N lines dropped
(throttled)"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pentad.agent.events import ConsoleBatch

BATCH_CHARS = 16_384
"""Characters of lines in one batch at most (one line longer than that goes alone): its frame, JSON-escaped,
must fit what the panel's server reads (`pentad serve`: 64 KiB frames by default)."""


def dropped_marker(count: int) -> str:
    return f"[pentad] {count} lines dropped (throttled)"


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, wanted: int, now: float) -> int:
        """Take up to `wanted` tokens; how many were granted."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted


@dataclass
class _Pending:
    bucket: TokenBucket
    lines: list[str] = field(default_factory=list)
    first_at: float = 0.0
    seq: int = 0
    dropped: int = 0  # dropped lines waiting for their marker
    marker_at: int | None = None  # where in `lines` the marker goes
    dropped_total: int = 0
    source: str = "game"
    bytes: int = 0  # characters in `lines`


class ConsoleBatcher:
    """Feed lines with `feed`; batches go to `emit`. `run()` flushes batches whose window passed (start
    it as a task), `flush()` sends everything now (before a state change, at shutdown)."""

    def __init__(
        self,
        emit: Callable[[ConsoleBatch], None],
        *,
        batch_ms: int = 50,
        batch_lines: int = 512,
        lines_per_second: int = 5000,
        burst: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.window = batch_ms / 1000
        self.batch_lines = batch_lines
        self.rate = lines_per_second
        self.burst = burst
        self.clock = clock
        self._servers: dict[str, _Pending] = {}

    def dropped_total(self, server_id: str) -> int:
        """Lines of this server dropped by the throttle since it was first fed."""
        pending = self._servers.get(server_id)
        return pending.dropped_total if pending else 0

    def feed(self, server_id: str, lines: list[str], seq: int = 0, source: str = "game") -> None:
        """Lines of one server (`seq`: the shim's number of the last one). Lines of another `source` than
        the pending ones flush those first."""
        now = self.clock()
        pending = self._servers.get(server_id)
        if pending is None:
            pending = self._servers[server_id] = _Pending(TokenBucket(self.rate, self.burst, now))
        if pending.source != source and (pending.lines or pending.dropped):
            self._flush(server_id, pending)
        pending.source = source
        was_empty = not pending.lines and not pending.dropped
        granted = pending.bucket.take(len(lines), now)
        if granted < len(lines):
            if pending.dropped == 0:
                pending.marker_at = len(pending.lines) + granted
            pending.dropped += len(lines) - granted
            pending.dropped_total += len(lines) - granted
        if was_empty and lines:
            pending.first_at = now
        pending.lines.extend(lines[:granted])
        pending.bytes += sum(map(len, lines[:granted]))
        pending.seq = seq
        while len(pending.lines) >= self.batch_lines or pending.bytes >= BATCH_CHARS:
            self._flush(server_id, pending, limit=self.batch_lines)

    def add_notice(self, server_id: str, line: str) -> None:
        """A line of the agent's own ("[pentad] stop: SIGTERM after 30 s"), never throttled: pending lines
        go first, then this line in a batch of its own."""
        pending = self._servers.get(server_id)
        if pending is not None:
            self._flush(server_id, pending)
        self.emit(ConsoleBatch(server_id, (line,), 0, pending.seq if pending else 0, "agent"))

    def flush(self, server_id: str | None = None) -> None:
        for name, pending in list(self._servers.items()):
            if server_id is None or name == server_id:
                self._flush(name, pending)

    def flush_due(self) -> None:
        """Send every batch whose window has passed."""
        now = self.clock()
        for name, pending in list(self._servers.items()):
            if (pending.lines or pending.dropped) and now - pending.first_at >= self.window:
                self._flush(name, pending)

    def forget(self, server_id: str) -> None:
        pending = self._servers.pop(server_id, None)
        if pending is not None:
            self._flush(server_id, pending)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.window)
            self.flush_due()

    def _flush(self, server_id: str, pending: _Pending, limit: int | None = None) -> None:
        """Send the pending lines (at most `limit`) in batches of at most BATCH_CHARS characters each."""
        wanted = len(pending.lines) if limit is None else min(limit, len(pending.lines))
        while pending.lines or pending.dropped:
            count, size = 0, 0
            for line in pending.lines[:wanted]:
                if count and size + len(line) > BATCH_CHARS:
                    break
                count, size = count + 1, size + len(line)
            self._emit_batch(server_id, pending, count)
            wanted -= count
            if wanted <= 0:
                return

    def _emit_batch(self, server_id: str, pending: _Pending, count: int) -> None:
        lines = pending.lines[:count]
        dropped = 0
        if pending.dropped and pending.marker_at is not None and pending.marker_at <= count:
            # The marker sits where the first line was dropped; it does not count against the batch size.
            lines.insert(pending.marker_at, dropped_marker(pending.dropped))
            dropped, pending.dropped, pending.marker_at = pending.dropped, 0, None
        del pending.lines[:count]
        pending.bytes = sum(map(len, pending.lines))
        if pending.marker_at is not None:
            pending.marker_at -= count
        pending.first_at = self.clock() if pending.lines or pending.dropped else 0.0
        self.emit(ConsoleBatch(server_id, tuple(lines), dropped, pending.seq, pending.source))
