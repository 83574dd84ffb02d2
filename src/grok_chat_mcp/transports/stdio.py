"""The stdio transport: the SDK's ``stdio_server()`` as it is, plus what it lacks (docs/design.md).

- Its stdin is :class:`~grok_chat_mcp.transports.stdin_gate.CheckedLines` over a copy of fd 0 (fd 0
  itself reads the null device meanwhile): a line over 64 MiB, or with more structure than a call
  may hold, is refused before the SDK parses it.
- A line that is not a valid message, or was refused, gets a JSON-RPC error reply, with its id
  where it can be read (none for a notification), and the server carries on.
- The client leaving (end of stdin, or its end of stdout closed) ends the server's run normally,
  so that the lifespan finishes what it promised; the process then exits with status 0.
- SIGINT and SIGTERM cancel the run and end the process within :data:`GRACE` seconds, whatever
  the SDK's reader and writer threads are blocked in (a full stdout too); status 128 + the signal.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
from typing import Any, NoReturn

import anyio
import anyio.abc
import anyio.to_thread
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from grok_chat_mcp.transports.malformed import diagnose
from grok_chat_mcp.transports.stdin_gate import checked, claimed_stdin

logger = logging.getLogger(__name__)

#: How long a stop waits for the run to unwind (calls cancelled, store closed) before exiting anyway.
GRACE = 0.5
#: How often the thread watching stdout looks whether the server is done with it (seconds).
_POLL = 0.1


async def serve(server: Server[Any]) -> int:
    """Serve over stdio until the client leaves (then 0), or end the process on a signal."""
    stdio = _Stdio(os.dup(1))  # watched for the client closing it; fd 1 itself is diverted meanwhile
    try:
        async with anyio.create_task_group() as guard:
            if sys.platform != "win32":
                guard.start_soon(stdio.exit_on_signal)
            if hasattr(select, "poll"):
                guard.start_soon(stdio.watch_stdout)
            with claimed_stdin() as stdin:
                async with stdio_server(stdin=checked(stdin)) as (read, write):
                    valid, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
                    guard.start_soon(stdio.relay, read, valid, write)
                    await stdio.run_server(server, incoming, write)
            guard.cancel_scope.cancel()
    finally:
        stdio.finished.set()
        os.close(stdio.stdout_fd)
    return 0


class _Stdio:
    """The state of one stdio session: how its run ends, and whether the client still reads."""

    def __init__(self, stdout_fd: int) -> None:
        self.stdout_fd = stdout_fd
        self.run = anyio.CancelScope()  # cancelled by a signal
        self.reading = anyio.CancelScope()  # cancelled when the client closes stdout
        self.returned = False  # the run has returned (or unwound from a cancel)
        self.finished = threading.Event()  # nothing more to watch: serve() is returning
        self.status: int | None = None  # set by a signal

    async def run_server(
        self,
        server: Server[Any],
        incoming: anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
        write: anyio.abc.ObjectSendStream[SessionMessage],
    ) -> None:
        try:
            with self.run:
                await server.run(incoming, write, server.create_initialization_options())
        except anyio.get_cancelled_exc_class():  # not by a signal: the SDK's transport stopped
            if not self.stdout_open():  # a write met the client's closed stdout before we saw it
                _exit(0, "stdout closed by the client while an answer was being written")
            _exit(1, "the stdio transport stopped")
        except Exception as exc:  # a lifespan that failed, or a bug: nothing can be served
            logger.debug("the server stopped", exc_info=True)
            _exit(1, f"the server stopped: {exc}")
        self.returned = True
        if self.status is not None:
            _exit(self.status)
        if not self.stdout_open():  # stdin may stay open, and the SDK's reader blocked on it
            _exit(0)

    async def exit_on_signal(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.status is not None or self.returned:
                    _exit(self.status or 128 + signum)  # a second signal, or nothing left to stop
                self.status = 128 + signum
                logger.info("stopping on %s", signal.Signals(signum).name)
                late = f"the server did not stop within {GRACE} s; exiting"
                watchdog = threading.Timer(GRACE, _exit, (self.status, late))  # even if the loop is busy
                watchdog.daemon = True
                watchdog.start()
                self.run.cancel()

    def stdout_open(self, wait: float = 0) -> bool:
        """Whether the client can still read what is written (seen without writing); waits up to
        ``wait`` seconds for it to close."""
        if not hasattr(select, "poll"):  # pragma: no cover - Windows: a closed stdout shows on a write
            return True
        poll = select.poll()  # one per call: a poll object may not be shared between threads
        poll.register(self.stdout_fd, 0)  # only POLLERR (a pipe without reader) and POLLHUP come
        return not poll.poll(int(wait * 1000))

    def _wait_closed(self) -> bool:
        while not self.finished.is_set():
            if not self.stdout_open(_POLL):
                return True
        return False

    async def watch_stdout(self) -> None:
        if await anyio.to_thread.run_sync(self._wait_closed, abandon_on_cancel=True):
            logger.info("stdout closed by the client; stopping")
            if self.returned:
                _exit(0)
            self.reading.cancel()

    async def relay(
        self,
        source: anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
        sink: anyio.abc.ObjectSendStream[SessionMessage | Exception],
        replies: anyio.abc.ObjectSendStream[SessionMessage],
    ) -> None:
        """Pass valid messages on to the run and answer the others, until the client leaves."""
        with self.reading:
            async with sink:
                async for item in source:
                    if not self.stdout_open():
                        return  # a line read after the client closed stdout is not acted on
                    if isinstance(item, SessionMessage):
                        await sink.send(item)
                    elif (reply := await anyio.to_thread.run_sync(diagnose, item)) is not None:
                        logger.warning("answered a malformed message: %s", reply.error.message[:200])
                        await replies.send(SessionMessage(reply))


def _exit(status: int, why: str = "") -> NoReturn:
    """End the process now: the SDK's reader and writer threads may be blocked in a read or a
    write that nothing interrupts, and a normal exit would wait for them."""
    if why:
        logger.warning(why)
    logging.shutdown()
    os._exit(status)
