"""Counting a JSON text's structure before it is parsed (the HTTP gate in front of the SDK)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from grok_chat_mcp.contract import MAX_VALUES
from grok_chat_mcp.structure import MAX_MARKS, too_many_values
from grok_chat_mcp.transports.admission import Admission, Limits


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


@pytest.mark.anyio
async def test_an_over_structured_http_body_is_refused_before_the_sdk_parses_it() -> None:
    parts = [{"type": "text", "text": "a"}] * 200_000
    params = {
        "name": "grok_chat_completions",
        "arguments": {"messages": [{"role": "user", "content": parts}]},
    }
    body = compact({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}).encode()
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]  # as uvicorn hands it on
    reached: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] == "http.request":
            reached.append(message.get("body", b""))
            if not message.get("more_body", False):
                raise AssertionError("the whole body reached the app")

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/mcp", "method": "POST", "headers": [], "client": ("127.0.0.1", 1)}
    await Admission(app, Limits())(scope, receive, send)
    assert sent[0]["status"] == 413
    assert b"too many values" in b"".join(m.get("body", b"") for m in sent[1:])
    assert len(reached) == len(body) // 65536  # every chunk but the last: the app never had it whole
