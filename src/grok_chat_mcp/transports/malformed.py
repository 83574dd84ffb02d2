"""Replies to the lines the SDK's ``stdio_server()`` could not take, or that the stdin gate refused:
a JSON-RPC error carrying the request's id where it can be read, and nothing for a notification
(docs/design.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import mcp_types as types
from pydantic import ValidationError
from pydantic_core import ErrorDetails

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: How much of an unparsable line's start is searched for its id.
ID_SCAN = 1024 * 1024
#: How much of a refused line's end is searched for an id written last.
ID_TAIL = 4096
#: The key of the line that stands in for a refused one: why it was refused.
REFUSED = "grok-chat-mcp/refused"

#: A string (to its end if unterminated) or a bracket; possessive, so a long string costs one pass.
_TOKEN = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?|[{}\[\]]')
_VALUE = re.compile(r'\s*+:\s*+("[^"\\]*+(?:\\.[^"\\]*+)*+"|-?\d{1,30}+(?![\d.eE]))')
_KEY = re.compile(r"\s*+:")
_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_SCALAR = rf"(?:{_STRING}|-?\d++(?:\.\d++)?+(?:[eE][-+]?+\d++)?+|true|false|null)"
#: ``"id"`` among the members that end the text, only scalars after it: ``,"id":7,"jsonrpc":"2.0"}``.
#: In valid JSON the quote before ``id`` opens a string (a closing quote is followed by a blank or
#: a mark), so the rest is read as a parser reads it, to the last brace: top-level members.
_LAST_ID = re.compile(
    rf'[{{,]\s*+"id"\s*+:\s*+({_STRING}|-?\d{{1,30}}+)\s*+(?:,\s*+{_STRING}\s*+:\s*+{_SCALAR}\s*+)*+\}}\s*+\Z'
)


def scan(text: str) -> tuple[bool, str | int | None, bool]:
    """(id found, the id, has a method) for the top-level object a text starts, as far as readable."""
    depth = 0
    found, request_id, method = False, None, False
    for token in _TOKEN.finditer(text, 0, ID_SCAN):
        kind = token.group()
        if kind in "{[":
            depth += 1
        elif kind in "}]":
            depth -= 1
        elif depth == 1 and kind in ('"id"', '"method"'):
            value = _VALUE.match(text, token.end())
            if value is not None and kind == '"method"':
                method = value.group(1).startswith('"')
            elif kind == '"id"' and not found and _KEY.match(text, token.end()):
                found = True  # an id member, so not a notification, whether its value is usable or not
                request_id = None if value is None else _id(value.group(1))
    return found, request_id, method


def _id(raw: str) -> str | int | None:
    """The id an id's JSON text stands for; None for a string with a lone surrogate (no reply can
    carry it)."""
    if not raw.startswith('"'):
        return int(raw)
    text = json.loads(raw)
    return text if isinstance(text, str) and text.encode(errors="replace").decode() == text else None


def stand_in(head: str, tail: str, why: str) -> str | None:
    """The line the SDK gets instead of one refused before parsing (:func:`diagnose` answers it with
    ``why`` and the request's id), from the refused line's start and end; None for a notification.

    The id is looked for at the top level of ``head`` (the first :data:`ID_SCAN` characters) and
    among the scalar members that end ``tail`` (clients that write it last); an id between the two
    is not found, and the reply then has none, or there is no reply when a method was seen.
    """
    found, request_id, method = scan(head)
    if not found and (last := _LAST_ID.search(tail)) is not None:
        found, request_id = True, _id(last.group(1))
    if method and not found:
        return None
    return json.dumps({REFUSED: why, "id": request_id}) + "\n"


def diagnose(exc: Exception) -> types.JSONRPCError | None:
    """The error reply for a line the SDK could not take; None for a notification (no reply)."""
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else []
    data = _message_of(errors)
    if errors and errors[0]["type"] == "json_invalid":
        found, request_id, method = scan(data if isinstance(data, str) else "")
        if method and not found:
            return None
        return _error(request_id, PARSE_ERROR, f"Parse error: {errors[0]['msg']}")
    if isinstance(data, list):
        return _error(None, INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
    if not isinstance(data, dict):
        return _error(None, INVALID_REQUEST, "Invalid Request: a message must be a JSON object")
    request_id = data.get("id")
    if "id" not in data and "method" in data:
        return None  # a notification: never answered, even when malformed
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        request_id = None
    if isinstance(refused := data.get(REFUSED), str):
        return _error(request_id, INVALID_REQUEST, f"Invalid Request: {refused}")
    if "method" not in data and not {"result", "error"} & data.keys():
        why = "no 'method'"
    elif not isinstance(data.get("method", ""), str):
        why = "'method' must be a string"
    elif data.get("jsonrpc") != "2.0":
        why = "'jsonrpc' must be \"2.0\""
    else:
        why = "the message does not fit the protocol"
    return _error(request_id, INVALID_REQUEST, f"Invalid Request: {why}")


def _message_of(errors: list[ErrorDetails]) -> Any:
    """The message a validation error was about: the input of an error on the whole message, or
    the object a required field was missing from."""
    for error in errors:
        if len(error["loc"]) <= 1:
            return error.get("input")
    for error in errors:
        if error["type"] == "missing" and len(error["loc"]) == 2:
            return error.get("input")
    return None


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))
