"""Memory by structure: no call costs much more than its bytes, whatever its shape (issue 29.3).

A server process, over HTTP or stdio, gets one hostile or maximal call; its peak resident memory
over what it held before (``VmHWM`` minus ``VmRSS``, Linux) must stay within 4x the body or line
plus a fixed allowance: the structure that the caps let through (docs/tool.md, limits;
docs/design.md, memory by structure).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standin.upstream import Upstream

from grok_chat_mcp.contract import MAX_MESSAGES, MAX_PARTS, MAX_VALUES
from tests.conftest import SCRIPT, server_env
from tests.server.test_structure_bounds import CALL, PART, USER, MiB, nested
from tests.slow.test_hostile import MCP_HEADERS
from tests.slow.test_http import start_cli
from tests.slow.test_stdio_wire import Raw, reap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: What the structure the caps let through may cost beyond 4x the bytes (measured: docs/design.md).
ALLOWANCE = 48 * MiB


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


def encoded_call(request_id: int, messages: list[dict[str, Any]]) -> bytes:
    params = {"name": "grok_chat_completions", "arguments": {"messages": messages}}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


class Server(ABC):
    """A server process (the console script)."""

    process: subprocess.Popen[bytes]

    def memory(self) -> tuple[int, int]:
        """(resident now, peak resident) in bytes."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields["VmRSS"], fields["VmHWM"]

    @abstractmethod
    def call(self, request_id: int, messages: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """(the message's bytes, the reply)."""

    @abstractmethod
    def close(self) -> None:
        """Stop the process."""


class HttpServer(Server):
    """Over HTTP, one POST a call."""

    def __init__(self, stand_in: Upstream, cwd: Path) -> None:
        self.process, port = start_cli(stand_in, cwd, GROK_MAX_RETRIES="0")
        self.drain = threading.Thread(target=lambda: list(self.process.stderr or ()), daemon=True)
        self.drain.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)

    def call(self, request_id: int, messages: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        data = encoded_call(request_id, messages)
        response = self.http.post("/mcp", content=data, headers=MCP_HEADERS)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            lines = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
            reply: dict[str, Any] = next(m for m in map(json.loads, filter(None, lines)) if "id" in m)
        elif response.headers.get("content-type", "").startswith("application/json"):
            reply = response.json()
        else:  # refused before the SDK: past the 64 MiB body limit
            reply = {"error": {"status": response.status_code, "text": response.text[:200]}}
        return len(data), reply

    def close(self) -> None:
        self.http.close()
        self.process.kill()
        self.process.wait(10)


class StdioServer(Server):
    """Over stdio, one line a call."""

    def __init__(self, stand_in: Upstream, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=server_env(stand_in.url("ok"), GROK_MAX_RETRIES="0"),
            cwd=cwd,
        )
        self.raw = Raw(self.process)
        self.raw.initialize()

    def call(self, request_id: int, messages: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        data = encoded_call(request_id, messages)
        self.raw.send(data)
        return len(data) + 1, self.raw.receive(timeout=120)

    def close(self) -> None:
        reap(self.process)


@pytest.fixture(params=[HttpServer, StdioServer], ids=["http", "stdio"])
def server(request: pytest.FixtureRequest, stand_in: Upstream, tmp_path: Path) -> Iterator[Server]:
    server: Server = request.param(stand_in, tmp_path)
    try:
        _, first = server.call(1, [USER])  # the first call loads what every call uses
        assert "result" in first
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_a_call_costs_at_most_four_times_its_bytes(server: Server, shape: str) -> None:
    messages = SHAPES[shape]()
    before, _ = server.memory()
    size, reply = server.call(2, messages)
    del messages
    _, peak = server.memory()
    grew = peak - before
    print(f"{shape}: {size / MiB:.1f} MiB message, peak +{grew / MiB:.0f} MiB ({grew / size:.1f}x)")
    assert "result" in reply or "error" in reply
    assert grew <= 4 * size + ALLOWANCE, f"{grew / MiB:.0f} MiB for a {size / MiB:.1f} MiB message"
