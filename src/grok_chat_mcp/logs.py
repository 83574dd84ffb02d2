"""stderr logging with secrets removed. Called once by the CLI, never at import time."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats records, then replaces each secret (message, arguments, traceback) with ``[redacted]``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(_FORMAT)
        self._secrets = [s for s in secrets if len(s) >= 4]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


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
