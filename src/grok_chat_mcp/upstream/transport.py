"""The httpx transport the client sends through: httpcore's connection pool on asyncio's sockets.

httpx's own transport runs httpcore over anyio streams; this one gives the same pool an
:class:`httpcore.AsyncNetworkBackend` built on asyncio protocols (why: docs/design.md, "The
upstream transport"). Only public extension points: httpx's ``AsyncBaseTransport`` and httpcore's
network-backend interface.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpcore
import httpx

#: Bytes a connection buffers from the socket before it stops reading (until they are taken).
READ_BUFFER_HIGH = 1024 * 1024
READ_BUFFER_LOW = 256 * 1024
#: Happy eyeballs: start the next address of a host after this many seconds (RFC 8305).
HAPPY_EYEBALLS_DELAY = 0.25

_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


def _as_httpx(exc: Exception) -> Exception:
    """The httpx exception for an httpcore one (the most specific that applies); others unchanged."""
    for kind in type(exc).__mro__:
        mapped = _ERRORS.get(kind)
        if mapped is not None:
            return mapped(str(exc))
    return exc


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpcore connection pool (HTTP/1.1) on :class:`AsyncioBackend`, as an httpx transport."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core)
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Body(httpx.AsyncByteStream):
    """A response body from the pool, with httpx's exceptions."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio's transports and protocols (either event loop)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {"local_addr": (local_address, 0) if local_address else None}
        if _has_happy_eyeballs(loop):
            options["happy_eyeballs_delay"] = HAPPY_EYEBALLS_DELAY
        connection = _Connection()
        with _connect_errors():
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: connection, host, port, **options)
        connection.set_options(socket_options)
        return AsyncioStream(connection)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        connection = _Connection()
        with _connect_errors():
            async with asyncio.timeout(timeout):
                await loop.create_unix_connection(lambda: connection, path)
        connection.set_options(socket_options)
        return AsyncioStream(connection)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@contextmanager
def _connect_errors() -> Iterator[None]:
    """Connection failures as httpcore's ``ConnectTimeout`` / ``ConnectError``."""
    try:
        yield
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc) or "timed out while connecting") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc


_EYEBALLS: dict[type[asyncio.AbstractEventLoop], bool] = {}


def _has_happy_eyeballs(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this event loop's ``create_connection`` races addresses (asyncio's does, uvloop's not)."""
    kind = type(loop)
    if kind not in _EYEBALLS:
        try:
            _EYEBALLS[kind] = "happy_eyeballs_delay" in inspect.signature(loop.create_connection).parameters
        except (TypeError, ValueError):
            _EYEBALLS[kind] = False
    return _EYEBALLS[kind]


_HEAD, _BODYLESS, _LENGTH, _CHUNKED, _OPEN = range(5)
_LAST_CHUNK = b"\r\n0\r\n\r\n"


class ResponseEnds:
    """Where each response on a connection ends, so that bytes after it are held back from
    httpcore's parser: an unsolicited response must never become the next request's answer.

    A lookout, not a parser: a Content-Length body is counted, a chunked one ends at the first
    ``CRLF 0 CRLF CRLF``, a 1xx, 204 or 304 head has no body; what it cannot frame (no length,
    trailers, a head over 64 KiB, bytes that are not a response) passes through whole. A wrong
    guess only splits a read or retires a connection early; no byte is lost or reordered.
    """

    MAX_HEAD = 64 * 1024

    def __init__(self) -> None:
        self._state = _HEAD
        self._head = b""
        self._remaining = 0
        self._tail = b""

    def end(self, data: bytes) -> int:
        """Take the next bytes received; return the offset just past the end of the current
        response if it ends inside ``data`` (nothing after it is taken), else -1."""
        at = 0
        while self._state == _HEAD:
            at = self._head_end(data, at)
            if at < 0:
                return -1
        if self._state == _BODYLESS:
            self._state = _HEAD
            return at
        if self._state == _LENGTH:
            if len(data) - at < self._remaining:
                self._remaining -= len(data) - at
                return -1
            self._state = _HEAD
            return at + self._remaining
        if self._state == _CHUNKED:
            return self._chunked_end(data, at)
        return -1

    def _head_end(self, data: bytes, at: int) -> int:
        """The offset after the head that starts at ``at`` (setting what follows it), or -1."""
        pending = self._head
        buffer, start, shift = (pending + data[at:], 0, len(pending) - at) if pending else (data, at, 0)
        stop = buffer.find(b"\r\n\r\n", start)
        if not b"HTTP/".startswith(buffer[start : start + 5]) or (
            stop < 0 and len(buffer) - start > self.MAX_HEAD
        ):
            self._state, self._head = _OPEN, b""
            return -1
        if stop < 0:
            self._head = buffer[start:]
            return -1
        self._head = b""
        status = buffer[start + 9 : start + 12]
        lines = buffer[start:stop].lower().split(b"\r\n")[1:]
        lengths = [line[15:].strip() for line in lines if line.startswith(b"content-length:")]
        encodings = [line[18:].strip() for line in lines if line.startswith(b"transfer-encoding:")]
        if status[:1] == b"1":
            self._state = _HEAD
        elif status in (b"204", b"304"):
            self._state = _BODYLESS
        elif encodings:
            chunked = encodings[-1].endswith(b"chunked")
            self._state, self._tail = (_CHUNKED, b"\r\n") if chunked else (_OPEN, b"")
        elif len(lengths) == 1 and lengths[0].isdigit():
            self._state, self._remaining = _LENGTH, int(lengths[0])
        else:
            self._state = _OPEN
        return stop + 4 - shift

    def _chunked_end(self, data: bytes, at: int) -> int:
        """The offset after the last chunk (its ``0 CRLF CRLF``), or -1 if it is not in ``data``."""
        straddle = self._tail + data[at : at + len(_LAST_CHUNK) - 1]
        found = straddle.find(_LAST_CHUNK)
        if found >= 0:
            end = at + found + len(_LAST_CHUNK) - len(self._tail)
        else:
            found = data.find(_LAST_CHUNK, at)
            if found < 0:
                keep = len(_LAST_CHUNK) - 1
                self._tail = data[-keep:] if len(data) - at >= keep else (self._tail + data[at:])[-keep:]
                return -1
            end = found + len(_LAST_CHUNK)
        self._state, self._tail = _HEAD, b""
        return end


class _Connection(asyncio.Protocol):
    """One socket's received bytes and its state, as asyncio delivers them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.ends = ResponseEnds()
        self.buffered = 0
        self.eof = False
        self.closed = False
        self.lost: BaseException | None = None
        self.write_paused = False
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio subclasses

    def set_options(self, options: Iterable[httpcore.SOCKET_OPTION] | None) -> None:
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        for option in options or ():
            if sock is not None:
                sock.setsockopt(*option)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_BUFFER_HIGH and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        _wake(self._waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self._waiter)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        _wake(self._waiter)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self._waiter)

    def take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what was received (call when something was)."""
        data = self.chunks.popleft()
        if len(data) > max_bytes:
            self.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        elif self.chunks and len(data) + len(self.chunks[0]) <= max_bytes:
            parts, size = [data], len(data)
            while self.chunks and size + len(self.chunks[0]) <= max_bytes:
                parts.append(self.chunks.popleft())
                size += len(parts[-1])
            data = b"".join(parts)
        end = self.ends.end(data)
        if 0 < end < len(data):  # bytes after a response's end: held, and the connection retired
            self.chunks.appendleft(data[end:])
            data = data[:end]
        self.buffered -= len(data)
        if self._reading_paused and self.buffered < READ_BUFFER_LOW and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def changed(self, seconds: float | None) -> bool:
        """Wait until something arrives, the connection ends or writes resume; False if ``seconds``
        passed first. (HTTP/1.1: a connection is read or written by one task at a time.)"""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await _within(self._waiter, seconds)
        finally:
            self._waiter = None


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _within(waiter: asyncio.Future[None], seconds: float | None) -> bool:
    """Wait for ``waiter``; False if ``seconds`` passed first (one timer, no task)."""
    if seconds is None:
        await waiter
        return True
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        _wake(waiter)

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        await waiter
    finally:
        timer.cancel()
    return not expired


class AsyncioStream(httpcore.AsyncNetworkStream):
    """A connection to upstream, as httpcore reads and writes it."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if not connection.chunks:
            if connection.eof or connection.closed:
                if connection.lost is not None:
                    raise httpcore.ReadError(str(connection.lost) or type(connection.lost).__name__)
                return b""
            if not await connection.changed(timeout):
                raise httpcore.ReadTimeout("no data arrived within the read timeout")
            if not connection.chunks:
                return await self.read(max_bytes, timeout)
        return connection.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        connection = self._connection
        transport = connection.transport
        if not buffer:
            return
        if transport is None or connection.closed or transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        try:
            transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while connection.write_paused and not connection.closed:
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if (left is not None and left <= 0) or not await connection.changed(left):
                raise httpcore.WriteTimeout("the request could not be sent within the write timeout")
        if connection.closed and connection.lost is not None:
            raise httpcore.WriteError(str(connection.lost) or type(connection.lost).__name__)

    async def aclose(self) -> None:
        if self._connection.transport is not None:
            self._connection.transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        connection = self._connection
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        try:
            with _connect_errors():
                async with asyncio.timeout(timeout):
                    transport = await loop.start_tls(
                        connection.transport, connection, ssl_context, server_hostname=server_hostname
                    )
        except BaseException:
            connection.transport.close()
            raise
        connection.transport = cast(asyncio.Transport, transport)
        return AsyncioStream(connection)

    def get_extra_info(self, info: str) -> Any:
        connection = self._connection
        if info == "is_readable":
            return bool(connection.chunks) or connection.eof or connection.closed
        if connection.transport is None:
            return None
        if info == "ssl_object":
            return connection.transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return connection.transport.get_extra_info("sockname")
        if info == "server_addr":
            return connection.transport.get_extra_info("peername")
        if info == "socket":
            return connection.transport.get_extra_info("socket")
        return None
