"""Replies to the lines the SDK's ``stdio_server()`` could not take: a JSON-RPC error carrying the
request's id where it can be read, and nothing for a notification (docs/design.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import mcp_types as types
from pydantic import ValidationError
from pydantic_core import ErrorDetails

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: How much of an unparsable line is searched for its id.
_ID_SCAN = 1024 * 1024

#: A string (to its end if unterminated) or a bracket; possessive, so a long string costs one pass.
_TOKEN = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?|[{}\[\]]')
_VALUE = re.compile(r'\s*+:\s*+("[^"\\]*+(?:\\.[^"\\]*+)*+"|-?\d{1,30}+(?![\d.eE]))')


def scan(text: str) -> tuple[bool, str | int | None, bool]:
    """(id found, the id, has a method) for the top-level object a text starts, as far as readable."""
    depth = 0
    found, request_id, method = False, None, False
    for token in _TOKEN.finditer(text, 0, _ID_SCAN):
        kind = token.group()
        if kind in "{[":
            depth += 1
        elif kind in "}]":
            depth -= 1
        elif depth == 1 and kind in ('"id"', '"method"'):
            value = _VALUE.match(text, token.end())
            if value is None:
                continue
            if kind == '"method"':
                method = value.group(1).startswith('"')
            elif not found:
                raw = value.group(1)
                found, request_id = True, json.loads(raw) if raw.startswith('"') else int(raw)
    if isinstance(request_id, str) and request_id.encode(errors="replace").decode() != request_id:
        request_id = None  # a lone surrogate: no reply can carry it
    return found, request_id, method


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
