"""Failures of a Grok call, as messages a person and an agent can act on."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from grok_chat_mcp.config import TOKEN_VAR

_TAGS = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")
_EXCERPT = 200


@dataclass(eq=False)
class GrokError(Exception):
    """A failed call. ``str()`` gives the text returned to the client as a tool error."""

    category: str
    detail: str
    hint: str = ""
    status: int | None = None
    code: str | None = None
    trace_id: str | None = None
    attempts: int = 1

    def __str__(self) -> str:
        facts = [f"HTTP {self.status}"] if self.status is not None else []
        if self.code:
            facts.append(self.code)
        if self.attempts > 1:
            facts.append(f"after {self.attempts} attempts")
        head = f"{self.category}" + (f" ({', '.join(facts)})" if facts else "")
        lines = [f"{head}: {self.detail}"]
        if self.hint:
            lines.append(self.hint)
        if self.trace_id:
            lines.append(f"trace_id: {self.trace_id}")
        return "\n".join(lines)


def missing_token() -> GrokError:
    return GrokError(
        "Configuration error",
        f"no API token: {TOKEN_VAR} is not set.",
        f"Set {TOKEN_VAR} in the MCP client's `env` block for this server (or in a .env file in its "
        "working directory); get a token at https://platform.acedata.cloud.",
    )


def redact(text: str, secret: str | None) -> str:
    """Remove ``secret`` from ``text`` (also if the upstream echoes it back)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    return text


def excerpt(body: str) -> str:
    """A short, single-line, tag-free excerpt of a non-JSON body (proxy pages, HTML)."""
    text = _SPACE.sub(" ", _TAGS.sub(" ", body)).strip()
    if not text:
        return "(empty body)"
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def parse_error_body(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(code, message, trace_id) from an AceDataCloud or xAI error body; Nones if not JSON."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    code = message = None
    error = data.get("error")
    if isinstance(error, dict):  # AceDataCloud / OpenAI: {"error": {"code", "message"}, "trace_id"}
        code, message = _text(error.get("code") or error.get("type")), _text(error.get("message"))
    elif isinstance(error, str):  # xAI: {"code": "...", "error": "..."}
        code, message = _text(data.get("code")), error
    else:
        code, message = _text(data.get("code")), _text(data.get("message") or data.get("detail"))
    return code, message, _text(data.get("trace_id") or data.get("request_id"))


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("Request rejected", "Fix the argument named in the message and call again."),
    422: ("Request rejected", "Fix the argument named in the message and call again."),
    401: (
        "Authentication failed",
        f"Check {TOKEN_VAR}: it is missing, invalid or expired. Set a valid token in the MCP client's "
        "config and restart the server.",
    ),
    402: ("Insufficient balance", "Top up the AceDataCloud account, then call again."),
    404: (
        "Not found",
        "The model or route is unknown upstream: try model 'grok-4' or 'grok-3', or check "
        "ACEDATACLOUD_API_BASE_URL.",
    ),
    408: ("Upstream timeout", "The generation may still have been billed; it was not retried."),
    413: ("Request too large", "Send fewer or smaller messages or images."),
    429: ("Rate limited", "Too many requests: wait a little, then call again."),
    504: (
        "Upstream timeout",
        "The gateway gave up waiting for Grok. The generation may still have been billed, so it was not "
        "retried; try again, perhaps with a smaller max_tokens or a faster model.",
    ),
}
_FORBIDDEN: dict[str, tuple[str, str]] = {
    "used_up": ("Insufficient balance", "The AceDataCloud balance is used up: top it up, then call again."),
    "disabled": (
        "Access disabled",
        "The token or account is disabled: check it in the AceDataCloud console.",
    ),
    "forbidden": (
        "Request refused",
        "Upstream refused this request (often content moderation): rephrase it or check the account.",
    ),
}


def from_response(status: int, body: bytes, attempts: int, secret: str | None) -> GrokError:
    """Map an HTTP error response to a :class:`GrokError`."""
    code, message, trace_id = parse_error_body(body)
    if status == 403:
        title, hint = _FORBIDDEN.get(code or "", ("Permission denied", "Check the token's permissions."))
    elif status in _BY_STATUS:
        title, hint = _BY_STATUS[status]
    elif status >= 500:
        title, hint = "Upstream error", "Grok or the gateway failed; try again in a moment."
    else:
        title, hint = "Unexpected response", "Upstream answered with an unexpected status."
    if code == "timeout" and status != 504:
        title, hint = _BY_STATUS[504]
    if message is None:
        message = "non-JSON body: " + excerpt(body.decode("utf-8", "replace")) if body else "(empty body)"
    return GrokError(
        title,
        redact(message, secret),
        hint,
        status=status,
        code=code,
        trace_id=trace_id,
        attempts=attempts,
    )
