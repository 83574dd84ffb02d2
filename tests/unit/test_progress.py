"""Progress relay: immediate first text, throttling, heartbeats, always-growing progress, no secrets.

Time is a fake clock: the tests move it and call ``tick()`` as the relay's timer would.
"""

from __future__ import annotations

import itertools

import anyio
import pytest

from grok_chat_mcp.progress import ProgressRelay
from grok_chat_mcp.redaction import Secrets

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, float, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.sent.append((self.clock.now, progress, message))

    @property
    def messages(self) -> list[str | None]:
        return [message for _, _, message in self.sent]


def relay_with_clock(**options: float) -> tuple[ProgressRelay, Recorder, Clock]:
    clock = Clock()
    record = Recorder(clock)
    return ProgressRelay(record, "grok-4", clock=clock, **options), record, clock  # type: ignore[arg-type]


async def test_first_text_at_once_then_throttled() -> None:
    relay, record, clock = relay_with_clock(interval=0.1, heartbeat=0.15)
    await relay.text("a")  # sent at once
    assert record.messages == ["grok-4: 1 chars received ... a"]
    for piece in "bcdefgh":
        clock.now += 0.02
        await relay.text(piece)
        await relay.tick()
    texts = [t for t, _, m in record.sent if m and "so far" not in m]
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(texts))  # throttled
    assert len(texts) < 8  # fewer notifications than pieces
    clock.now += 0.1
    await relay.tick()  # the pending text goes out once its interval is over
    assert record.messages[-1] == "grok-4: 8 chars received ... abcdefgh"


async def test_heartbeats_while_nothing_arrives_and_progress_always_grows() -> None:
    relay, record, clock = relay_with_clock(interval=0.1, heartbeat=5)
    await relay.text("abc")
    clock.now += 4
    assert await relay.tick() == pytest.approx(clock.now + 1)  # the next heartbeat is due in 1 s
    assert len(record.sent) == 1
    clock.now += 1
    await relay.tick()
    assert record.messages[-1] == "grok-4: 3 chars received, 5s so far ... abc"
    clock.now += 5
    await relay.tick()
    values = [p for _, p, _ in record.sent]
    assert values == sorted(set(values))  # strictly increasing


async def test_waiting_heartbeats_for_non_streaming_calls() -> None:
    relay, record, clock = relay_with_clock(heartbeat=5)
    for _ in range(3):
        clock.now += 5
        await relay.tick()
    assert record.messages == [f"grok-4: waiting for upstream, {s}s" for s in (5, 10, 15)]


async def test_status_shows_only_the_last_80_characters_on_one_line() -> None:
    relay, record, _ = relay_with_clock()
    await relay.text("x" * 5000 + " the\nend")
    (message,) = record.messages
    assert message is not None
    assert message.startswith("grok-4: 5,008 chars received ... ")
    assert message.endswith("x the end") and len(message) < 130


async def test_detached_relay_sends_nothing_but_counts() -> None:
    relay, record, clock = relay_with_clock(heartbeat=1)
    relay.detach()
    await relay.text("hello")
    clock.now += 2
    await relay.tick()
    assert record.sent == [] and relay.chars == 5


@pytest.mark.parametrize("length", [6, 16, 44])
async def test_no_status_shows_any_part_of_a_secret(length: int) -> None:
    """Upstream echoing the token, whole and cut at every offset: no fragment of 6+ characters shows."""
    secret = "".join(chr(ord("A") + i % 26) for i in range(length))
    clock = Clock()
    record = Recorder(clock)
    relay = ProgressRelay(record, "m", interval=0, secrets=Secrets([secret]), clock=clock)
    for cut in range(length + 1):
        await relay.text(f" {secret} and {secret[:cut]}")
        await relay.text(f"{secret[cut:]} " + "y" * (cut % 7) + secret * 2)
    fragments = {secret[i : i + 6] for i in range(length - 5)}
    for message in record.messages:
        assert message is not None
        assert not any(fragment in message for fragment in fragments), message


async def test_the_timer_sends_pending_text_and_a_final_flush() -> None:
    record = Recorder(Clock())
    async with ProgressRelay(record, "m", interval=0.05, heartbeat=10).running() as relay:
        await relay.text("x")
        await relay.text("y")  # throttled: pending, sent by the timer
        with anyio.fail_after(5):
            while len(record.sent) < 2:
                await anyio.sleep(0.01)
        await relay.text("z")
    assert record.messages[-1] == "m: 3 chars received ... xyz"
