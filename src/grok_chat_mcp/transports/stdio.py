"""The stdio transport: the SDK's ``stdio_server()``, plus what it lacks.

- A line that is not a valid message gets a JSON-RPC error reply (with its id where the id can be
  read; none for a notification) instead of silence, and the server carries on.
- A line may be at most :data:`MAX_LINE_BYTES`; a longer one is discarded as it streams past.
- SIGINT and SIGTERM stop the server at once, whatever stdin and stdout are; so does a client that
  closes its end of stdout (seen without waiting for a write; a line read after it is not acted
  on). In-flight calls are cancelled, which closes their upstream requests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import sys
import threading
from collections.abc import AsyncIterable, Callable, Iterator
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.to_thread
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from grok_chat_mcp.structure import TOO_MANY_VALUES, too_many_values

logger = logging.getLogger(__name__)

#: The longest JSON-RPC line accepted: room for a request with a 20 MiB image as a data: URL.
MAX_LINE_BYTES = 64 * 1024 * 1024
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: How much of a discarded or unparsable line is searched for its id.
_ID_SCAN = 1024 * 1024
#: How often a waiting read looks whether the server is stopping (seconds).
_POLL = 0.1
_READ = 64 * 1024
#: What the reader hands on instead of a line over the limit (not JSON, so the SDK refuses it).
_TOO_LONG = "\x00grok-chat-mcp:too-long "


class Sender(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


class LineReader:
    """stdin for ``stdio_server()``: ``readline()`` (run in a worker thread) with a length cap,
    replacement of invalid UTF-8 (U+FFFD), and a way to stop a read that is waiting."""

    def __init__(self, fd: int, limit: int = MAX_LINE_BYTES) -> None:
        self._fd = fd
        self._limit = limit
        #: Asked before a line is handed on: False once nobody can receive an answer to it.
        self.answerable: Callable[[], bool] = lambda: True
        self._buffer = bytearray()
        self._eof = False
        self._stopping = threading.Event()
        self._poll: select.poll | None = None
        if hasattr(select, "poll"):
            poll = select.poll()
            poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            self._poll = poll

    def stop(self) -> None:
        """Make the current and every later ``readline()`` return end of input."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait_stopped(self, timeout: float) -> None:
        self._stopping.wait(timeout)

    def readline(self) -> str:
        """The next line (with its newline); ``""`` at end of input, once stopped, or once no
        answer can be delivered (a line read then is not acted on)."""
        line = self._next()
        if line and not self.answerable():
            self.stop()
            return ""
        if too_many_values(line):  # refused before the SDK parses it: docs/design.md, memory by structure
            return _refusal(line, TOO_MANY_VALUES)
        return line

    def _next(self) -> str:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line.decode("utf-8", "replace")
            if len(self._buffer) > self._limit:
                return self._discard()
            if self._eof:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line.decode("utf-8", "replace")
            self._fill()
            if self._stopping.is_set():
                return ""

    def _fill(self) -> None:
        while self._poll is not None and not self._stopping.is_set():
            if self._poll.poll(int(_POLL * 1000)):
                break
        if self._stopping.is_set():
            return
        try:
            data = os.read(self._fd, _READ)
        except OSError:
            data = b""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def _discard(self) -> str:
        """Skip the rest of an over-long line; hand on a marker with what its start says."""
        head = bytes(self._buffer[:_ID_SCAN]).decode("utf-8", "replace")
        self._buffer.clear()
        while not self._eof and not self._stopping.is_set():
            self._fill()
            end = self._buffer.find(b"\n")
            if end >= 0:
                del self._buffer[: end + 1]
                break
            self._buffer.clear()
        return _refusal(head, f"larger than {MAX_LINE_BYTES // 2**20} MiB")


def _refusal(head: str, why: str) -> str:
    """The marker handed on instead of a line: what its start says, and why it was not."""
    found, request_id, method = scan(head)
    marker = {"id": request_id if found else None, "notification": method and not found, "why": why}
    return _TOO_LONG + json.dumps(marker) + "\n"


class LineWriter:
    """stdout for ``stdio_server()``: whole lines to the fd; a closed stdout stops the server."""

    def __init__(self, fd: int, reader: LineReader) -> None:
        self._fd = fd
        self._reader = reader
        self.gone = False
        reader.answerable = self.open

    def open(self, wait: float = 0) -> bool:
        """Whether the client can still read what is written (checked without writing); waits
        up to ``wait`` seconds for it to close."""
        if not self.gone and hasattr(select, "poll"):
            poll = select.poll()  # one per call: a poll object may not be shared between threads
            poll.register(self._fd, 0)  # only POLLERR (a pipe without reader) and POLLHUP are reported
            if poll.poll(int(wait * 1000)):
                self._closed("closed")
        elif wait:  # pragma: no cover - Windows: a closed stdout shows on a write
            self._reader.wait_stopped(wait)
        return not self.gone

    def wait_closed(self) -> bool:
        """Block until the client closes its end (True) or the server stops reading (False)."""
        while not self._reader.stopping and self.open(_POLL):
            pass
        return self.gone

    def _closed(self, why: str) -> None:
        logger.info("stdout %s by the client; stopping", why)
        self.gone = True
        self._reader.stop()

    def write(self, text: str) -> int:
        if self.gone:
            return len(text)
        data = memoryview(text.encode("utf-8", "replace"))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:  # the client closed its end: nobody can receive answers any more
            self._closed(f"closed ({exc.strerror or type(exc).__name__})")
        return len(text)

    def flush(self) -> None:
        """Every write goes straight to the fd."""


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_VALUE = re.compile(r'\s*:\s*("(?:[^"\\]|\\.)*"|-?\d{1,30}(?![\d.eE]))')


def scan(text: str) -> tuple[bool, str | int | None, bool]:
    """(id found, the id, has a method) for the top-level object a text starts, as far as readable."""
    depth = 0
    found, request_id, method = False, None, False
    for token in _TOKEN.finditer(text, 0, _ID_SCAN):
        kind = token.group()
        if kind in "{[":
            depth += 1
        elif kind in "}]":
            depth -= 1
        elif depth == 1 and kind in ('"id"', '"method"'):
            value = _VALUE.match(text, token.end())
            if value is None:
                continue
            if kind == '"method"':
                method = value.group(1).startswith('"')
            elif not found:
                raw = value.group(1)
                found, request_id = True, json.loads(raw) if raw.startswith('"') else int(raw)
    return found, request_id, method


def diagnose(exc: Exception) -> types.JSONRPCError | None:
    """The error reply for a line the SDK could not take; None for a notification (no reply)."""
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else []
    data = _message_of(errors)
    if isinstance(data, str) and data.startswith(_TOO_LONG):
        marker = json.loads(data[len(_TOO_LONG) :])
        if marker["notification"]:
            return None
        return _error(marker["id"], PARSE_ERROR, f"Parse error: message {marker['why']}")
    if errors and errors[0]["type"] == "json_invalid":
        found, request_id, method = scan(data if isinstance(data, str) else "")
        if method and not found:
            return None
        return _error(request_id, PARSE_ERROR, f"Parse error: {errors[0]['msg']}")
    if isinstance(data, list):
        return _error(None, INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
    if not isinstance(data, dict):
        return _error(None, INVALID_REQUEST, "Invalid Request: a message must be a JSON object")
    request_id = data.get("id")
    if "id" not in data and "method" in data:
        return None  # a notification: never answered, even when malformed
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        request_id = None
    if "method" not in data and not {"result", "error"} & data.keys():
        why = "no 'method'"
    elif not isinstance(data.get("method", ""), str):
        why = "'method' must be a string"
    elif data.get("jsonrpc") != "2.0":
        why = "'jsonrpc' must be \"2.0\""
    else:
        why = "the message does not fit the protocol"
    return _error(request_id, INVALID_REQUEST, f"Invalid Request: {why}")


def _message_of(errors: list[ErrorDetails]) -> Any:
    """The message a validation error was about: the input of an error on the whole message, or
    the object a required field was missing from."""
    for error in errors:
        if len(error["loc"]) <= 1:
            return error.get("input")
    for error in errors:
        if error["type"] == "missing" and len(error["loc"]) == 2:
            return error.get("input")
    return None


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


async def _answer_malformed(
    source: AsyncIterable[SessionMessage | Exception],
    sink: anyio.abc.ObjectSendStream[SessionMessage | Exception],
    replies: Sender,
) -> None:
    """Pass valid messages on to the server; answer the others here."""
    async with sink:
        async for item in source:
            if isinstance(item, SessionMessage):
                await sink.send(item)
                continue
            reply = diagnose(item)
            if reply is not None:
                logger.warning("answered a malformed message: %s", reply.error.message[:200])
                await replies.send(SessionMessage(reply))


@contextlib.contextmanager
def _diverted() -> Iterator[tuple[int, int]]:
    """Private duplicates of fd 0 and 1; meanwhile fd 0 reads the null device and fd 1 writes to
    stderr, so nothing stray reaches the protocol stream."""
    if sys.platform == "win32":  # pragma: no cover - no diversion on Windows
        yield sys.stdin.fileno(), sys.stdout.fileno()
        return
    import fcntl

    private = (fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3), fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3))
    saved = (os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    try:
        yield private
    finally:
        for target, fd in enumerate(saved):
            with contextlib.suppress(OSError):
                os.dup2(fd, target)
            os.close(fd)
        for fd in private:
            os.close(fd)


async def serve(server: Server[Any]) -> int:
    """Serve over stdio until end of input, a signal or a closed stdout; the exit status."""
    received: list[int] = []
    with _diverted() as (stdin_fd, stdout_fd):
        reader = LineReader(stdin_fd)
        writer = LineWriter(stdout_fd, reader)
        stdin, stdout = anyio.wrap_file(reader), anyio.wrap_file(writer)  # type: ignore[arg-type]
        async with stdio_server(stdin, stdout) as (read, write), anyio.create_task_group() as group:
            if sys.platform != "win32":
                group.start_soon(_stop_on_signal, group.cancel_scope, reader, received)
            group.start_soon(_stop_on_closed_stdout, group.cancel_scope, writer)
            valid, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            group.start_soon(_answer_malformed, read, valid, write)
            try:
                await server.run(incoming, write, server.create_initialization_options())
            finally:
                group.cancel_scope.cancel()
                reader.stop()  # the threads waiting on stdin and stdout return
    if received:
        logger.info("stopped by %s", signal.Signals(received[0]).name)
        return 128 + received[0]
    return 0


async def _stop_on_signal(scope: anyio.CancelScope, reader: LineReader, received: list[int]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            received.append(signum)
            reader.stop()  # the worker thread blocked in a read returns at once
            scope.cancel()
            return


async def _stop_on_closed_stdout(scope: anyio.CancelScope, writer: LineWriter) -> None:
    """A client that closes stdout cannot receive answers: stop at once, calls in flight too
    (cancelling them closes their upstream requests), without waiting for a write to fail."""
    if await anyio.to_thread.run_sync(writer.wait_closed):
        scope.cancel()
