"""Counting a JSON text's structure before it is parsed (the stdio gate in front of the SDK)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import mcp_types as types
import pytest
from pydantic import ValidationError

from grok_chat_mcp.contract import MAX_VALUES
from grok_chat_mcp.structure import MAX_MARKS, too_many_values
from grok_chat_mcp.transports.stdio import LineReader, diagnose


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def marks(value: Any) -> int:
    """Brackets and commas outside strings, counted on the parsed value."""
    if isinstance(value, dict):
        return 1 + max(len(value) - 1, 0) + sum(marks(v) for v in value.values())
    if isinstance(value, list):
        return 1 + max(len(value) - 1, 0) + sum(marks(v) for v in value)
    return 0


TRICKY = [
    {"a": "x, [y], {z}", "b": ['\\", [', '"', "\\"], "c": [[], {}, [{}]]},
    ["é, ü", "a\\\\", "\\u0022,[", 1.5e-7, None, True, {"k": {"k": {"k": []}}}],
    "just, a [string] {with} marks",
]


@pytest.mark.parametrize("value", TRICKY)
def test_marks_inside_strings_are_not_counted(value: Any) -> None:
    text, count = compact(value), marks(value)
    for form in (text, text.encode()):  # a line as read, an HTTP body as received
        assert not too_many_values(form, count)
        if count:
            assert too_many_values(form, count - 1)


def test_what_the_value_cap_allows_passes_the_gate() -> None:
    """The densest marks per value: empty arrays (an opening bracket and a comma each)."""
    arguments = {"messages": [{"role": "user", "content": "a", "x": [[]] * (MAX_VALUES - 10)}]}
    line = compact(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": arguments}}
    )
    assert not too_many_values(line)


def test_long_strings_full_of_marks_pass() -> None:
    prose = "word, [word] {word}, " * 1_000_000
    assert not too_many_values(compact({"content": prose, "escaped": '\\"' * 100_000 + ", [" * 100_000}))


def test_many_tiny_parts_are_refused() -> None:
    text = compact([{"type": "text", "text": "a"}] * (MAX_MARKS // 2 + 1))
    assert too_many_values(text) and too_many_values(text.encode())


def test_an_over_structured_line_is_answered_before_the_sdk_parses_it() -> None:
    parts = [{"type": "text", "text": "a"}] * 200_000
    params = {
        "name": "grok_chat_completions",
        "arguments": {"messages": [{"role": "user", "content": parts}]},
    }
    line = compact({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}) + "\n"
    read, write = os.pipe()

    def send() -> None:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(line.encode())

    writer = threading.Thread(target=send)
    writer.start()
    try:
        handed_on = LineReader(read).readline()
    finally:
        writer.join()
        os.close(read)
    assert len(handed_on) < 200  # the SDK gets a short marker, not 2.6 MB to parse
    with pytest.raises(ValidationError) as refused:
        types.jsonrpc_message_adapter.validate_json(handed_on, by_name=False)
    reply = diagnose(refused.value)
    assert reply is not None and reply.id == 7
    assert reply.error.code == -32700
    assert reply.error.message == (
        f"Parse error: message with more than {MAX_MARKS:,} brackets and commas (a call's arguments may "
        f"hold {MAX_VALUES:,} JSON values)"
    )
