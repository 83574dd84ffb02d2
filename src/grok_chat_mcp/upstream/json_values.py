"""JSON from upstream: NaN and Infinity read as null, nesting measured, text made encodable."""

from __future__ import annotations

import json
import re
from typing import Any

import pydantic_core

from grok_chat_mcp.contract import MAX_DEPTH

__all__ = ["MAX_DEPTH", "loads", "repaired", "too_deep"]

_DECODER = json.JSONDecoder(parse_constant=lambda _: None)
_WHITESPACE = " \t\n\r"  # JSON's, not str.strip()'s
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(data: str | bytes) -> Any:
    """The JSON value in ``data`` (invalid UTF-8 becomes U+FFFD); :class:`ValueError` if it is not
    JSON or nests past the parser's recursion limit. Lone surrogates are kept: see :func:`repaired`.

    ``pydantic_core`` parses what it can; the standard library reads what it refuses (NaN, a lone
    surrogate, deep nesting; a ``str`` holding a surrogate, which it cannot encode: TypeError) and
    says why the rest is not JSON."""
    try:
        return pydantic_core.from_json(data, allow_inf_nan=False)
    except (ValueError, TypeError):
        pass
    if isinstance(data, bytes):
        try:
            return json.loads(data, parse_constant=lambda _: None)
        except UnicodeDecodeError:
            data = data.decode("utf-8", "replace")
        except RecursionError:
            raise ValueError("nested too deep") from None
    text = data.strip(_WHITESPACE)
    try:
        value, end = _DECODER.raw_decode(text)
    except RecursionError:
        raise ValueError("nested too deep") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values() if isinstance(item, dict | list))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node if isinstance(item, dict | list))
    return False


def repaired(value: Any) -> Any:
    """``value`` with every string (keys too) made encodable: a surrogate pair becomes the one
    character it encodes, a lone surrogate U+FFFD. Call it on values at most :data:`MAX_DEPTH` deep."""
    if isinstance(value, str):
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {repaired(key): repaired(item) for key, item in value.items()}
    if isinstance(value, list):
        return [repaired(item) for item in value]
    return value
