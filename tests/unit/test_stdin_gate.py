"""The stdin gate: each stdio line checked before the SDK parses it (issue 29 item 3), and fd 0
claimed while it reads (issue 27 item 6)."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import mcp_types as types
import pytest

from grok_chat_mcp.structure import MAX_MARKS
from grok_chat_mcp.transports.malformed import INVALID_REQUEST, diagnose
from grok_chat_mcp.transports.stdin_gate import CheckedLines, claimed_stdin

PARTS = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * (MAX_MARKS // 2)}]}
PING = '{"jsonrpc":"2.0","id":99,"method":"ping"}\n'


def request(arguments: Any, request_id: Any = 1, *, id_last: bool = False) -> str:
    """A tools/call line; ``id_last`` as the TypeScript SDK writes it (``{...request, jsonrpc, id}``)."""
    params = {"name": "grok_chat_completions", "arguments": arguments}
    if id_last:
        message = {"method": "tools/call", "params": params, "jsonrpc": "2.0", "id": request_id}
    else:
        message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    return json.dumps(message, separators=(",", ":")) + "\n"


def lines(*texts: str | bytes, max_bytes: int | None = None) -> CheckedLines:
    data = b"".join(text.encode() if isinstance(text, str) else text for text in texts)
    source = io.BufferedReader(io.BytesIO(data))
    return CheckedLines(source) if max_bytes is None else CheckedLines(source, max_bytes)


def answer(line: str) -> types.JSONRPCError | None:
    """What the server answers a line with, when the SDK cannot take it."""
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception as exc:
        return diagnose(exc)
    raise AssertionError(f"the SDK took {line[:80]!r}")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (request(PARTS, 7), 7),
        (request(PARTS, 7, id_last=True), 7),
        (request(PARTS, "call-é", id_last=True), "call-é"),
        (request(PARTS, "first"), "first"),
        (json.dumps({"jsonrpc": "2.0", "params": PARTS}) + "\n", None),  # no id, no method
        (request(PARTS, 1.5), None),  # not a valid id
    ],
    ids=["id first", "id last", "string id last", "string id first", "no id", "fractional id"],
)
def test_a_line_with_too_much_structure_is_answered_with_its_id(line: str, expected: Any) -> None:
    gate = lines(line, PING)
    replacement = gate.readline()
    assert len(replacement) < 500  # the SDK never parses the refused line
    reply = answer(replacement)
    assert reply is not None and reply.id == expected and reply.error.code == INVALID_REQUEST
    assert "too much structure" in reply.error.message and "101,000" in reply.error.message
    assert "send a smaller call" in reply.error.message
    assert gate.readline() == PING  # and the next line is read as it was sent


def test_id_last_after_other_scalar_members_and_blanks_is_found() -> None:
    line = request(PARTS, 5, id_last=True)[:-2] + ' , "x" : null , "y":-1.5e3 }\r\n'
    reply = answer(lines(line).readline())
    assert reply is not None and reply.id == 5


def test_an_id_inside_a_string_at_the_end_is_not_taken() -> None:
    line = request(PARTS, 5)[:-3] + ',"note":"x\\",\\"id\\":6"}}\n'
    reply = answer(lines(line).readline())
    assert reply is not None and reply.id == 5


def test_a_refused_notification_gets_no_reply_and_the_next_line_is_read() -> None:
    notification = json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": PARTS}) + "\n"
    assert lines(notification, PING).readline() == PING
    assert lines(notification).readline() == ""  # the end of input after it


def test_a_line_exactly_at_the_limit_passes_and_one_more_mark_is_refused() -> None:
    envelope = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":[]}}'  # 6 marks: {,,,{[
    at_limit = envelope.replace("[]", "[" + "0," * (MAX_MARKS - 6) + "0]")
    assert lines(at_limit + "\n").readline() == at_limit + "\n"
    over = at_limit.replace("[", "[0,", 1)
    reply = answer(lines(over + "\n").readline())
    assert reply is not None and reply.id == 1


def test_marks_inside_strings_are_not_counted() -> None:
    line = request({"messages": [{"role": "user", "content": "a, [b], {c}, " * 200_000}]}, 3)
    assert lines(line).readline() == line


def test_lines_pass_through_as_the_sdk_reads_them() -> None:
    gate = lines(PING, b'{"x":"\xff"}\n', "\n", '{"last": "without a newline"}')
    assert gate.readline() == PING
    assert gate.readline() == '{"x":"\ufffd"}\n'  # not UTF-8: U+FFFD, as the SDK decodes it
    assert gate.readline() == "\n"
    assert gate.readline() == '{"last": "without a newline"}'
    assert gate.readline() == ""


def test_a_line_over_the_byte_limit_is_skipped_and_answered_with_its_id() -> None:
    limit = 100_000
    exactly = request({"messages": [{"role": "user", "content": ""}]}, 1)
    exactly = exactly.replace('""', '"' + "x" * (limit - len(exactly) + 1) + '"')  # the newline is free
    long_first = request({"messages": [{"role": "user", "content": "x" * 3 * limit}]}, "early")
    long_last = request({"messages": [{"role": "user", "content": "x" * 3 * limit}]}, 12, id_last=True)
    gate = lines(exactly, long_first, long_last, PING, max_bytes=limit)
    assert gate.readline() == exactly
    for expected in ("early", 12):
        reply = answer(gate.readline())
        assert reply is not None and reply.id == expected
        assert reply.error.message == (
            "Invalid Request: the message is longer than 0.0953674 MiB and is not read; send a smaller call"
        )
    assert gate.readline() == PING


def test_an_over_long_line_at_the_end_of_input_is_answered() -> None:
    gate = lines('{"jsonrpc":"2.0","id":4,"method":"ping","params":{"x":"' + "x" * 5000, max_bytes=1000)
    reply = answer(gate.readline())
    assert reply is not None and reply.id == 4
    assert gate.readline() == ""


@pytest.mark.skipif(sys.platform == "win32", reason="the null device's identity is POSIX here")
def test_fd_0_reads_the_null_device_while_claimed_and_is_restored() -> None:
    try:
        before = os.fstat(0)
    except OSError:
        pytest.skip("fd 0 is closed here")
    null = os.stat(os.devnull)
    with claimed_stdin() as source:
        assert source.fileno() > 2
        assert os.path.samestat(os.fstat(source.fileno()), before)  # the protocol, on a private copy
        assert os.path.samestat(os.fstat(0), null)  # what handlers and children read: nothing
        assert os.read(0, 10) == b""
    assert os.path.samestat(os.fstat(0), before)


def test_lines_longer_than_a_read_are_whole_or_refused_whole() -> None:
    text = request({"messages": [{"role": "user", "content": "y" * (3 * 1024 * 1024)}]}, 1)
    too_long = request({"messages": [{"role": "user", "content": "y" * (5 * 1024 * 1024)}]}, 2, id_last=True)
    gate = lines(text, too_long, PING, max_bytes=4 * 1024 * 1024)
    assert gate.readline() == text
    reply = answer(gate.readline())
    assert reply is not None and reply.id == 2 and "longer than 4 MiB" in reply.error.message
    assert gate.readline() == PING
