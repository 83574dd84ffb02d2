"""A stdio client that leaves keeps the server's promise (issue 29, item 5): a call reported
``running`` finishes and is stored after stdin closes, and the next server hands the answer out.
A signal instead stops the server at once and the call reads as cancelled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import Upstream

from tests.conftest import HELLO, SCRIPT, server_env
from tests.slow.test_stdio_wire import INIT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")


def start(stand_in: Upstream, store: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=server_env(stand_in.url("ok"), GROK_STORE=store, GROK_RETURN_AFTER="1", GROK_MAX_RETRIES="0"),
        cwd=cwd,
    )


def exchange(process: subprocess.Popen[bytes], request: dict[str, Any]) -> dict[str, Any]:
    """Send the handshake and one request; the request's reply."""
    assert process.stdin is not None and process.stdout is not None
    for message in (INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"}, request):
        process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()
    while True:
        reply: dict[str, Any] = json.loads(process.stdout.readline())
        if reply.get("id") == request["id"]:
            return reply


def call(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "grok_chat_completions", "arguments": arguments},
    }


def collect(stand_in: Upstream, store: str, cwd: Path, conversation_id: str) -> dict[str, Any]:
    process = start(stand_in, store, cwd)
    try:
        reply = exchange(process, call({"conversation_id": conversation_id}))
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)
    result: dict[str, Any] = reply["result"]
    return result


def test_a_running_call_finishes_and_is_stored_after_the_client_leaves(
    stand_in: Upstream, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'conversations.db'}"
    process = start(stand_in, store, tmp_path)
    assert process.stdin is not None
    # About 3 s of stream: still running when the 1 s early return comes.
    reply = exchange(process, call({"messages": HELLO, "stream": True, "user": "scenario:sse450"}))
    running = reply["result"]["structuredContent"]
    assert running["status"] == "running"
    process.stdin.close()  # the client leaves
    assert process.wait(30) == 0  # only once the call has finished and been stored
    result = collect(stand_in, store, tmp_path, running["conversation_id"])
    assert not result.get("isError"), result
    answer = result["structuredContent"]["result"]["choices"][0]["message"]["content"]
    assert answer == "Hello from a streamed Grok answer."
    assert not stand_in.disconnects  # the upstream request ran to its end


def test_a_signal_stops_the_server_at_once_and_the_call_reads_cancelled(
    stand_in: Upstream, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'conversations.db'}"
    process = start(stand_in, store, tmp_path)
    assert process.stdin is not None
    reply = exchange(process, call({"messages": HELLO, "stream": True, "user": "scenario:long100"}))
    running = reply["result"]["structuredContent"]
    process.stdin.close()
    time.sleep(0.5)  # draining now: the signal cuts it short
    process.send_signal(signal.SIGTERM)
    process.wait(5)
    result = collect(stand_in, store, tmp_path, running["conversation_id"])
    assert result["isError"] and "cancelled" in result["content"][0]["text"]
