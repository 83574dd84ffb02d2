"""stderr logging with secrets removed. Configured once by the CLI, never at import time.

Every record is redacted after formatting (message, arguments, traceback): the server's token,
every per-request token seen over HTTP (the most recent :data:`REMEMBERED` of them), and anything
that follows ``Bearer`` wherever a header is written out.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import OrderedDict

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")
#: How many per-request tokens are remembered for redaction.
REMEMBERED = 256
_secrets: OrderedDict[str, None] = OrderedDict()


def remember(secret: str | None) -> None:
    """Redact ``secret`` from every log line from now on (per-request tokens; cheap to repeat)."""
    if not secret or len(secret) < 4:
        return
    if secret in _secrets:
        _secrets.move_to_end(secret)
        return
    _secrets[secret] = None
    if len(_secrets) > REMEMBERED:
        _secrets.popitem(last=False)


def redact(text: str) -> str:
    """``text`` without any remembered secret or bearer credential."""
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1[redacted]", text)
    for secret in reversed(_secrets):  # the newest first: the likeliest to be in this line
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


class RedactingFormatter(logging.Formatter):
    """Formats records, then removes every secret from the whole text."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__(_FORMAT)
        for secret in secrets or ():
            remember(secret)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str, secrets: list[str]) -> None:
    """Send all logs to stderr at ``level``; keep HTTP-library chatter at WARNING unless DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore", "mcp", "sse_starlette", "uvicorn.access"):
        logging.getLogger(name).setLevel(quiet)
