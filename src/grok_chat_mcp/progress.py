"""Progress notifications: a readable status while text arrives, and heartbeats while waiting."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from grok_chat_mcp.errors import redact

Report = Callable[[float, float | None, str | None], Awaitable[None]]

#: How much of the latest text a status shows.
TAIL_CHARS = 80
_SPACE = re.compile(r"\s+")


class ProgressRelay:
    """Sends ``notifications/progress`` for one tool call.

    Each message is a one-line status a person can read, as clients show it in a status line:
    ``grok-4: 1,240 chars received ... <the last ~80 characters>``. It is sent as soon as text
    arrives, then at most every ``interval`` seconds. While nothing has been sent for
    ``heartbeat`` seconds, a heartbeat says how long the call has waited, so clients that reset
    their timeout on progress keep long calls alive. ``progress`` counts received characters plus
    one per heartbeat, so it always increases.
    """

    def __init__(
        self,
        report: Report,
        label: str,
        *,
        interval: float = 0.2,
        heartbeat: float = 5.0,
        secrets: tuple[str | None, ...] = (),
    ) -> None:
        self._report = report
        self._secrets = tuple(secret for secret in secrets if secret)
        # The tail keeps enough extra characters that a secret cut at its start is cut off whole.
        self._keep = TAIL_CHARS + max((len(secret) for secret in self._secrets), default=0)
        self._label = label
        self._interval = interval
        self._heartbeat = heartbeat
        self._pending = False
        self._chars = 0
        self._tail = ""
        self._units = 0
        self._beats = 0
        self._lock = anyio.Lock()
        self._wake = anyio.Event()
        self._last_text = float("-inf")  # throttles text
        self._started = self._last = time.monotonic()  # heartbeat clock

    async def text(self, piece: str) -> None:
        """Take newly arrived text; send a status now unless one went out very recently."""
        self._chars += len(piece)
        self._tail = (self._tail + piece[-self._keep :])[-self._keep :]
        self._pending = True
        if time.monotonic() - self._last_text >= self._interval:
            await self.flush()
        else:
            self._wake.set()  # the timer sends it once the interval is over

    def status(self, now: float | None = None) -> str:
        """The one-line status: what has arrived (or how long the call has waited)."""
        if not self._chars:
            waited = (now or time.monotonic()) - self._started
            return f"{self._label}: waiting for upstream, {waited:.0f}s"
        tail = _SPACE.sub(
            " ", _hold_back(redact(self._tail, self._secrets), self._secrets)[-TAIL_CHARS:]
        ).strip()
        head = f"{self._label}: {self._chars:,} chars received"
        if now is not None:
            head += f", {now - self._started:.0f}s so far"
        return f"{head} ... {tail}" if tail else head

    async def flush(self) -> None:
        """Send the status if text arrived since the last one."""
        async with self._lock:  # one notification at a time, so progress only grows
            if not self._pending:
                return
            self._pending = False
            self._units = max(self._units + 1, self._chars + self._beats)
            self._last = self._last_text = time.monotonic()
            await self._report(float(self._units), None, self.status())

    async def _send_heartbeat(self, now: float) -> None:
        async with self._lock:
            self._beats += 1
            self._units += 1
            self._last = time.monotonic()
            await self._report(float(self._units), None, self.status(now))

    async def _timer(self) -> None:
        """Sends throttled statuses when their interval is over; heartbeats when all is quiet."""
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
        """The timer runs while inside; a pending status is sent on a normal exit."""
        self._last = self._started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(self._timer)
            try:
                yield self
                await self.flush()
            finally:
                group.cancel_scope.cancel()


def _hold_back(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without a trailing start of a secret (the rest of it may arrive in the next piece)."""
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(text)), 3, -1):
            if text.endswith(secret[:size]):
                return text[:-size]
    return text
