"""AceDataCloud's and xAI's error answers, read into :class:`GrokError`.

Mapped by AceDataCloud's error ``code`` first, then by HTTP status, as its own SDK does. Every text
taken from upstream is redacted (all tokens in play) before it is shortened.
"""

from __future__ import annotations

import json
import re
from typing import Any

from grok_chat_mcp.capabilities import rejected_argument, retired_on, use_one_of
from grok_chat_mcp.config import TOKEN_VAR
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.redaction import Secrets

_TAGS = re.compile(r"<[^<>]{0,200}>")
_SPACE = re.compile(r"\s+")
_EXCERPT = 200
#: Error bodies are read up to this many bytes: enough for any real error message.
MAX_ERROR_BODY = 64 * 1024
#: Only this much of a non-JSON body is looked at for the excerpt.
_EXCERPT_INPUT = 8 * 1024


def excerpt(body: str) -> str:
    """A short, single-line, tag-free excerpt of a non-JSON body (proxy pages, HTML)."""
    text = _SPACE.sub(" ", _TAGS.sub(" ", body[:_EXCERPT_INPUT])).strip()
    if not text:
        return "(empty body)"
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def parse_error_body(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(code, message, trace_id) from an AceDataCloud or xAI error body; Nones if not JSON."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
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
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return type(value).__name__


_AUTH_HINT = (
    f"Check {TOKEN_VAR}: set a valid AceDataCloud token in the MCP client's config for this server and "
    "restart it (tokens: https://platform.acedata.cloud)."
)
_BALANCE = ("Insufficient balance", "The AceDataCloud balance is used up: top it up, then call again.")
_TIMEOUT = (
    "Upstream timeout",
    "The gateway gave up waiting for Grok. The generation may still have been billed, so it was not "
    "retried; try again, perhaps with stream: true or a smaller max_tokens.",
)
_REJECTED = ("Request rejected", "Fix the argument named in the message and call again.")

#: AceDataCloud's error codes (its API docs and SDK), which decide before the HTTP status does.
_BY_CODE: dict[str, tuple[str, str]] = {
    "no_token": ("Authentication failed", f"No token reached upstream. {_AUTH_HINT}"),
    "invalid_token": ("Authentication failed", f"The token is invalid. {_AUTH_HINT}"),
    "token_expired": ("Authentication failed", f"The token has expired. {_AUTH_HINT}"),
    "token_mismatched": (
        "Authentication failed",
        f"The token does not belong to this service (token_mismatched). {_AUTH_HINT}",
    ),
    "used_up": _BALANCE,
    "disabled": (
        "Access disabled",
        "The token or account is disabled: check it in the AceDataCloud console.",
    ),
    "forbidden": (
        "Request refused",
        "Upstream refused this request (often content moderation): rephrase it or check the account.",
    ),
    "api_not_implemented": (
        "Not available",
        "This API is not available upstream; check ACEDATACLOUD_API_BASE_URL.",
    ),
    "no_api": ("Not found", "The route is unknown upstream; check ACEDATACLOUD_API_BASE_URL."),
    "too_many_requests": ("Rate limited", "Too many requests: wait a little, then call again."),
    "timeout": _TIMEOUT,
}

_BY_STATUS: dict[int, tuple[str, str]] = {
    400: _REJECTED,
    422: _REJECTED,
    401: ("Authentication failed", _AUTH_HINT),
    402: (
        "Payment required",
        "AceDataCloud asked for a pay-per-call (x402) payment; that is not a used-up balance. This "
        f"server pays with a token, not per call: check that {TOKEN_VAR} is set and valid.",
    ),
    403: (
        "Permission denied",
        "Upstream refused without a reason code: often content moderation (rephrase the request), "
        "else check the token's permissions in the AceDataCloud console.",
    ),
    404: ("Not found", "The model or route is unknown upstream; check ACEDATACLOUD_API_BASE_URL."),
    408: ("Upstream timeout", "The generation may still have been billed; it was not retried."),
    413: ("Request too large", "Send fewer or smaller messages or images."),
    429: ("Rate limited", "Too many requests: wait a little, then call again."),
    504: _TIMEOUT,
}


def from_response(status: int, body: bytes, attempts: int, secrets: Secrets, model: str = "") -> GrokError:
    """Map an HTTP error response to a :class:`GrokError` (code first, then status)."""
    code, message, trace_id = parse_error_body(body[:MAX_ERROR_BODY])
    title, hint = _BY_CODE.get(code or "") or _by_status(status)
    if message is None:
        text = secrets.redact(body[:_EXCERPT_INPUT].decode("utf-8", "replace"))
        message = "non-JSON body: " + excerpt(text) if body else "(empty body)"
    lowered = message.lower()
    if "is not supported" in lowered and (model.lower() in lowered or "model" in lowered) and status < 500:
        title, hint = "Model not available", _model_hint(model)
    elif argument := rejected_argument(message):
        hint = f"{model or 'This model'} rejects {argument}: call again without it."
    elif "can have a name" in lowered:
        hint = "Remove 'name' from every message whose role is not user, then call again."
    elif code == "api_error" and "no valid account" in lowered:
        hint = "Upstream has no free Grok account right now (its pool is exhausted): try again in a minute."
    return GrokError(
        title,
        _clip(secrets.redact(message), 1000),
        hint,
        status=status,
        code=_clip(secrets.redact(code), 80) if code else None,
        trace_id=_clip(secrets.redact(trace_id), 120) if trace_id else None,
        attempts=attempts,
    )


def _by_status(status: int) -> tuple[str, str]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return "Upstream error", "Grok or the gateway failed; try again in a moment."
    return "Unexpected response", "Upstream answered with an unexpected status."


def _model_hint(model: str) -> str:
    retired = retired_on(model) if model else None
    if retired:
        return f"{model} was retired upstream on {retired}. {use_one_of()}"
    return f"Upstream does not serve {model or 'this model'}. {use_one_of()}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" in text or "\r" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."
