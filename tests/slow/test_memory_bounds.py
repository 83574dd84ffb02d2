"""Memory by structure: no call costs much more than its bytes, whatever its shape (issue 29.3).

A stdio server process gets one hostile or maximal call; its peak resident memory over what it
held before (``VmHWM`` minus ``VmRSS``, Linux) must stay within 4x the line plus a fixed allowance:
the structure that the caps let through (docs/tool.md, limits; docs/design.md, memory by structure).
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import Upstream

from grok_chat_mcp.contract import MAX_MESSAGES, MAX_PARTS, MAX_VALUES
from tests.conftest import SCRIPT, server_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MiB = 1024 * 1024
#: What the structure the caps let through may cost beyond 4x the bytes (measured: docs/design.md).
ALLOWANCE = 48 * MiB
PART = {"type": "text", "text": "a"}
CALL = {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
USER = {"role": "user", "content": "a"}
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


#: Each builds a call's messages. Over the caps: refused; within: sent upstream and stored.
SHAPES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "2,000,000 one-character parts": lambda: [{"role": "user", "content": [PART] * 2_000_000}],
    "2,000,000 tiny messages": lambda: [USER] * 2_000_000,
    "800,000 tool calls": lambda: [{"role": "assistant", "content": None, "tool_calls": [CALL] * 800_000}],
    "4,000,000 empty arrays in an extra key": lambda: [{**USER, "x": [[]] * 4_000_000}],
    "deep nesting within the depth cap": lambda: [{**USER, "x": [nested(60)] * 50_000}],
    "just under the gate, over the value cap": lambda: [{**USER, "x": [0] * (2 * MAX_VALUES)}],
    "the most messages": lambda: [USER] * MAX_MESSAGES,
    "the most parts": lambda: [{"role": "user", "content": [PART] * MAX_PARTS}] * (MAX_VALUES // 1600),
    "the most values": lambda: [{**USER, "x": [0] * (MAX_VALUES - 10)}],
}  # fmt: skip


class Server:
    """A stdio server process, spoken to line by line."""

    def __init__(self, base_url: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=server_env(base_url, GROK_MAX_RETRIES="0"),
            cwd=cwd,
        )
        self.selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def send(self, message: dict[str, Any]) -> int:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        assert self.process.stdin is not None
        self.process.stdin.write(line)
        self.process.stdin.flush()
        return len(line)

    def receive(self, timeout: float = 120) -> dict[str, Any]:
        assert self.process.stdout is not None
        if not self.selector.select(timeout):
            raise TimeoutError("no reply")
        reply: dict[str, Any] = json.loads(self.process.stdout.readline())
        return reply

    def memory(self) -> tuple[int, int]:
        """(resident now, peak resident) in bytes."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields["VmRSS"], fields["VmHWM"]

    def call(self, request_id: int, messages: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        params = {"name": "grok_chat_completions", "arguments": {"messages": messages}}
        size = self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
        return size, self.receive()


@pytest.fixture
def server(stand_in: Upstream, tmp_path: Path) -> Iterator[Server]:
    server = Server(stand_in.url("ok"), tmp_path)
    try:
        server.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT})
        server.receive()
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        _, first = server.call(1, [USER])  # the first call loads what every call uses
        assert "result" in first
        yield server
    finally:
        server.process.kill()
        server.process.wait(10)
        for stream in (server.process.stdin, server.process.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_a_call_costs_at_most_four_times_its_bytes(server: Server, shape: str) -> None:
    messages = SHAPES[shape]()
    before, _ = server.memory()
    size, reply = server.call(2, messages)
    del messages
    _, peak = server.memory()
    grew = peak - before
    print(f"{shape}: {size / MiB:.1f} MiB line, peak +{grew / MiB:.0f} MiB ({grew / size:.1f}x)")
    assert "result" in reply or "error" in reply
    assert grew <= 4 * size + ALLOWANCE, f"{grew / MiB:.0f} MiB for a {size / MiB:.1f} MiB line"
