"""The progress relay's timer wakes once per pending status, not once per streamed chunk."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from grok_chat_mcp.progress import ProgressRelay

pytestmark = pytest.mark.anyio


async def test_chunks_within_the_interval_wake_the_timer_once() -> None:
    sent: list[str | None] = []

    async def report(progress: float, total: float | None, message: str | None) -> None:
        sent.append(message)

    now = 1000.0
    relay = ProgressRelay(report, "grok-4", interval=60.0, heartbeat=120.0, clock=lambda: now)
    ticks = 0
    tick = relay.tick

    async def counted() -> float:
        nonlocal ticks
        ticks += 1
        return await tick()

    relay.tick = counted  # type: ignore[method-assign]
    async with relay.running():
        await anyio.lowlevel.checkpoint()
        assert ticks == 1  # the timer's first look
        for piece in "abcdefghij":  # the fake clock stands still: all within one interval
            await relay.text(piece)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
        assert ticks == 2  # woken once, by the second piece (the first went out at once)
        assert sent == ["grok-4: 1 chars received ... a"]
    assert sent[-1] == "grok-4: 10 chars received ... abcdefghij"  # flushed on exit
