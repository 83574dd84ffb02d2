"""The upstream transport (httpcore's pool on asyncio sockets), on both event loops, against small
HTTP/1.1 servers on 127.0.0.1 run by the test itself."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from grok_chat_mcp.upstream.transport import READ_BUFFER_HIGH, PooledTransport

LOOPS = [
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
]
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", LOOPS)]

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=60)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """An HTTP/1.1 server whose connections are served by ``handler``; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


@asynccontextmanager
async def client(tls: ssl.SSLContext | None = None, seconds: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=PooledTransport(LIMITS, tls), timeout=seconds) as http:
        yield http


async def request_body(reader: asyncio.StreamReader) -> bytes:
    """Reads one request; returns its body (Content-Length framing, as our client sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def reply(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def until_readable(response: httpx.Response) -> None:
    """Waits until the connection that carried ``response`` has something to read (or ended)."""
    stream = response.extensions["network_stream"]
    for _ in range(500):
        if stream.get_extra_info("is_readable"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing arrived")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        body = await request_body(reader)
        writer.write(reply(b"echo:" + body))
        await writer.drain()


async def test_requests_share_one_kept_alive_connection() -> None:
    async with serving(echo) as server, client() as http:
        for number in range(5):
            response = await http.post(f"http://127.0.0.1:{server.port}/", content=b"n%d" % number)
            assert response.content == b"echo:n%d" % number
    assert server.connections == 1


async def test_a_chunked_stream_arrives_piece_by_piece() -> None:
    go = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_body(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    async with (
        serving(stream) as server,
        client() as http,
        http.stream("POST", f"http://127.0.0.1:{server.port}/", content=b"x") as response,
    ):
        pieces = response.aiter_raw()
        assert await anext(pieces) == b"first"  # before the rest was even written
        go.set()
        assert [piece async for piece in pieces] == [b"second"]


async def test_a_large_body_is_read_whole_under_flow_control() -> None:
    body = bytes(range(256)) * (4 * READ_BUFFER_HIGH // 256)

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_body(reader)
        writer.write(reply(body))
        await writer.drain()

    received = bytearray()
    async with (
        serving(large) as server,
        client() as http,
        http.stream("POST", f"http://127.0.0.1:{server.port}/", content=b"x") as response,
    ):
        async for piece in response.aiter_raw():
            received += piece
            await asyncio.sleep(0)  # a slow reader: the socket buffer fills, reading pauses
    assert received == body


async def test_a_large_request_body_waits_for_the_server_to_read() -> None:
    sent = b"z" * (8 * 1024 * 1024)

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        body = await request_body(reader)
        writer.write(reply(b"%d" % len(body)))
        await writer.drain()

    async with serving(slow_reader) as server, client() as http:
        response = await http.post(f"http://127.0.0.1:{server.port}/", content=sent)
    assert response.content == b"%d" % len(sent)


async def test_a_server_that_never_reads_is_a_write_timeout() -> None:
    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with serving(deaf) as server, client(seconds=0.2) as http:
        with pytest.raises(httpx.WriteTimeout):
            await http.post(f"http://127.0.0.1:{server.port}/", content=b"z" * (64 * 1024 * 1024))


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_body(reader)
        await asyncio.sleep(30)

    async with serving(silent) as server, client(seconds=0.1) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"http://127.0.0.1:{server.port}/", content=b"x")


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with serving(echo) as server:
        port = server.port
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/", content=b"x")


async def test_a_connection_cut_mid_body_is_an_error_not_a_short_answer() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_body(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with serving(cut) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"http://127.0.0.1:{server.port}/", content=b"x")


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await request_body(reader)
        writer.write(reply(b"ok"))
        await writer.drain()  # then the connection closes, as a server's keep-alive timeout does

    async with serving(once) as server, client() as http:
        url = f"http://127.0.0.1:{server.port}/"
        first = await http.post(url, content=b"1")
        assert first.content == b"ok"
        await until_readable(first)  # the server's close has arrived
        assert (await http.post(url, content=b"2")).content == b"ok"
    assert server.connections == 2


async def test_bytes_arriving_on_an_idle_connection_retire_it() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await request_body(reader)
            writer.write(reply(b"answer"))
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(reply(b"UNSOLICITED"))
            await writer.drain()

    async with serving(chatty) as server, client() as http:
        url = f"http://127.0.0.1:{server.port}/"
        first = await http.post(url, content=b"1")
        assert first.content == b"answer"
        await until_readable(first)  # the unsolicited answer has arrived
        assert (await http.post(url, content=b"2")).content == b"answer"
    assert server.connections == 2


async def test_https_through_start_tls() -> None:
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)

    async with serving(echo, server_tls) as server, client(client_tls) as http:
        url = f"https://127.0.0.1:{server.port}/"
        for number in range(3):
            response = await http.post(url, content=b"s%d" % number)
            assert response.content == b"echo:s%d" % number
            assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
    assert server.connections == 1


async def test_an_untrusted_certificate_is_a_connect_error() -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_tls)

    async with serving(echo, server_tls) as server, client(ssl.create_default_context()) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.post(f"https://127.0.0.1:{server.port}/", content=b"x")
