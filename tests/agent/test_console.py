"""Console batching and throttling (units, with a hand-driven clock), and a flooding game under a real shim
whose excess output is dropped with a visible marker while the game keeps running."""

from __future__ import annotations

from pathlib import Path

from pentad.agent.console import ConsoleBatcher, dropped_marker
from pentad.agent.events import ConsoleBatch, ServerState, StateChanged
from pentad.agent.runtime import EVENTS_MAX, Runtime
from pentad.panel_wire.serverspec import ServerSpec
from tests.agent.conftest import Events, agent_settings, eventually


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def batcher(**options: int) -> tuple[ConsoleBatcher, list[ConsoleBatch], Clock]:
    batches: list[ConsoleBatch] = []
    clock = Clock()
    values = {"batch_ms": 50, "batch_lines": 512, "lines_per_second": 1000, "burst": 1000, **options}
    return ConsoleBatcher(batches.append, clock=clock, **values), batches, clock


def test_lines_wait_for_the_window_then_go_in_one_batch() -> None:
    console, batches, clock = batcher()
    console.feed("s1", ["a", "b"], seq=2)
    console.feed("s1", ["c"], seq=3)
    console.flush_due()
    assert batches == []  # the window has not passed
    clock.now += 0.051
    console.flush_due()
    assert batches == [ConsoleBatch("s1", ("a", "b", "c"), 0, 3, "game")]


def test_a_full_batch_goes_at_once_and_batches_never_exceed_the_size() -> None:
    console, batches, _ = batcher(batch_lines=512, lines_per_second=100_000, burst=100_000)
    console.feed("s1", [str(n) for n in range(1300)], seq=1300)
    assert [len(batch.lines) for batch in batches] == [512, 512]
    console.flush()
    assert [len(batch.lines) for batch in batches] == [512, 512, 276]
    assert [line for batch in batches for line in batch.lines] == [str(n) for n in range(1300)]


def test_long_lines_make_more_batches_each_small_enough_for_one_frame() -> None:
    """The panel's server reads frames of 64 KiB: 512 lines of 8 KiB must not become one batch."""
    from pentad.agent.console import BATCH_CHARS

    console, batches, _ = batcher(lines_per_second=100_000, burst=100_000)
    long = [f"{n:04d}" + "x" * 8000 for n in range(20)]
    console.feed("s1", long, seq=20)
    console.flush()
    assert all(sum(map(len, batch.lines)) <= BATCH_CHARS for batch in batches)
    assert [line for batch in batches for line in batch.lines] == long
    assert len(batches) == 10
    console.feed("s1", ["y" * (BATCH_CHARS + 5)], seq=21)  # one line longer than a batch goes alone
    console.flush()
    assert batches[-1].lines == ("y" * (BATCH_CHARS + 5),)


def test_a_flood_is_throttled_with_a_visible_dropped_marker() -> None:
    console, batches, clock = batcher(lines_per_second=100, burst=100)
    console.feed("flood", [f"line {n}" for n in range(10_000)], seq=10_000)
    console.flush()
    assert len(batches) == 1
    assert batches[0].lines[:100] == tuple(f"line {n}" for n in range(100))
    assert batches[0].lines[100] == dropped_marker(9900) == "[pentad] 9900 lines dropped (throttled)"
    assert batches[0].dropped == 9900
    # One second later the bucket has refilled: 100 more lines pass, the rest is dropped and counted again.
    clock.now += 1.0
    console.feed("flood", [f"more {n}" for n in range(150)], seq=10_150)
    console.flush()
    assert batches[1].lines[-1] == dropped_marker(50)
    assert len(batches[1].lines) == 101
    assert console.dropped_total("flood") == 9950


def test_servers_have_their_own_buckets() -> None:
    console, batches, _ = batcher(lines_per_second=10, burst=10)
    console.feed("noisy", ["x"] * 50)
    console.feed("quiet", ["hello"])
    console.flush()
    quiet = [batch for batch in batches if batch.server_id == "quiet"]
    assert quiet == [ConsoleBatch("quiet", ("hello",), 0, 0, "game")]


def test_agent_notices_are_never_throttled() -> None:
    console, batches, _ = batcher(lines_per_second=1, burst=1)
    console.feed("s1", ["a", "b", "c"])
    console.add_notice("s1", "[pentad] stop: SIGTERM")
    assert [batch.lines for batch in batches] == [("a", dropped_marker(2)), ("[pentad] stop: SIGTERM",)]


async def test_a_flooding_game_keeps_running_and_its_excess_is_dropped(
    opened: tuple[Runtime, Events],
) -> None:
    runtime, events = opened
    runtime.batcher.rate = 200
    runtime.batcher.burst = 200
    spec = ServerSpec(server_id="flood", startup="seq 1 50000; echo flood-done; cat")
    await runtime.start(spec)
    await events.wait_for(lambda e: isinstance(e, ConsoleBatch) and e.server_id == "flood" and e.dropped > 0)
    assert any(line.endswith("lines dropped (throttled)") for line in events.lines("flood"))
    assert runtime.status("flood").state == ServerState.RUNNING  # never killed for its output
    # Everything reached the shim's ring, dropped or not: the history has the end of the flood.
    history = await runtime.console_history("flood", 5)
    assert history[-1] == "flood-done"
    await runtime.send_command("flood", "still alive")

    async def echoed() -> bool:
        return "still alive" in await runtime.console_history("flood", 1)

    await eventually(echoed)


async def test_events_wait_bounded_while_nobody_reads(data_root: Path) -> None:
    """Without a panel link reading events, console batches stop queueing at EVENTS_MAX; state changes
    still queue."""
    runtime = Runtime(agent_settings(data_root / "agent"))
    for n in range(EVENTS_MAX + 5):
        runtime.batcher.add_notice("s1", f"line {n}")
    assert runtime.events_dropped == 5
    runtime._emit(StateChanged("s1", ServerState.RUNNING, ServerState.STARTING, "done_line"))
    events = runtime.events()
    first = await anext(events)
    assert isinstance(first, ConsoleBatch)
    assert first.lines == ("line 0",)
    await events.aclose()
