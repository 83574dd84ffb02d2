"""The tool's arguments: checked against the contract, with errors a caller can act on.

What goes upstream is the caller's own values (no nulls, nothing invented but ``model``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from grok_chat_mcp.capabilities import UNSUPPORTED_FIELDS
from grok_chat_mcp.contract import (
    MAX_DEPTH,
    MAX_MESSAGES,
    MAX_PARTS,
    MAX_TOOL_CALLS,
    MAX_TOOLS,
    MAX_VALUES,
    ChatRequest,
)
from grok_chat_mcp.errors import InvalidArguments


@dataclass(frozen=True, slots=True)
class Arguments:
    """A call's validated arguments. ``payload`` holds the caller's own values, as given."""

    model: str
    stream: bool
    messages: tuple[Mapping[str, Any], ...]
    conversation_id: str | None
    payload: Mapping[str, Any]

    @property
    def collects(self) -> bool:
        """Only a conversation_id: collect that conversation's pending or last answer."""
        return self.conversation_id is not None and not self.messages


def parse(raw: Mapping[str, Any] | None) -> Arguments:
    """Validate the tool's arguments; raises :class:`InvalidArguments` with one line per problem."""
    request, payload = parse_arguments(raw)
    conversation_id = payload.pop("conversation_id", None)
    return Arguments(
        model=request.model,
        stream=request.stream,
        messages=tuple(payload.get("messages") or ()),
        conversation_id=conversation_id,
        payload=payload,
    )


#: Parameters whose value is a JSON object or array (clients sometimes send those as JSON text).
_STRUCTURED = frozenset({"messages", "stop", "response_format", "tools", "tool_choice"})


def parse_arguments(arguments: Mapping[str, Any] | None) -> tuple[ChatRequest, dict[str, Any]]:
    """Validate tool arguments; return the model and the payload to send upstream.

    The payload holds the caller's own values (no nulls, nothing invented but ``model``).
    Raises :class:`InvalidArguments` with one line per problem.
    """
    if arguments is None:
        arguments = {}
    payload: dict[str, Any] = {}
    for key, value in arguments.items():
        if value is None:
            continue  # an explicit null means "not set"
        if key in _STRUCTURED and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            value = _decode_json_text(key, value)
        payload[key] = value
    _check_counts(payload)  # before the models are built: their cost is per item, not per byte
    left = MAX_VALUES
    for key, value in payload.items():
        try:
            left = _check_json(value, key, 0, left)
        except _TooMany:
            raise InvalidArguments(
                f"{key}: the arguments hold more than {MAX_VALUES:,} JSON values (objects, arrays, strings, "
                "numbers); send less structure (with conversation_id, only the new messages)"
            ) from None
    try:
        request = ChatRequest.model_validate(payload)
    except ValidationError as exc:
        raise InvalidArguments("\n".join(_error_lines(exc.errors(include_url=False)))) from None
    if "model" not in payload:
        payload = {"model": request.model, **payload}
    return request, payload


def _decode_json_text(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidArguments(f"{key}: looks like JSON text but does not parse") from None


#: Lists whose length is bounded, checked before anything is built per item.
_CAPPED = {"messages": MAX_MESSAGES, "tools": MAX_TOOLS}
_CAPPED_IN_MESSAGE = {"content": MAX_PARTS, "tool_calls": MAX_TOOL_CALLS}


def _check_counts(payload: Mapping[str, Any]) -> None:
    for key, cap in _CAPPED.items():
        _at_most(payload.get(key), key, cap)
    messages = payload.get("messages")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            if isinstance(message, dict):
                for key, cap in _CAPPED_IN_MESSAGE.items():
                    _at_most(message.get(key), f"messages[{index}].{key}", cap)


def _at_most(value: Any, path: str, cap: int) -> None:
    if isinstance(value, list) and len(value) > cap:
        raise InvalidArguments(f"{path}: expected at most {cap} item(s), got {len(value)}")


class _TooMany(Exception):
    """More JSON values than :data:`MAX_VALUES`."""


def _check_json(value: Any, path: str, depth: int, left: int) -> int:
    """Check one value and all it holds; how many values may still follow."""
    if left <= 0:
        raise _TooMany
    left -= 1
    if depth > MAX_DEPTH:
        raise InvalidArguments(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if value.isascii():  # the common case, and every data: URL: nothing to check
            return left
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArguments(f"{path}: text is not valid Unicode (lone surrogate)") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArguments(f"{path}: {value} is not a finite number (JSON has no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            left = _check_json(item, f"{path}.{key}", depth + 1, left)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            left = _check_json(item, f"{path}[{index}]", depth + 1, left)
    return left


_MAX_ERROR_LINES = 5


def _error_lines(errors: Iterable[ErrorDetails]) -> list[str]:
    lines: list[str] = []
    for error in errors:
        if error["type"] == "missing_messages":
            lines.append(f"messages: {error['msg']}")
        else:
            lines.append(f"{_path(error['loc'])}: {_explain(error)}")
    if len(lines) > _MAX_ERROR_LINES:
        lines = [*lines[:_MAX_ERROR_LINES], f"(and {len(lines) - _MAX_ERROR_LINES} more problems)"]
    return lines


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "arguments"


def _explain(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        reason = UNSUPPORTED_FIELDS.get(str(error["loc"][-1])) if len(error["loc"]) == 1 else None
        return (
            f"not supported upstream: {reason}"
            if reason
            else "unknown parameter (see the tool's input schema)"
        )
    if kind in ("too_short", "too_long"):
        context = error.get("ctx") or {}
        bound = context.get("min_length") if kind == "too_short" else context.get("max_length")
        word = "at least" if kind == "too_short" else "at most"
        return f"expected {word} {bound} item(s), got {context.get('actual_length')}"
    message = error["msg"]
    got = _describe(error.get("input"))
    if kind.endswith("_type") or kind in (
        "literal_error",
        "greater_than",
        "greater_than_equal",
        "less_than_equal",
    ):
        return f"{message[0].lower()}{message[1:]} (got {got})"
    return message[0].lower() + message[1:]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else type(value).__name__
