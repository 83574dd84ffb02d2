"""What each Grok model accepts, and the payload adapted to it before it is sent.

One table, with its sources, so that a parameter a model is known to reject is never sent (it would
cost the caller a 400) and the agent is told which one and why. Unknown model names pass through
untouched: upstream adds models faster than this table changes.

Sources (read 2026-11-25):

- docs.x.ai/docs/guides/reasoning: "presencePenalty, frequencyPenalty and stop parameters are not
  supported by reasoning models. Adding them in the request would result in an error", and
  "reasoning_effort is not supported by grok-3, grok-4 and grok-4-fast-reasoning".
- docs.x.ai/docs/migration/may-15-retirement: xAI retired ``grok-3`` (and grok-4-0709, the 4.1-fast
  models) on 2026-05-15; the name ``grok-3`` is now served by grok-4.3, a reasoning model.
- docs.x.ai/developers/grok-4-5: grok-4.5 takes ``reasoning_effort`` low, medium or high; text and
  image input. The models page: grok-4 takes images.
- The Vercel AI SDK ``packages/xai/src/xai-chat-model-capabilities.ts``: reasoning models (``grok-4*``
  and anything ``-reasoning``) get no frequency/presence penalty and no stop; ``-non-reasoning`` ones do.
  LiteLLM ``litellm/llms/xai/chat/transformation.py`` drops ``stop`` and ``frequency_penalty`` for grok-4.
- xAI answers 400 "Only messages of role 'user' can have a name." for ``name`` on any other role.
- AceDataCloud's MCPs CHANGELOG: grok-4-1-fast, grok-4-1-fast-non-reasoning, grok-3-mini and
  grok-2-vision were removed on 2026-07-27 (they answer 400 "... is not supported"); its OpenAPI
  spec's model enum is grok-4.5, grok-4, grok-3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: The models AceDataCloud serves today, default first.
CURRENT_MODELS = ("grok-4", "grok-4.5", "grok-3")
#: Names AceDataCloud has removed, with the date; upstream answers 400 "... is not supported".
RETIRED_MODELS = {
    "grok-4-1-fast": "2026-07-27",
    "grok-4-1-fast-non-reasoning": "2026-07-27",
    "grok-3-mini": "2026-07-27",
    "grok-2-vision": "2026-07-27",
}
_EFFORTS = frozenset({"low", "medium", "high"})


@dataclass(frozen=True)
class Capabilities:
    """What one model (family) accepts. ``None`` for reasoning_efforts means: not accepted at all."""

    family: str
    reasoning_efforts: frozenset[str] | None
    penalties: bool  # presence_penalty and frequency_penalty
    stop: bool
    images: bool
    #: ``name`` on messages of roles other than user (xAI refuses it for every model it serves).
    name_on_other_roles: bool = False


_GROK_4 = Capabilities("grok-4", None, penalties=False, stop=False, images=True)
_GROK_4_5 = Capabilities("grok-4.5", _EFFORTS, penalties=False, stop=False, images=True)
_GROK_4_3 = Capabilities("grok-4.3", _EFFORTS | {"none"}, penalties=False, stop=False, images=True)
_GROK_4_X = Capabilities("grok-4.x", None, penalties=False, stop=False, images=True)
_GROK_4_X_NON_REASONING = Capabilities("grok-4.x non-reasoning", None, penalties=True, stop=True, images=True)
# The name grok-3 is served by grok-4.3 since 2026-05-15, a reasoning model; effort stays unsent, as
# the reasoning guide says grok-3 rejects it.
_GROK_3 = Capabilities("grok-3", None, penalties=False, stop=False, images=False)
_GROK_3_MINI = Capabilities(
    "grok-3-mini", frozenset({"low", "high"}), penalties=False, stop=False, images=False
)
_GROK_2_VISION = Capabilities("grok-2-vision", None, penalties=True, stop=True, images=True)

#: Alias suffixes: ``-latest``, and dated ids such as ``-0709`` or ``-2025-07-09``.
_ALIAS = re.compile(r"(-latest|-\d{4}(-\d{2}-\d{2})?|-\d{8})$")


def canonical(model: str) -> str:
    """The model name without alias suffixes, lower case: ``grok-4-0709`` -> ``grok-4``."""
    name = model.strip().lower()
    while True:
        shorter = _ALIAS.sub("", name)
        if shorter == name:
            return name
        name = shorter


def capabilities(model: str) -> Capabilities | None:
    """The known capabilities of ``model``, or None for a model this table does not know."""
    name = canonical(model)
    if name == "grok-4":
        return _GROK_4
    if name.startswith("grok-4.5"):
        return _GROK_4_5
    if name.startswith("grok-4.3"):
        return _GROK_4_3
    if name.startswith("grok-4."):
        return _GROK_4_X_NON_REASONING if "non-reasoning" in name else _GROK_4_X
    if name == "grok-3":
        return _GROK_3
    if name.startswith("grok-3-mini"):
        return _GROK_3_MINI
    if name == "grok-2-vision":
        return _GROK_2_VISION
    return None


def retired_on(model: str) -> str | None:
    """The date AceDataCloud retired ``model``, if it did."""
    return RETIRED_MODELS.get(canonical(model))


def adapt(payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop what the payload's model is known to reject; return the payload and one note per drop.

    The input is not modified. Raises nothing: what cannot be adapted (images for a text-only
    model) is refused earlier, by :func:`refusal`.
    """
    model = str(payload.get("model", ""))
    caps = capabilities(model)
    if caps is None:
        return payload, []
    drop: list[str] = []
    notes: list[str] = []
    effort = payload.get("reasoning_effort")
    if effort is not None and (caps.reasoning_efforts is None or effort not in caps.reasoning_efforts):
        drop.append("reasoning_effort")
        if caps.reasoning_efforts is None:
            why = f"{model} has no reasoning_effort setting (it reasons on its own)"
        else:
            why = f"{model} takes only {', '.join(sorted(caps.reasoning_efforts))}"
        notes.append(f"reasoning_effort was not sent: {why}.")
    if not caps.penalties:
        for key in ("presence_penalty", "frequency_penalty"):
            if key in payload:
                drop.append(key)
                notes.append(f"{key} was not sent: {model} is a reasoning model and rejects it.")
    if not caps.stop and "stop" in payload:
        drop.append("stop")
        notes.append(f"stop was not sent: {model} is a reasoning model and rejects stop sequences.")
    adapted = {k: v for k, v in payload.items() if k not in drop} if drop else payload
    if not caps.name_on_other_roles:
        adapted, dropped_names = _strip_names(adapted)
        if dropped_names:
            notes.append(
                f"'name' was not sent on {', '.join(dropped_names)}: "
                "upstream accepts it only on user messages."
            )
    return adapted, notes


def refusal(payload: dict[str, Any]) -> str | None:
    """Why this payload cannot work with its model at all (images for a text-only model), or None."""
    model = str(payload.get("model", ""))
    caps = capabilities(model)
    if caps is None or caps.images:
        return None
    for m, message in enumerate(payload.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for p, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") == "image_url":
                takes = ", ".join(name for name in CURRENT_MODELS if _takes_images(name))
                return (
                    f"messages[{m}].content[{p}]: {model} does not take images; "
                    f"use a model that does ({takes})"
                )
    return None


def _takes_images(model: str) -> bool:
    caps = capabilities(model)
    return caps is not None and caps.images


def _strip_names(payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return payload, []
    where: list[str] = []
    out: list[Any] = []
    for index, message in enumerate(messages):
        if isinstance(message, dict) and "name" in message and message.get("role") != "user":
            where.append(f"messages[{index}] ({message.get('role')})")
            message = {k: v for k, v in message.items() if k != "name"}
        out.append(message)
    if not where:
        return payload, []
    return {**payload, "messages": out}, where
