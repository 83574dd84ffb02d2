"""Raw JSON-RPC over the real console script: malformed input gets a reply, signals stop the server."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
from standin.upstream import Upstream

from tests.conftest import HELLO, SCRIPT, server_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


class Raw:
    """The server process, spoken to line by line."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.selector = selectors.DefaultSelector()
        assert process.stdout is not None
        self.selector.register(process.stdout, selectors.EVENT_READ)
        self.buffer = b""

    def send(self, line: bytes | str | dict[str, Any]) -> None:
        if isinstance(line, dict):
            line = json.dumps(line)
        data = line.encode() if isinstance(line, str) else line
        assert self.process.stdin is not None
        self.process.stdin.write(data + b"\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise TimeoutError("no reply")
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise EOFError("the server closed stdout")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def initialize(self) -> None:
        self.send(INIT)
        assert self.receive()["id"] == 0
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


@contextmanager
def serving(
    stand_in: Upstream, cwd: Path, stderr: int | IO[bytes] = subprocess.PIPE, **env: str
) -> Iterator[Raw]:
    """The console script over stdio, initialized, against the stand-in; reaped on exit."""
    process = subprocess.Popen(
        [SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=server_env(stand_in.url("ok"), GROK_MAX_RETRIES="0", **env),
        cwd=cwd,
    )
    try:
        server = Raw(process)
        server.initialize()
        yield server
    finally:
        reap(process)


@pytest.fixture
def raw(stand_in: Upstream, tmp_path: Path) -> Iterator[Raw]:
    with serving(stand_in, tmp_path) as server:
        yield server


def reap(process: subprocess.Popen[bytes]) -> None:
    """Kill the process if it still runs, wait for it, and close its pipes (bytes still buffered
    for a server that has exited are dropped: closing stdin would raise ``BrokenPipeError``)."""
    if process.poll() is None:
        process.kill()
    process.wait(10)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(BrokenPipeError):
                stream.close()


def call(request_id: int, arguments: str) -> str:
    return (
        f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call",'
        f'"params":{{"name":"grok_chat_completions","arguments":{arguments}}}}}'
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        ("{not json", -32700, None),
        ('{"jsonrpc":"2.0","id":9}', -32600, 9),
        ('[{"jsonrpc":"2.0","id":10,"method":"ping"}]', -32600, None),
        ('"just a string"', -32600, None),
        ('{"jsonrpc":"1.0","id":"a","method":"ping"}', -32600, "a"),
        ('{"jsonrpc":"2.0","id":12,"method":"ping","params":{"n":' + "9" * 5000 + "}}", -32700, 12),
        (call(13, '{"messages":[{"role":"user","content":"x","extra":' + nested(300) + "}]}"), None, 13),
        (call(14, '{"messages":[{"role":"user","content":"x","extra":' + nested(5000) + "}]}"), -32700, 14),
        # Not UTF-8: replaced by U+FFFD, like any other text that is not valid (README, limits).
        (b'{"jsonrpc":"2.0","id":15,"method":"ping","params":{"x":"\xff"}}', None, 15),
        ('{"jsonrpc":"2.0","id":"b","method":5}', -32600, "b"),
    ],
)
def test_malformed_input_gets_a_reply_and_the_server_lives_on(
    raw: Raw, line: str | bytes, code: int | None, request_id: Any
) -> None:
    raw.send(line)
    reply = raw.receive()
    assert reply["id"] == request_id
    if code is not None:
        assert reply["error"]["code"] == code
    else:  # a reply the request can use, never silence
        assert "error" in reply or "result" in reply
    raw.send({"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
    assert raw.receive()["result"]["tools"][0]["name"] == "grok_chat_completions"


def test_lone_surrogates_and_nan_are_answered(raw: Raw) -> None:
    raw.send(call(20, '{"messages":[{"role":"user","content":"\\ud800"}]}'))
    reply = raw.receive()
    assert reply["id"] == 20
    assert "error" in reply or "not valid Unicode" in reply["result"]["content"][0]["text"]
    raw.send(call(21, '{"messages":[{"role":"user","content":"x"}],"temperature":NaN}'))
    reply = raw.receive()
    assert reply["id"] == 21
    assert reply["result"]["isError"] is True
    assert "temperature: nan is not a finite number" in reply["result"]["content"][0]["text"]
    raw.send(call(22, '{"messages":[{"role":"user","content":"x","w":1e400}]}'))
    reply = raw.receive()
    assert "messages[0].w: inf is not a finite number" in reply["result"]["content"][0]["text"]


def test_a_line_over_64_mib_is_refused_before_the_sdk_reads_it(raw: Raw) -> None:
    """The stdin gate bounds a line as HTTP bounds a body: the rest of the line is skipped, the
    request's id answered, and the server carries on."""
    big = call(30, json.dumps({"messages": [{"role": "user", "content": "x" * (65 * 1024 * 1024)}]}))
    raw.send(big)
    reply = raw.receive(timeout=60)
    assert reply["id"] == 30 and reply["error"]["code"] == -32600
    assert "longer than 64 MiB" in reply["error"]["message"]
    raw.send(call(31, json.dumps({"messages": HELLO})))
    assert raw.receive()["id"] == 31


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_an_idle_server_at_once(raw: Raw, signum: int, status: int) -> None:
    raw.process.send_signal(signum)
    assert raw.process.wait(5) == status
    assert raw.process.stderr is not None
    assert b"Traceback" not in raw.process.stderr.read()


def test_sigint_stops_a_busy_server_and_aborts_the_upstream_call(raw: Raw, stand_in: Upstream) -> None:
    raw.send(call(40, json.dumps({"messages": HELLO, "user": "scenario:hang"})))
    deadline = time.monotonic() + 5
    while not stand_in.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stand_in.requests, "the call never reached upstream"
    started = time.monotonic()
    raw.process.send_signal(signal.SIGINT)
    assert raw.process.wait(5) == 130
    assert time.monotonic() - started < 2
    deadline = time.monotonic() + 5
    while not stand_in.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stand_in.disconnects, "the upstream request was not aborted"


def progress_lines(raw: Raw, request_id: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    while True:
        message = raw.receive()
        if message.get("id") == request_id:
            return notes, message
        if message.get("method") == "notifications/progress":
            notes.append(message)


def test_progress_only_for_callers_that_asked_for_it(raw: Raw) -> None:
    arguments = json.dumps({"messages": HELLO, "user": "scenario:sse20", "stream": True})
    raw.send(call(50, arguments))
    notes, reply = progress_lines(raw, 50)
    assert notes == [] and reply["result"]["isError"] is False  # no token: no relay, no notifications
    with_token = json.loads(call(51, arguments))
    with_token["params"]["_meta"] = {"progressToken": "p-51"}
    raw.send(with_token)
    notes, reply = progress_lines(raw, 51)
    assert notes and all(n["params"]["progressToken"] == "p-51" for n in notes)
    assert notes[-1]["params"]["message"].startswith("grok-4: 34 chars received ... Hello from a streamed")


def test_start_up_does_not_import_the_upstream_http_client() -> None:
    code = (
        "import sys, json; from grok_chat_mcp.config import Settings; "
        "from grok_chat_mcp.server import build_server; from grok_chat_mcp.transports import stdio; "
        "build_server(Settings()); print(json.dumps('httpx' in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) is False  # httpx is imported when the first call needs it


def test_a_server_only_listed_never_builds_the_upstream_client(stand_in: Upstream, tmp_path: Path) -> None:
    """Up to the first ``tools/list`` reply (and to exit after it) nothing of the upstream client
    is imported: a client that only lists the tool never pays for httpx or a TLS context."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "grok_chat_mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(stand_in.url("ok")),
        cwd=tmp_path,
    )
    try:
        server = Raw(process)
        server.initialize()
        server.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert server.receive()["result"]["tools"][0]["name"] == "grok_chat_completions"
        assert process.stdin is not None and process.stderr is not None
        process.stdin.close()
        errors = process.stderr.read()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    imported = {line.rsplit("|", 1)[-1].strip() for line in errors.decode().splitlines() if "|" in line}
    assert "grok_chat_mcp.server" in imported  # the import log is complete
    assert not {"httpx", "grok_chat_mcp.upstream", "grok_chat_mcp.request"} & imported


#: ``auto`` is uvloop where it is installed; ``asyncio`` is the fallback (and Windows).
LOOPS = ["auto", "asyncio"]


def serve_once(stdin: Any, stdout: Any, loop: str, base_url: str, cwd: Path) -> tuple[int, bytes]:
    """Run the server on the given stdin/stdout until it exits; its status and stderr."""
    process = subprocess.Popen(
        [SCRIPT],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=server_env(base_url, GROK_EVENT_LOOP=loop),
        cwd=cwd,
    )
    _, errors = process.communicate(timeout=30)
    return process.returncode, errors


@pytest.mark.parametrize("loop", LOOPS)
def test_the_null_device_and_files_as_stdio(loop: str, stand_in: Upstream, tmp_path: Path) -> None:
    """Scripts and launchers also start servers on /dev/null or files: the server answers and exits
    at the end of input. (On the null device uvloop aborted the process and asyncio never saw
    the end of input: such descriptors now go through threads.)"""
    requests, replies = tmp_path / "requests.jsonl", tmp_path / "replies.jsonl"
    requests.write_text(json.dumps(INIT) + "\n")
    base = stand_in.url("ok")
    with open(os.devnull, "rb") as null:
        status, errors = serve_once(null, subprocess.PIPE, loop, base, tmp_path)
        assert status == 0, errors.decode()[-2000:]
    with requests.open("rb") as source, open(os.devnull, "wb") as null:
        status, errors = serve_once(source, null, loop, base, tmp_path)
        assert status == 0, errors.decode()[-2000:]
    with requests.open("rb") as source, replies.open("wb") as sink:
        status, errors = serve_once(source, sink, loop, base, tmp_path)
        assert status == 0, errors.decode()[-2000:]
    assert json.loads(replies.read_text())["result"]["serverInfo"]["name"] == "grok-chat-mcp"


@pytest.mark.parametrize("loop", LOOPS)
def test_socket_stdio_as_node_clients_launch_it(loop: str, stand_in: Upstream, tmp_path: Path) -> None:
    """Node's child_process (Claude Code, Claude Desktop, the TypeScript SDK) gives a child Unix
    sockets, not pipes, for stdin and stdout."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        process = subprocess.Popen(
            [SCRIPT],
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=subprocess.PIPE,
            env=server_env(stand_in.url("ok"), GROK_EVENT_LOOP=loop),
            cwd=tmp_path,
        )
        theirs.close()
        ours.sendall(json.dumps(INIT).encode() + b"\n")
        ours.settimeout(30)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = ours.recv(1 << 16)
            assert chunk, "the server closed the socket"
            reply += chunk
        assert json.loads(reply)["id"] == 0
        ours.shutdown(socket.SHUT_WR)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors.decode()[-2000:]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_terminal_as_stdio(loop: str, stand_in: Upstream, tmp_path: Path) -> None:
    """Someone trying the server by hand, in a terminal."""
    import pty
    import tty

    controller, terminal = pty.openpty()
    tty.setraw(terminal)  # no echo, no line editing, no newline translation
    try:
        process = subprocess.Popen(
            [SCRIPT],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=server_env(stand_in.url("ok"), GROK_EVENT_LOOP=loop),
            cwd=tmp_path,
        )
        os.write(controller, json.dumps(INIT).encode() + b"\n")
        reply, deadline = b"", time.monotonic() + 30
        while not reply.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1)
            if ready:
                reply += os.read(controller, 1 << 16)
        assert json.loads(reply)["id"] == 0
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 143, errors.decode()[-2000:]
        assert b"Traceback" not in errors
    finally:
        os.close(controller)
        os.close(terminal)


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed here")
@pytest.mark.parametrize(("preference", "expected"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_the_event_loop_in_use(preference: str, expected: str, stand_in: Upstream, tmp_path: Path) -> None:
    """uvloop by default where it is installed (it is a dependency off Windows); asyncio on request."""
    code = (
        "import asyncio, anyio\n"
        "from grok_chat_mcp import eventloop\n"
        f"use = eventloop.choose({preference!r}) == 'uvloop'\n"
        "async def main(): print(type(asyncio.get_running_loop()).__module__)\n"
        "anyio.run(main, backend_options={'use_uvloop': use})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().split(".")[0] == expected
    process = subprocess.run(
        [SCRIPT],
        input=json.dumps(INIT) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(stand_in.url("ok"), GROK_EVENT_LOOP=preference, LOG_LEVEL="DEBUG"),
        cwd=tmp_path,
    )
    assert f"event loop: {expected}" in process.stderr
    assert json.loads(process.stdout)["id"] == 0


def test_without_uvloop_the_server_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    from grok_chat_mcp import eventloop

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert eventloop.choose("auto") == "asyncio"
    assert eventloop.choose("uvloop") == "asyncio"
