"""What the tool answers: a completion with its receipt, a running call, or an error.

Every answer is redacted of the tokens in play before it leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic_core
from mcp_types import CallToolResult, TextContent

from grok_chat_mcp.budget import usd
from grok_chat_mcp.capabilities import (
    PRIORITY_MULTIPLIER,
    REDIRECT_SURENESS,
    USD_PER_TICK,
    canonical,
    lookup,
    price_of,
    served_how,
)
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


@dataclass(frozen=True)
class Cost:
    """What one answer cost, in ticks of 1e-10 USD (xAI's ``usage.cost_in_usd_ticks``)."""

    ticks: int
    #: From the tokens and the price table, because upstream reported no cost.
    estimated: bool
    #: Served at the priority tier (billed at twice the standard price).
    priority: bool

    @property
    def usd(self) -> float:
        return self.ticks * USD_PER_TICK


def cost(completion: Mapping[str, Any], model: str) -> Cost | None:
    """The cost upstream reports for ``completion``, else an estimate from its tokens and the list
    price of the model that answered (or ``model``); None without usage or a known price."""
    usage = completion.get("usage")
    if not isinstance(usage, Mapping):
        return None
    priority = completion.get("service_tier") == "priority"
    ticks = usage.get("cost_in_usd_ticks")
    if isinstance(ticks, int | float) and not isinstance(ticks, bool) and ticks > 0:
        return Cost(round(ticks), estimated=False, priority=priority)
    served = completion.get("model")
    price = (price_of(served) if isinstance(served, str) else None) or price_of(model)
    prompt, output = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    if price is None or not (prompt or output):
        return None
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    estimate = price.ticks(prompt, cached, output + reasoning) * (PRIORITY_MULTIPLIER if priority else 1)
    return Cost(estimate, estimated=True, priority=priority)


def answer(
    completion: Mapping[str, Any],
    request: GrokRequest,
    conversation_id: str | None,
    spent: Cost | None,
    notes: Sequence[str] = (),
    after: Sequence[str] = (),
) -> dict[str, Any]:
    """The structured answer for a completion: the completion, its conversation and the receipt
    (``spent``: its :func:`cost`); ``after``: more notes (what the budget has left)."""
    structured: dict[str, Any] = {"result": completion}
    if conversation_id is not None:
        structured["conversation_id"] = conversation_id
    notes = [*request.notes, *notes, *receipt(completion, request, spent), *after]
    if notes:
        structured["notes"] = notes
    return structured


def receipt(completion: Mapping[str, Any], request: GrokRequest, spent: Cost | None) -> list[str]:
    """What was served, in as few words as possible: the model that answered, effort, usage
    (``spent``: the completion's :func:`cost`)."""
    lines: list[str] = []
    served = completion.get("model")
    effort = request.payload.get("reasoning_effort")
    if isinstance(served, str) and served and canonical(served) != canonical(request.model):
        lines.append(_answered_by(request.model, served, effort))
    usage = completion.get("usage")
    if isinstance(usage, Mapping):
        line = _usage(usage, spent)
        if effort is not None:
            line = f"reasoning_effort {effort}; {line}"
        lines.append(line)
    elif effort is not None:
        lines.append(f"reasoning_effort {effort} sent.")
    tier = completion.get("service_tier")
    if request.payload.get("service_tier") == "priority" and tier != "priority":
        lines.append(
            f"service_tier priority was asked for; upstream served the {tier} tier (standard price)."
            if isinstance(tier, str)
            else "service_tier priority was asked for; upstream did not say which tier served it."
        )
    return lines


def _answered_by(model: str, served: str, effort: Any) -> str:
    """``grok-4 was answered by grok-4.3 at low effort (xAI's redirect rule; ...).``"""
    caps = lookup(model)
    if caps is None or effort is not None or not caps.served_effort or canonical(served) != caps.served_by:
        return f"{model} was answered by {served}."
    return f"{model} was answered by {served} {served_how(model)} ({REDIRECT_SURENESS})."


def _usage(usage: Mapping[str, Any], spent: Cost | None) -> str:
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    line = f"tokens: {prompt:,} in, {completion:,} out"
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    if reasoning:
        line += f" ({reasoning:,} reasoning)"
    if spent is not None and spent.ticks > 0:
        line += f"; cost {'about ' if spent.estimated else ''}{usd(spent.usd)}"
        if spent.estimated:
            line += " (estimated from the tokens and xAI's list prices: upstream reported no cost)"
        if spent.priority:
            line += "; priority tier: billed at twice the standard price"
    return line + "."


def _detail(usage: Mapping[str, Any], group: str, key: str) -> int:
    details = usage.get(group)
    return _int(details.get(key)) if isinstance(details, Mapping) else 0


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
