"""stderr logging with secrets removed. Configured once by the CLI, never at import time.

Every record is redacted after formatting (message, arguments, traceback): the server's token, the
most recent per-request tokens seen over HTTP, and any ``Bearer`` credential written out; above
DEBUG, conversation ids too (they let whoever holds the token collect the answer).
"""

from __future__ import annotations

import logging
import re
import sys

from grok_chat_mcp.redaction import Remembered, Secrets

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: A conversation (or task) id: whoever reads it may collect the answer, so it is logged at DEBUG only.
_CONVERSATION_ID = re.compile(r"conv_[A-Za-z0-9_-]{8,64}")
#: Per-request tokens, redacted from every log line once seen (see :func:`remember`).
seen = Remembered()


def remember(token: str | None) -> None:
    """Redact ``token`` from every log line from now on (cheap to repeat)."""
    seen.add(token)


class RedactingFormatter(logging.Formatter):
    """Formats records, then removes every secret from the whole text."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__(_FORMAT)
        self._secrets = secrets
        self._seen = seen.secrets
        self._all = secrets + seen.secrets  # joined again only when a new token has been seen

    def format(self, record: logging.LogRecord) -> str:
        if self._seen is not seen.secrets:
            self._seen, self._all = seen.secrets, self._secrets + seen.secrets
        text = self._all.redact(super().format(record))
        if record.levelno <= logging.DEBUG or "conv_" not in text:
            return text
        return _CONVERSATION_ID.sub("conv_...", text)


def configure(level: str, secrets: Secrets) -> None:
    """Send all logs to stderr at ``level``; keep HTTP-library chatter at WARNING unless DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore", "mcp", "sse_starlette", "uvicorn.access"):
        logging.getLogger(name).setLevel(quiet)
