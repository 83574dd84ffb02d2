"""Redaction: no token, and no part of one, leaves the process in any output channel.

One :class:`Secrets` value is used by logs, errors, progress statuses and results alike.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

#: Shorter values are not treated as secrets (they would redact ordinary words).
MIN_LENGTH = 6
MASK = "[redacted]"
#: ``Bearer <credential>`` written out anywhere (RFC 6750 token characters, at least 6 of them).
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]{6,}=*")


class Secrets:
    """The tokens in play; :meth:`redact` removes each of them, and bearer credentials, from text."""

    __slots__ = ("_values", "longest")

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        unique = {value for value in values if value and len(value) >= MIN_LENGTH}
        self._values = tuple(sorted(unique, key=len, reverse=True))  # a token inside another goes last
        self.longest = len(self._values[0]) if self._values else 0

    def __bool__(self) -> bool:
        return bool(self._values)

    def __add__(self, other: Secrets) -> Secrets:
        return Secrets((*self._values, *other._values))

    def redact(self, text: str) -> str:
        """``text`` without any secret or ``Bearer`` credential; the same object if nothing changed."""
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(rf"\1{MASK}", text)
        for secret in self._values:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def redact_json(self, value: Any) -> Any:
        """A copy of a JSON value with every secret removed from its strings (keys included)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(k): self.redact_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_json(item) for item in value]
        return value

    def tail(self, text: str, size: int, *, cut: bool) -> str:
        """The last ``size`` characters of ``text`` after redaction, with no fragment of a secret.

        ``cut``: ``text`` is itself the end of a longer text, so it may start inside a secret;
        that fragment is dropped. A trailing start of a secret (its rest may follow) is held back.
        """
        text = self.redact(text)
        for secret in self._values:
            for length in range(min(len(secret) - 1, len(text)), 0, -1):
                if text.endswith(secret[:length]):
                    text = text[:-length]
                    break
        if cut and self.longest:
            text = text[self.longest :]
        return text[-size:]


class Remembered:
    """The most recent per-request tokens (HTTP), redacted from every log line."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._tokens: OrderedDict[str, None] = OrderedDict()
        self.secrets = Secrets()

    def add(self, token: str | None) -> None:
        if not token or len(token) < MIN_LENGTH:
            return
        if token in self._tokens:
            self._tokens.move_to_end(token)
            return
        self._tokens[token] = None
        if len(self._tokens) > self._capacity:
            self._tokens.popitem(last=False)
        self.secrets = Secrets(self._tokens)
