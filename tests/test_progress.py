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


async def test_streamed_text_gives_throttled_readable_statuses() -> None:
    record = Recorder()
    relay = ProgressRelay(record, "grok-4", interval=0.1, heartbeat=0.15)
    async with relay.running():
        started = time.monotonic()
        await relay.text("a")  # sent at once
        for piece in "bcdefgh":
            await anyio.sleep(0.02)
            await relay.text(piece)
        await anyio.sleep(0.4)  # silence: heartbeats
        await relay.text("end\nof it")
    assert record.sent[0][0] - started < 0.05
    assert record.sent[0][2] == "grok-4: 1 chars received ... a"
    assert record.sent[-1][2] == "grok-4: 17 chars received ... abcdefghend of it"  # one line
    texts = [t for t, _, m in record.sent if m and "so far" not in m]
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(texts))  # throttled
    assert len(texts) < 9  # fewer notifications than pieces
    beats = [m for _, _, m in record.sent if m and "so far" in m]
    assert beats and beats[0].startswith("grok-4: 8 chars received, 0s so far ... abcdefgh")
    values = [p for _, p, _ in record.sent]
    assert values == sorted(set(values))


async def test_status_shows_only_the_last_80_characters() -> None:
    record = Recorder()
    async with ProgressRelay(record, "grok-4.5").running() as relay:
        await relay.text("x" * 5000 + " the end")
    (message,) = [m for _, _, m in record.sent]
    assert message is not None
    assert message.startswith("grok-4.5: 5,008 chars received ... ")
    assert message.endswith("x the end") and len(message) < 130


async def test_waiting_heartbeats_for_non_streaming_calls() -> None:
    record = Recorder()
    async with ProgressRelay(record, "grok-3", heartbeat=0.05).running():
        await anyio.sleep(0.18)
    assert len(record.sent) >= 2
    assert all(m is not None and m.startswith("grok-3: waiting for upstream, ") for _, _, m in record.sent)


async def test_pending_text_is_flushed_by_the_timer_and_on_exit() -> None:
    record = Recorder()
    relay = ProgressRelay(record, "m", interval=0.1, heartbeat=10)
    async with relay.running():
        await relay.text("x")
        await relay.text("y")  # throttled: pending
        await anyio.sleep(0.2)  # the timer sends it without waiting for more text
        assert [m for _, _, m in record.sent] == ["m: 1 chars received ... x", "m: 2 chars received ... xy"]
        await relay.text("z")
    assert [m for _, _, m in record.sent][-1] == "m: 3 chars received ... xyz"


async def test_statuses_never_show_a_secret_even_when_cut() -> None:
    secret = "sk-secret-token-0123456789"
    record = Recorder()
    async with ProgressRelay(record, "grok-4", interval=0, secrets=(secret, None)).running() as relay:
        await relay.text("the key is " + secret[:10])
        await relay.text(secret[10:] + " and " + "y" * 70)  # the cut falls inside the token
    for _, _, message in record.sent:
        assert message is not None
        assert secret not in message and secret[:8] not in message and secret[-8:] not in message
