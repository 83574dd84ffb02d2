"""The stdio transport: the SDK's session over our own wire, which answers malformed input.

Why not the SDK's default ``stdio_server()``: it reads stdin in a worker thread (slower per message,
and Ctrl-C waits for the next line), and a line it cannot parse (bad JSON, a batch, nesting past
its limit, a huge integer, a request without ``method``) gets no reply at all, so the client
waits for its own timeout. JSON-RPC requires an error reply. Here:

- stdin and stdout are read and written on the event loop when they are pipes, sockets or
  terminals (the usual case), through private duplicates; fd 0 then points at the null device and
  fd 1 at stderr, so nothing stray reaches the protocol stream. Other kinds (a regular file, the
  null device, or Windows) fall back to threads.
- every line is validated once, then handed to the SDK's session directly (:class:`Incoming` and
  :class:`Outgoing` are the stream objects its ``run()`` takes; no reader or writer task, no memory
  streams in between). A bad line gets ``-32700`` (parse error) or ``-32600`` (invalid request),
  with the request's id where it can be read, and the server carries on.
- one line may be at most :data:`MAX_LINE_BYTES`; a longer one is discarded as it streams past and
  answered with a parse error.
- SIGINT and SIGTERM end the server at once: in-flight calls are cancelled, which aborts their
  upstream requests; the exit status is 128 + the signal number, without a traceback.

The fix for the missing replies belongs in the SDK's stdio reader; this layer is the workaround.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from typing import IO, Any, Protocol, Self

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.shared.message import SessionMessage

logger = logging.getLogger(__name__)

#: The longest JSON-RPC line accepted: room for a request with a 20 MiB image as a data: URL.
MAX_LINE_BYTES = 64 * 1024 * 1024
PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class LineTooLong(Exception):
    """A line over :data:`MAX_LINE_BYTES`; it has been read past and discarded."""


class Wire(Protocol):
    async def read_line(self) -> bytes | None: ...  # None at end of input; raises LineTooLong
    async def write(self, *parts: bytes) -> None: ...  # one line, in parts (no copy to join them)


def _diagnose(line: bytes) -> bytes:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
        return error_reply(None, PARSE_ERROR, f"Parse error: {reason}")
    if isinstance(data, list):
        return error_reply(None, INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
    if not isinstance(data, dict):
        return error_reply(None, INVALID_REQUEST, "Invalid Request: a message must be a JSON object")
    request_id = data.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        request_id = None
    if "method" not in data and not {"result", "error"} & data.keys():
        why = "no 'method'"
    elif not isinstance(data.get("method", ""), str):
        why = "'method' must be a string"
    elif data.get("jsonrpc") != "2.0":
        why = "'jsonrpc' must be \"2.0\""
    else:
        why = "the message does not fit the protocol (invalid text, or nesting too deep)"
    return error_reply(request_id, INVALID_REQUEST, f"Invalid Request: {why}")


def error_reply(request_id: str | int | None, code: int, message: str) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


class _WireStream:
    """What both stream objects share: the wire, and closing (after which they refuse to work)."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Incoming(_WireStream):
    """The SDK's read stream, read straight off the wire: valid messages only; the others are
    answered here. No reader task and no memory stream between the pipe and the SDK's session."""

    async def receive(self) -> SessionMessage | Exception:
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                line = await self._wire.read_line()
            except LineTooLong:
                logger.warning("refused a message over %d MiB", MAX_LINE_BYTES // 2**20)
                message = f"Parse error: message larger than {MAX_LINE_BYTES // 2**20} MiB"
                await self._wire.write(error_reply(None, PARSE_ERROR, message))
                continue
            if line is None:
                raise anyio.EndOfStream
            if not line.strip():
                continue
            try:
                return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
            except Exception:  # any failure gets a reply, diagnosed below
                reply = _diagnose(line)
            logger.warning("answered a malformed message: %s", reply.decode()[:200].rstrip())
            await self._wire.write(reply)

    def __aiter__(self) -> Incoming:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class Outgoing(_WireStream):
    """The SDK's write stream, written straight onto the wire: one whole line per message, so
    concurrent replies never interleave. No writer task and no memory stream in between."""

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        # What the SDK's own writer sends, as bytes: a large result is neither decoded to text
        # nor encoded back, nor copied to add the newline.
        data = types.jsonrpc_message_adapter.dump_json(item.message, by_alias=True, exclude_unset=True)
        try:
            await self._wire.write(data, b"\n")
        except OSError as exc:  # the client has gone: what the SDK expects from a closed stream
            raise anyio.BrokenResourceError from exc


class PipeWire:
    """The wire on the event loop: asyncio pipe transports over private duplicates of fd 0 and 1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read_line(self) -> bytes | None:
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the last line, without a newline
            return exc.partial or None
        except asyncio.LimitOverrunError as exc:
            await self._discard(exc.consumed)
            raise LineTooLong from None

    async def _discard(self, consumed: int) -> None:
        await self._reader.readexactly(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return

    async def write(self, *parts: bytes) -> None:
        for part in parts:  # no await in between: lines never interleave
            self._writer.write(part)
        await self._writer.drain()


class ThreadWire:
    """The wire through worker threads, for stdin/stdout that the event loop cannot watch."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._lock = anyio.Lock()

    async def read_line(self) -> bytes | None:
        line = await anyio.to_thread.run_sync(
            self._stdin.readline, MAX_LINE_BYTES + 1, abandon_on_cancel=True
        )
        if not line:
            return None
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = await anyio.to_thread.run_sync(self._stdin.readline, 1 << 20, abandon_on_cancel=True)
                if not rest or rest.endswith(b"\n"):
                    raise LineTooLong
        return line

    async def write(self, *parts: bytes) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._write, parts)

    def _write(self, parts: tuple[bytes, ...]) -> None:
        for part in parts:
            self._stdout.write(part)
        self._stdout.flush()


def _watchable(fd: int) -> bool:
    """A pipe, socket or terminal. Not other devices: ``/dev/null`` cannot be polled (asyncio never
    sees its end of input; uvloop aborts the process)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))


@contextlib.asynccontextmanager
async def open_wire() -> AsyncIterator[Wire]:
    """The process's stdin/stdout as a :class:`Wire`, with fd 0/1 diverted while it is open."""
    if sys.platform == "win32" or not (_watchable(0) and _watchable(1)):
        yield ThreadWire(sys.stdin.buffer, sys.stdout.buffer)
        return
    import fcntl

    private_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    private_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    blocking = (os.get_blocking(private_in), os.get_blocking(private_out))
    saved = (os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # stray reads see end of input ...
    os.dup2(2, 1)  # ... and stray prints land on stderr, not in the protocol stream
    os.close(null)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES, loop=loop)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(private_in, "rb", buffering=0)
    )
    write_transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop),
        os.fdopen(private_out, "wb", buffering=0),
    )
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    try:
        yield PipeWire(reader, writer)
    finally:
        read_transport.close()
        write_transport.close()
        for fd, was_blocking in zip(saved, blocking, strict=True):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, was_blocking)  # a terminal shared with the shell stays as it was
        for target, fd in enumerate(saved):
            with contextlib.suppress(OSError):
                os.dup2(fd, target)
            os.close(fd)


async def serve(server: Any) -> int:
    """Serve ``server`` (an ``MCPServer``) over stdio until end of input or a signal; the exit status."""
    lowlevel = getattr(server, "_lowlevel_server", None)  # as the SDK's own in-memory client does
    if lowlevel is None:  # pragma: no cover - an SDK without it: its own transport, as before
        await server.run_stdio_async()
        return 0
    received: list[int] = []
    async with open_wire() as wire, anyio.create_task_group() as group:
        if sys.platform != "win32":
            group.start_soon(_stop_on_signal, group.cancel_scope, received)
        await lowlevel.run(Incoming(wire), Outgoing(wire), lowlevel.create_initialization_options())
        group.cancel_scope.cancel()
    if received:
        logger.info("stopped by %s", signal.Signals(received[0]).name)
        return 128 + received[0]
    return 0


async def _stop_on_signal(scope: anyio.CancelScope, received: list[int]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            received.append(signum)
            scope.cancel()
            return
