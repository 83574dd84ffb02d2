"""Log lines: tokens never, conversation ids only at DEBUG (issue 29, item 1)."""

from __future__ import annotations

import logging

from grok_chat_mcp.logs import RedactingFormatter, remember
from grok_chat_mcp.redaction import Secrets

ID = "conv_IijWoLbPqRY5QPwQT-M8FSpi"


def line(level: int, message: str) -> str:
    record = logging.LogRecord("grok_chat_mcp.tool", level, __file__, 1, message, None, None)
    return RedactingFormatter(Secrets(["sk-secret-token-123456"])).format(record)


def test_conversation_ids_are_logged_at_debug_only() -> None:
    error = f"tool error: unknown or expired conversation_id '{ID}'; send the full history"
    for level in (logging.INFO, logging.WARNING, logging.ERROR):
        text = line(level, error)
        assert ID not in text and "conv_..." in text and "send the full history" in text
    assert ID in line(logging.DEBUG, error)


def test_tokens_are_redacted_at_every_level() -> None:
    for level in (logging.DEBUG, logging.INFO):
        assert "sk-secret-token-123456" not in line(level, "token sk-secret-token-123456 refused")


def test_a_request_token_seen_after_the_formatter_was_built_is_redacted_too() -> None:
    formatter = RedactingFormatter(Secrets(["sk-secret-token-123456"]))
    record = logging.LogRecord("grok_chat_mcp.tool", logging.INFO, __file__, 1, "%s", ("",), None)
    for token in ("sk-request-token-aaaaaa", "sk-request-token-bbbbbb"):
        remember(token)
        record.args = (f"upstream refused {token} and sk-secret-token-123456",)
        text = formatter.format(record)
        assert token not in text and "sk-secret" not in text and text.count("[redacted]") == 2
