"""Memory by structure through the in-memory client: the largest calls the caps allow cost at most
4x their JSON bytes plus a fixed allowance (tracemalloc; issue 29.3).

The in-memory client hands the server Python objects, so the SDK's JSON parse (bounded for stdio
by the line gate, tests/slow/test_memory_bounds.py) is not in this path, but the client's own copy
of the arguments (``model_dump``) is: calls over the caps are measured where they are refused
(tests/unit/test_arguments.py) and through a real server (tests/slow/test_memory_bounds.py).
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import respx
from mcp import Client

from grok_chat_mcp.contract import MAX_MESSAGES, MAX_PARTS, MAX_TOOL_CALLS, MAX_VALUES
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import completion, text_of

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
#: What the structure the caps let through may cost beyond 4x the bytes (docs/design.md).
ALLOWANCE = 16 * MiB
PART = {"type": "text", "text": "a"}
CALL = {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
USER = {"role": "user", "content": "a"}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


SHAPES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "the most messages": lambda: [dict(USER) for _ in range(MAX_MESSAGES)],
    "the most parts": lambda: [{"role": "user", "content": [dict(PART) for _ in range(MAX_PARTS)]}] * 30,
    "the most tool calls": lambda: [
        {"role": "assistant", "content": None, "tool_calls": [dict(CALL) for _ in range(MAX_TOOL_CALLS)]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ] * 30,
    "the most values": lambda: [{**USER, "x": list(range(MAX_VALUES - 10))}],
    "deep nesting within the depth cap": lambda: [{**USER, "x": [nested(60) for _ in range(800)]}],
}  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_call_costs_at_most_four_times_its_bytes(
    mcp: Client, upstream: respx.MockRouter, shape: str
) -> None:
    upstream.post("/grok/chat/completions").respond(200, json=completion())
    assert not (await mcp.call_tool(TOOL_NAME, {"messages": [USER]})).is_error  # load what every call uses
    messages = SHAPES[shape]()
    size = len(json.dumps(messages, separators=(",", ":")))
    gc.collect()
    tracemalloc.start()
    try:
        result = await mcp.call_tool(TOOL_NAME, {"messages": messages})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"{shape}: {size / MiB:.2f} MiB of JSON, peak {peak / MiB:.1f} MiB")
    assert peak <= 4 * size + ALLOWANCE, f"{peak / MiB:.1f} MiB for {size / MiB:.2f} MiB of JSON"
    assert not result.is_error, text_of(result)
