"""What an incoming message may be before the SDK parses it: its bytes, and how much structure it
holds, counted without parsing it.

Parsing builds an object per value (tens of bytes each, whatever the text spends on it), so a
message of many tiny values costs far more memory than its bytes; this count lets a transport
refuse one before the SDK parses it (docs/design.md, memory by structure).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from grok_chat_mcp.contract import MAX_VALUES

#: The largest message taken, an HTTP body or a stdio line (room for a 20 MiB image as a data: URL).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: What a JSON-RPC message may hold beyond its tool arguments: the envelope, ``_meta``, a little more.
_ENVELOPE = 1000
#: ``[``, ``{`` and ``,`` outside strings in one message: twice the values the arguments may hold
#: (every comma and bracket opens at most one value), so nothing :data:`MAX_VALUES` allows is refused.
MAX_MARKS = 2 * MAX_VALUES + _ENVELOPE
#: Why a message is refused, after "message ".
TOO_MANY_VALUES = (
    f"with more than {MAX_MARKS:,} brackets and commas (a call's arguments may hold {MAX_VALUES:,} "
    "JSON values)"
)

# Everything up to and including the next mark outside a string, strings skipped whole; possessive,
# so a match never backtracks into a string. Matched from where the last one ended, never inside a
# string; it fails only at the last mark or at a quote never closed (invalid JSON from there on).
_MARK = re.compile(r'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^"\[{,]++)*+[\[{,]')
_MARK_BYTES = re.compile(_MARK.pattern.encode())


def too_many_values(text: str | bytes | bytearray, limit: int = MAX_MARKS) -> bool:
    """Whether ``text`` (a line as read, or an HTTP body as received) has more than ``limit`` marks
    (``[``, ``{``, ``,``) outside its strings.

    The marks bound the values a JSON text holds: values <= marks + 1 <= 2 x values + 1. Counting
    every mark, strings included, is fast and settles most texts; only a text over the limit that
    way is scanned string by string, and the scan stops at the limit.
    """
    if isinstance(text, str):
        every = text.count(",") + text.count("[") + text.count("{")
        return every > limit and _over(limit, partial(_MARK.match, text))
    every = text.count(b",") + text.count(b"[") + text.count(b"{")
    return every > limit and _over(limit, partial(_MARK_BYTES.match, text))


def _over(limit: int, mark: Callable[[int], re.Match[Any] | None]) -> bool:
    """Whether ``mark``, matched from where it last ended, finds more than ``limit`` marks."""
    position = 0
    for _ in range(limit + 1):
        found = mark(position)
        if found is None:
            return False
        position = found.end()
    return True
