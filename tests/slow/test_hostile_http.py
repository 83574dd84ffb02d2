"""Hostile HTTP clients and clean stops (issues 27 and 29): TCP_NODELAY, slow bodies, request
framing, readiness and the shutdown drain, over the real console script on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from standin.upstream import Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.transports.admission import Limits
from grok_chat_mcp.transports.http import Policy, listening_socket, make_server
from tests.conftest import HELLO
from tests.slow.test_hostile import LOOPS, MCP_HEADERS, raise_file_limit, tool_result
from tests.slow.test_http import start_cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sockets")


@contextlib.contextmanager
def cli(stand_in: Upstream, tmp_path: Path, *extra: str, loop: str = "auto", **env: str) -> Iterator[CLI]:
    """The console script over HTTP; stopped at the end if the test did not stop it."""
    process, port = start_cli(stand_in, tmp_path, *extra, GROK_EVENT_LOOP=loop, GROK_MAX_RETRIES="0", **env)
    server = CLI(process, port)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(20)
        server.drain.join(10)
        log = b"".join(server.log)
        assert b"Traceback" not in log, log.decode()[-3000:]


class CLI:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.port = process, port
        self.base = f"http://127.0.0.1:{port}"
        self.log: list[bytes] = []  # drained, so that a full pipe never blocks the server's log
        self.drain = threading.Thread(target=lambda: self.log.extend(process.stderr or ()), daemon=True)
        self.drain.start()

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", self.port))
        return sock


def call_body(request_id: int, scenario: str) -> dict[str, Any]:
    arguments = {"messages": HELLO, "user": f"scenario:{scenario}"}
    params = {"name": "grok_chat_completions", "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def head(length: int, token: str = "made-up-token", path: str = "/mcp") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def answer_and_close(sock: socket.socket, limit: float = 15.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (or ``limit`` passes: a guard)."""
    sock.settimeout(limit)
    received = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(1 << 16):
            received += chunk
        return received, True
    return received, False


# --- TCP_NODELAY (27.2) -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "anyio_backend",
    [("asyncio", {"use_uvloop": False}), ("asyncio", {"use_uvloop": True})],
    ids=["asyncio", "uvloop"],
)
async def test_every_accepted_connection_has_tcp_nodelay(stand_in: Upstream) -> None:
    """Nagle's algorithm with delayed ACKs added ~40 ms to each call on a keep-alive connection
    under plain asyncio, which sets TCP_NODELAY only on sockets made as IPPROTO_TCP."""
    settings = Settings(api_token=None, base_url=stand_in.url("ok"), max_retries=0)
    server = make_server(settings, Policy(host="127.0.0.1", server_token=False), Limits())
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
                (connection,) = server.server_state.connections  # the client's, kept alive
                accepted = connection.transport.get_extra_info("socket")
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            server.should_exit = True


# --- slow bodies hold no slot (29.2) ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_1024_trickling_uploads_neither_block_an_honest_call_nor_stay(
    stand_in: Upstream, tmp_path: Path
) -> None:
    """1,024 connections with made-up bearers each send a complete head (Content-Length: 4096) and
    then one body byte every 3 s. An honest call is served at once and readiness stays ok; each
    upload gets 408 and its connection closed once its body deadline passes."""
    uploads = 1024
    raise_file_limit(2 * uploads + 256)
    with cli(stand_in, tmp_path, "--body-timeout", "8") as server:
        socks: list[socket.socket] = []
        try:
            for index in range(uploads):
                sock = server.connect()
                sock.sendall(head(4096, f"made-up-{index}") + b"{")
                socks.append(sock)
            started = time.monotonic()
            await anyio.sleep(1)  # the server has read the heads (setup, not an assertion)
            async with httpx.AsyncClient(timeout=15) as http:
                with anyio.fail_after(10):
                    response = await http.post(
                        f"{server.base}/mcp", json=call_body(1, "ok"), headers=MCP_HEADERS
                    )
                    ready = await http.get(f"{server.base}/ready")
            assert not tool_result(response)["isError"]
            assert ready.status_code == 200 and ready.json()["status"] == "ok"
            while time.monotonic() - started < 3:  # one more byte each, 3 s after the first
                await anyio.sleep(0.1)
            for sock in socks:
                sock.sendall(b" ")
            answers = [answer_and_close(sock) for sock in socks]  # the 8 s body deadline
        finally:
            for sock in socks:
                sock.close()
    assert {answer.split(b"\r\n", 1)[0] for answer, _ in answers} == {b"HTTP/1.1 408 Request Timeout"}
    assert all(closed for _, closed in answers)
    assert b"request timeout" in answers[0][0]


@pytest.mark.parametrize(
    ("sent", "every", "says"),
    [
        pytest.param(b"", 0.0, "no body byte within the idle timeout", id="first-byte"),
        pytest.param(b'{"jsonrpc"', 0.0, "a gap longer than the idle timeout", id="gap"),
        pytest.param(b"{", 0.4, "the whole body past its deadline, bytes trickling", id="total"),
    ],
)
def test_a_body_that_does_not_arrive_in_time_gets_408_and_is_closed(
    stand_in: Upstream, tmp_path: Path, sent: bytes, every: float, says: str
) -> None:
    with cli(stand_in, tmp_path, "--idle-timeout", "1", "--body-timeout", "3") as server:
        sock = server.connect()
        began = time.monotonic()
        sock.sendall(head(200) + sent)
        answer = b""
        while every and not answer and time.monotonic() - began < 15:
            if select.select([sock], [], [], every)[0]:
                break
            sock.sendall(b" ")
        answer, closed = answer_and_close(sock)
        took = time.monotonic() - began
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), (says, answer)
    assert closed
    if every:
        assert took >= 2.5, "the total deadline, not the gap, ended it"


def test_a_per_address_cap_refuses_one_address_and_serves_another(stand_in: Upstream, tmp_path: Path) -> None:
    with cli(stand_in, tmp_path, "--max-requests-per-address", "2") as server:
        held = [server.connect() for _ in range(2)]
        for sock in held:
            sock.sendall(head(100) + b"{")
        time.sleep(0.5)  # both are in flight (setup, not an assertion)
        third = server.connect()
        third.sendall(head(100) + b"{")
        answer, _ = answer_and_close(third, limit=10)
        local = httpx.HTTPTransport(local_address="127.0.0.2")  # another address on the loopback
        with httpx.Client(transport=local, timeout=10) as http:
            other = http.post(f"{server.base}/mcp", json=call_body(2, "ok"), headers=MCP_HEADERS)
        for sock in [*held, third]:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 429 "), answer
    assert b"retry-after: 1" in answer.lower()
    assert not tool_result(other)["isError"]


@pytest.mark.anyio
async def test_readiness_says_busy_while_the_slots_are_full(stand_in: Upstream, tmp_path: Path) -> None:
    with cli(stand_in, tmp_path, "--max-requests", "1") as server:
        async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as group:
            group.start_soon(
                lambda: http.post(f"{server.base}/mcp", json=call_body(1, "slow2000"), headers=MCP_HEADERS)
            )
            with anyio.fail_after(10):
                while not stand_in.requests:
                    await anyio.sleep(0.02)
            busy = await http.get(f"{server.base}/ready")
            alive = await http.get(f"{server.base}/health")
        ready = await httpx.AsyncClient().get(f"{server.base}/ready")
    assert busy.status_code == 503 and busy.json() == {"status": "busy", "requests": 1, "max_requests": 1}
    assert alive.status_code == 200
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


@pytest.mark.anyio
async def test_a_body_that_completes_when_every_slot_is_taken_gets_503(
    stand_in: Upstream, tmp_path: Path
) -> None:
    """The head came while a slot was free; by the time its body is complete, none is."""
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"}).encode()
    with cli(stand_in, tmp_path, "--max-requests", "1") as server:
        early = server.connect()
        early.sendall(head(len(body)))
        async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as group:
            slow = call_body(1, "slow1500")
            group.start_soon(lambda: http.post(f"{server.base}/mcp", json=slow, headers=MCP_HEADERS))
            with anyio.fail_after(10):
                while not stand_in.requests:
                    await anyio.sleep(0.02)
            early.sendall(body)
            answer, closed = answer_and_close(early, limit=10)
        early.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"busy: Too many requests in flight" in answer and closed


# --- Content-Length with Transfer-Encoding (29.7) ------------------------------------------------------


@pytest.mark.parametrize("path", ["/mcp", "/health"])
def test_content_length_with_transfer_encoding_gets_400_and_is_closed(
    stand_in: Upstream, tmp_path: Path, path: str
) -> None:
    method = "POST" if path == "/mcp" else "GET"
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # what a front proxy may take for a body
    ).encode()
    with cli(stand_in, tmp_path) as server:
        sock = server.connect()
        sock.sendall(request)
        answer, closed = answer_and_close(sock, limit=10)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.count(b"HTTP/1.1 ") == 1, "the request after it was not served"
    assert closed


# --- the shutdown drain (29.6) ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stopping(server: CLI, stand_in: Upstream, *calls: int) -> AsyncIterator[dict[int, httpx.Response]]:
    """The calls (``id -> slow ms``) sent, SIGTERM once upstream has them all; yields their answers."""
    answers: dict[int, httpx.Response] = {}
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:

        async def post(request_id: int) -> None:
            body = call_body(request_id, f"slow{calls[request_id - 1]}")
            answers[request_id] = await http.post(f"{server.base}/mcp", json=body, headers=MCP_HEADERS)

        for request_id in range(1, len(calls) + 1):
            group.start_soon(post, request_id)
        with anyio.fail_after(10):
            while len(stand_in.requests) < len(calls):
                await anyio.sleep(0.02)
        server.process.send_signal(signal.SIGTERM)
        yield answers


def events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


@pytest.mark.anyio
@pytest.mark.parametrize("loop", LOOPS)
async def test_sigterm_lets_calls_in_flight_finish_and_refuses_new_ones(
    stand_in: Upstream, tmp_path: Path, loop: str
) -> None:
    with cli(stand_in, tmp_path, loop=loop) as server:
        async with stopping(server, stand_in, 3000) as answers, httpx.AsyncClient(timeout=10) as late:
            with anyio.fail_after(10):
                while (ready := await late.get(f"{server.base}/ready")).status_code == 200:
                    await anyio.sleep(0.02)
            ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
            refused = await late.post(f"{server.base}/mcp", json=ping, headers=MCP_HEADERS)
        server.process.wait(20)
    assert ready.json()["status"] == "stopping"
    assert refused.status_code == 503 and "stopping" in refused.json()["error"]["message"]
    assert refused.headers["connection"] == "close"
    (answer,) = events(answers[1])
    assert answer["id"] == 1 and answer["result"]["isError"] is False
    assert answer["result"]["structuredContent"]["result"]["choices"][0]["message"]["content"] == "pong"


@pytest.mark.anyio
@pytest.mark.parametrize("loop", LOOPS)
async def test_calls_past_the_grace_get_a_json_rpc_error_that_the_server_stops(
    stand_in: Upstream, tmp_path: Path, loop: str
) -> None:
    """Today's main answered with an empty 200 at once; now the quick call finishes, and the slow
    one is told, with its id, after the grace period; then the process exits."""
    with cli(stand_in, tmp_path, "--shutdown-grace", "2", loop=loop) as server:
        began = time.monotonic()
        async with stopping(server, stand_in, 500, 30000) as answers:
            pass
        server.process.wait(20)
        took = time.monotonic() - began
    (quick,) = events(answers[1])
    assert quick["id"] == 1 and quick["result"]["isError"] is False
    (slow,) = events(answers[2])
    assert slow["id"] == 2 and slow["error"]["code"] == -32001
    assert slow["error"]["message"].startswith("stopping: The server is shutting down")
    assert 2 <= took < 15


@pytest.mark.anyio
@pytest.mark.parametrize("loop", LOOPS)
async def test_a_call_that_answered_running_finishes_within_the_grace_and_is_collected_after(
    stand_in: Upstream, tmp_path: Path, loop: str
) -> None:
    """A running call (here after 1 s) is no longer in flight over HTTP; on SIGTERM it gets the rest
    of the grace, stores its answer, and a server started afterwards on the same file hands it out.
    (Before, the stop cancelled it: the collect read that the call was cut off.)"""
    settings = {"GROK_STORE": f"sqlite://{tmp_path / 'grok.db'}", "GROK_RETURN_AFTER": "1"}
    with cli(stand_in, tmp_path, "--shutdown-grace", "20", loop=loop, **settings) as server:
        async with httpx.AsyncClient(timeout=30) as http:
            reply = await http.post(f"{server.base}/mcp", json=call_body(1, "slow4000"), headers=MCP_HEADERS)
        (running,) = events(reply)
        shown = running["result"]["structuredContent"]
        assert shown["status"] == "running", shown
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(30)
    assert b"Traceback" not in b"".join(server.log)
    collect = {"conversation_id": shown["conversation_id"]}
    body = {**call_body(2, "ok"), "params": {"name": "grok_chat_completions", "arguments": collect}}
    with cli(stand_in, tmp_path, loop=loop, **settings) as again:
        async with httpx.AsyncClient(timeout=30) as http:
            (answer,) = events(await http.post(f"{again.base}/mcp", json=body, headers=MCP_HEADERS))
    assert answer["result"]["isError"] is False, answer
    assert answer["result"]["structuredContent"]["result"]["choices"][0]["message"]["content"] == "pong"
    assert len(stand_in.requests) == 1  # collected, not asked again


@pytest.mark.anyio
async def test_the_python_sdk_client_is_told_the_server_stops(stand_in: Upstream, tmp_path: Path) -> None:
    with cli(stand_in, tmp_path, "--shutdown-grace", "1") as server:
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer sdk-token"}, timeout=30) as http,
            Client(streamable_http_client(f"{server.base}/mcp", http_client=http)) as client,
        ):

            async def stop_when_called() -> None:
                with anyio.fail_after(10):
                    while not stand_in.requests:
                        await anyio.sleep(0.02)
                server.process.send_signal(signal.SIGTERM)

            async with anyio.create_task_group() as group:
                group.start_soon(stop_when_called)
                with pytest.raises(Exception, match="stopping: The server is shutting down"):
                    await client.call_tool(
                        "grok_chat_completions", call_body(1, "slow30000")["params"]["arguments"]
                    )
        server.process.wait(20)
