"""Progress relay: immediate first text, throttling, heartbeats, always-growing progress."""

from __future__ import annotations

import itertools
import time

import anyio
import pytest

from grok_chat_mcp.progress import ProgressRelay

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, float, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.sent.append((time.monotonic(), progress, message))


async def test_streamed_text_is_sent_once_throttled_and_heartbeats_carry_no_text() -> None:
    record = Recorder()
    relay = ProgressRelay(record, "grok-4", streaming=True, interval=0.1, heartbeat=0.15)
    async with relay.running():
        started = time.monotonic()
        await relay.text("a")  # sent at once
        for piece in "bcdefgh":
            await anyio.sleep(0.02)
            await relay.text(piece)
        await anyio.sleep(0.4)  # silence: heartbeats
        await relay.text("end")
    assert record.sent[0][0] - started < 0.05
    assert record.sent[0][2] == "a"
    assert "".join(m for _, _, m in record.sent if m is not None) == "abcdefghend"
    texts = [t for t, _, m in record.sent if m]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(texts))  # throttled
    assert len(texts) < 9  # fewer notifications than pieces
    assert any(m is None for _, _, m in record.sent)  # heartbeats happened, without text
    values = [p for _, p, _ in record.sent]
    assert values == sorted(set(values))


async def test_waiting_heartbeats_for_non_streaming_calls() -> None:
    record = Recorder()
    async with ProgressRelay(record, "grok-3", streaming=False, heartbeat=0.05).running():
        await anyio.sleep(0.18)
    assert len(record.sent) >= 2
    assert all(m is not None and m.startswith("grok-3: waiting for upstream") for _, _, m in record.sent)


async def test_pending_text_is_flushed_by_the_timer_and_on_exit() -> None:
    record = Recorder()
    relay = ProgressRelay(record, "m", streaming=True, interval=0.1, heartbeat=10)
    async with relay.running():
        await relay.text("x")
        await relay.text("y")  # throttled: pending
        await anyio.sleep(0.2)  # the timer sends it without waiting for more text
        assert [m for _, _, m in record.sent] == ["x", "y"]
        await relay.text("z")
    assert [m for _, _, m in record.sent] == ["x", "y", "z"]
