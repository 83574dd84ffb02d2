"""Progress notifications: streamed text as it arrives, and heartbeats while waiting."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

Report = Callable[[float, float | None, str | None], Awaitable[None]]


class ProgressRelay:
    """Sends ``notifications/progress`` for one tool call.

    New text is sent at once, then at most every ``interval`` seconds (never the same text twice).
    While nothing has been sent for ``heartbeat`` seconds, a heartbeat goes out, so clients that
    reset their timeout on progress keep long calls alive. For a streamed call it carries no
    message (the messages, joined, are exactly the text); otherwise it says how long the call has
    waited. ``progress`` counts received characters plus one per heartbeat, so it always increases.
    """

    def __init__(
        self, report: Report, label: str, *, streaming: bool, interval: float = 0.2, heartbeat: float = 5.0
    ) -> None:
        self._report = report
        self._label = label
        self._streaming = streaming
        self._interval = interval
        self._heartbeat = heartbeat
        self._pending: list[str] = []
        self._units = 0
        self._lock = anyio.Lock()
        self._wake = anyio.Event()
        self._last_text = float("-inf")  # throttles text
        self._started = self._last = time.monotonic()  # heartbeat clock

    async def text(self, piece: str) -> None:
        """Take newly arrived text; send it now unless a notification went out very recently."""
        self._pending.append(piece)
        if time.monotonic() - self._last_text >= self._interval:
            await self.flush()
        else:
            self._wake.set()  # the timer sends it once the interval is over

    async def flush(self) -> None:
        """Send the text that has not been sent yet, if any."""
        async with self._lock:  # one notification at a time, so progress only grows
            if not self._pending:
                return
            message = "".join(self._pending)
            self._pending.clear()
            self._units += len(message)
            self._last = self._last_text = time.monotonic()
            await self._report(float(self._units), None, message)

    async def _send_heartbeat(self, now: float) -> None:
        async with self._lock:
            self._units += 1
            self._last = time.monotonic()
            waited = f"{self._label}: waiting for upstream, {now - self._started:.0f}s"
            await self._report(float(self._units), None, None if self._streaming else waited)

    async def _timer(self) -> None:
        """Flushes throttled text when its interval is over; sends heartbeats when all is quiet."""
        while True:
            now = time.monotonic()
            if self._pending and now >= self._last_text + self._interval:
                await self.flush()
                continue
            if now >= self._last + self._heartbeat:
                await self._send_heartbeat(now)
                continue
            due = self._last + self._heartbeat
            if self._pending:
                due = min(due, self._last_text + self._interval)
            self._wake = anyio.Event()
            with anyio.move_on_after(due - now):
                await self._wake.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ProgressRelay]:
        """The timer runs while inside; pending text is flushed on a normal exit."""
        self._last = self._started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(self._timer)
            try:
                yield self
                await self.flush()
            finally:
                group.cancel_scope.cancel()
