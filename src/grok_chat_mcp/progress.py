"""Progress notifications: a readable status while text arrives, and heartbeats while waiting."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from grok_chat_mcp.redaction import Secrets

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
    one per heartbeat, so it always increases. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        report: Report,
        label: str,
        *,
        interval: float = 0.2,
        heartbeat: float = 5.0,
        secrets: Secrets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report: Report | None = report
        self._secrets = secrets or Secrets()
        # The tail keeps enough extra characters that a secret cut at its start is dropped whole.
        self._keep = TAIL_CHARS + 2 * self._secrets.longest
        self._label = label
        self._interval = interval
        self._heartbeat = heartbeat
        self._clock = clock
        self._pending = False
        self.chars = 0
        self._tail = ""
        self._cut = False
        self._units = 0
        self._lock = anyio.Lock()
        self._wake = anyio.Event()
        self._last_text = float("-inf")  # throttles text
        self.started = self._last = clock()  # heartbeat clock

    def detach(self) -> None:
        """Send nothing more (the tool call has returned); text is still counted."""
        self._report = None

    async def text(self, piece: str) -> None:
        """Take newly arrived text; send a status now unless one went out very recently."""
        self.chars += len(piece)
        joined = self._tail + piece
        self._cut = self._cut or len(joined) > self._keep
        self._tail = joined[-self._keep :]
        waiting, self._pending = self._pending, True
        if self._clock() - self._last_text >= self._interval:
            await self.flush()
        elif not waiting:
            self._wake.set()  # the timer sends it once the interval is over (it knows, if pending)

    def status(self, *, waited: bool = False) -> str:
        """The one-line status: what has arrived (or how long the call has waited)."""
        seconds = self._clock() - self.started
        if not self.chars:
            return f"{self._label}: waiting for upstream, {seconds:.0f}s"
        tail = self._secrets.tail(self._tail, TAIL_CHARS, cut=self._cut)
        tail = _SPACE.sub(" ", tail).strip()
        head = f"{self._label}: {self.chars:,} chars received"
        if waited:
            head += f", {seconds:.0f}s so far"
        return f"{head} ... {tail}" if tail else head

    async def flush(self) -> None:
        """Send the status if text arrived since the last one."""
        async with self._lock:  # one notification at a time, so progress only grows
            if not self._pending:
                return
            self._pending = False
            self._last = self._last_text = self._clock()
            await self._send(self.status())

    async def tick(self) -> float:
        """Send what is due now (a throttled status, or a heartbeat); return when the next is due."""
        now = self._clock()
        if self._pending and now >= self._last_text + self._interval:
            await self.flush()
        elif now >= self._last + self._heartbeat:
            async with self._lock:
                self._last = now
                await self._send(self.status(waited=True))
        due = self._last + self._heartbeat
        if self._pending:
            due = min(due, self._last_text + self._interval)
        return due

    async def _send(self, status: str) -> None:
        self._units = max(self._units + 1, self.chars)
        if self._report is not None:
            await self._report(float(self._units), None, status)

    async def _timer(self) -> None:
        while True:
            due = await self.tick()
            self._wake = anyio.Event()
            with anyio.move_on_after(max(0.0, due - self._clock())):
                await self._wake.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ProgressRelay]:
        """The timer runs while inside; a pending status is sent on a normal exit."""
        self._last = self.started = self._clock()
        async with anyio.create_task_group() as group:
            group.start_soon(self._timer)
            try:
                yield self
                await self.flush()
            finally:
                group.cancel_scope.cancel()
