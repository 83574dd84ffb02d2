"""How much structure a JSON text holds, counted without parsing it.

Parsing builds an object per value (tens of bytes each, whatever the text spends on it), so a
message of many tiny values costs far more memory than its bytes; this count lets a transport
refuse one before the SDK parses it (docs/design.md, memory by structure).
"""

from __future__ import annotations

import re

from grok_chat_mcp.contract import MAX_VALUES

#: What a JSON-RPC message may hold beyond its tool arguments: the envelope, ``_meta``, a little more.
_ENVELOPE = 1000
#: ``[``, ``{`` and ``,`` outside strings in one message: twice the values the arguments may hold
#: (every comma and bracket opens at most one value), so nothing :data:`MAX_VALUES` allows is refused.
MAX_MARKS = 2 * MAX_VALUES + _ENVELOPE

# Everything up to and including the next mark outside a string, strings skipped whole; possessive,
# so a match never backtracks into a string. Matched from where the last one ended, never inside a
# string; it fails only at the last mark or at a quote never closed (invalid JSON from there on).
_MARK = re.compile(r'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^"\[{,]++)*+[\[{,]')


def too_many_values(text: str, limit: int = MAX_MARKS) -> bool:
    """Whether ``text`` has more than ``limit`` marks (``[``, ``{``, ``,``) outside its strings.

    The marks bound the values a JSON text holds: values <= marks + 1 <= 2 x values + 1. Counting
    every mark, strings included, is fast and settles most texts; only a text over the limit that
    way is scanned string by string, and the scan stops at the limit.
    """
    if text.count(",") + text.count("[") + text.count("{") <= limit:
        return False
    position = 0
    for _ in range(limit + 1):
        match = _MARK.match(text, position)
        if match is None:
            return False
        position = match.end()
    return True
