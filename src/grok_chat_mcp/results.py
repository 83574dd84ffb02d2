"""What the tool answers: a completion with its receipt, a running call, or an error.

Every answer is redacted of the tokens in play before it leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pydantic_core
from mcp_types import CallToolResult, TextContent

from grok_chat_mcp.capabilities import canonical
from grok_chat_mcp.redaction import Secrets

if TYPE_CHECKING:
    from grok_chat_mcp.request import GrokRequest

logger = logging.getLogger(__name__)

#: Declared in tools/list; kept minimal (clients re-check it on every call, models never read it).
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "object"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "conversation_id": {"type": "string"},
        "status": {"type": "string"},
    },
}
#: xAI reports cost in ticks of 1e-10 USD (``usage.cost_in_usd_ticks``).
USD_PER_TICK = 1e-10


def answer(
    completion: Mapping[str, Any],
    request: GrokRequest,
    conversation_id: str | None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The structured answer for a completion: the completion, its conversation and the receipt."""
    structured: dict[str, Any] = {"result": completion}
    if conversation_id is not None:
        structured["conversation_id"] = conversation_id
    notes = [*request.notes, *notes, *receipt(completion, request)]
    if notes:
        structured["notes"] = notes
    return structured


def receipt(completion: Mapping[str, Any], request: GrokRequest) -> list[str]:
    """What was served, in as few words as possible: the model that answered, effort, usage."""
    lines: list[str] = []
    served = completion.get("model")
    if isinstance(served, str) and served and canonical(served) != canonical(request.model):
        lines.append(f"{request.model} was answered by {served}.")
    effort = request.payload.get("reasoning_effort")
    usage = completion.get("usage")
    if isinstance(usage, Mapping):
        line = _usage(usage)
        if effort is not None:
            line = f"reasoning_effort {effort}; {line}"
        lines.append(line)
    elif effort is not None:
        lines.append(f"reasoning_effort {effort} sent.")
    return lines


def _usage(usage: Mapping[str, Any]) -> str:
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    line = f"tokens: {prompt:,} in, {completion:,} out"
    details = usage.get("completion_tokens_details")
    reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, Mapping) else 0
    if reasoning:
        line += f" ({reasoning:,} reasoning)"
    ticks = usage.get("cost_in_usd_ticks")
    if isinstance(ticks, int | float) and not isinstance(ticks, bool) and ticks > 0:
        line += f"; cost ${ticks * USD_PER_TICK:.6f}".rstrip("0").rstrip(".")
    return line + "."


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def success(structured: Mapping[str, Any], secrets: Secrets) -> CallToolResult:
    """A result: structured content and the same as one compact JSON text block."""
    text = pydantic_core.to_json(structured, inf_nan_mode="null").decode()
    cleaned = secrets.redact(text)  # an upstream that echoes a token must not pass it on
    if cleaned is not text:
        text, structured = cleaned, secrets.redact_json(structured)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=dict(structured))


def running(conversation_id: str, seconds: float, chars: int) -> CallToolResult:
    """A call still running: how to collect it, in the structured content (hosts such as Claude
    Code and Codex show the model only that) and the same in the text."""
    instruction = (
        f"Still running after {seconds:.0f} s ({chars:,} characters received so far); the call goes on "
        "and its answer is stored. Call grok_chat_completions again with only "
        f'{{"conversation_id": "{conversation_id}"}} to collect it.'
    )
    structured = {
        "status": "running",
        "conversation_id": conversation_id,
        "seconds": round(seconds),
        "chars_received": chars,
        "notes": [instruction],
    }
    return CallToolResult(content=[TextContent(type="text", text=instruction)], structured_content=structured)


def error(text: str, secrets: Secrets | None = None) -> CallToolResult:
    """A tool error: one text block a person and an agent can act on."""
    if secrets is not None:
        text = secrets.redact(text)
    logger.info("tool error: %s", " | ".join(text.splitlines()))  # whole, one log line
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
