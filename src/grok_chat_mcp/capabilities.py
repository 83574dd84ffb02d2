"""The one place that names Grok models: what each accepts, and the payload adapted to it.

A value that a model is *known* to reject is not sent (it would cost the caller a 400) and the agent
is told which one and why; where the table is unsure, the value is sent and upstream decides. When
upstream answers 400 that a model does not support an argument, :func:`unsupported_argument` names
it and :meth:`Table.learn` remembers it for the life of the process, so the table corrects itself.
Unknown model names pass through untouched: upstream adds models faster than this table changes.

Sources (read 2026-11-30; the full list, and what could not be confirmed, is in docs/models.md):
docs.x.ai reasoning guide (grok-4.3 effort none/low/medium/high, default low; grok-4.20-multi-agent
low..xhigh = 4 or 16 agents; reasoning models reject presencePenalty, frequencyPenalty, stop);
docs.x.ai migration/may-15-retirement (grok-3, grok-4-0709 retired, replaced by grok-4.3);
docs.x.ai cost-tracking (``cost_in_usd_ticks``, 10^10 ticks per USD); docs.x.ai pricing (the price
table) and priority-processing (``service_tier``); Vercel AI SDK
``packages/xai/src/supports-reasoning-effort.ts`` (grok-4.20 reasoning/non-reasoning reject every
effort) and ``xai-chat-model-capabilities.ts``; issues quoting xAI for grok-4.5 (low..high),
grok-4.6 and grok-4.7 (low..xhigh); docs.x.ai reasoning guide as quoted by inspect_ai (grok-4.5 treats
xhigh as high); issues quoting the 400 "Multi Agent requests are not allowed on chat completions";
AceDataCloud's MCPs CHANGELOG (names retired 2026-07-27).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

#: A reasoning_effort value the tool accepts.
Effort = Literal["none", "low", "medium", "high", "xhigh"]
#: Every reasoning_effort value, weakest first.
EFFORTS: Final[tuple[str, ...]] = get_args(Effort)
DEFAULT_MODEL: Final = "grok-4"

Status = Literal["current", "redirect", "xai", "retired"]
#: A service_tier value the tool accepts.
ServiceTier = Literal["auto", "default", "priority"]
#: xAI bills a priority answer at twice the standard token price (docs/models.md, prices).
PRIORITY_MULTIPLIER: Final = 2
USD_PER_TICK: Final = 1e-10


@dataclass(frozen=True)
class Price:
    """xAI's list price in USD per million tokens; from ``long_from`` prompt tokens on, every token of
    the request costs twice as much (docs.x.ai pricing, "long context")."""

    input: float
    cached: float
    output: float
    long_from: int = 200_000

    def ticks(self, prompt: int, cached: int, output: int) -> int:
        """The cost of these tokens in ticks (10^-10 USD); ``output`` counts reasoning tokens too."""
        factor = 2 if prompt >= self.long_from else 1
        usd = (max(prompt - cached, 0) * self.input + cached * self.cached + output * self.output) / 1e6
        return round(usd * factor / USD_PER_TICK)


#: docs.x.ai/developers/pricing, read 2026-12-07 (docs/models.md lists the sources).
_PRICE_47_46: Final = Price(2.00, 0.50, 6.00)
_PRICE_45: Final = Price(2.00, 0.30, 6.00)
_PRICE_43: Final = Price(1.25, 0.20, 2.50)


@dataclass(frozen=True)
class Capabilities:
    """What one model accepts. ``None`` in a field means *unsure*: the value is sent."""

    name: str
    status: Status
    #: Accepted reasoning_effort values; empty: rejects the parameter; None: unsure (sent).
    efforts: frozenset[str] | None
    default_effort: str | None
    penalties: bool | None  # presence_penalty and frequency_penalty
    stop: bool | None
    images: bool | None
    #: The model that answers this name upstream (a redirect), if another.
    served_by: str | None = None
    #: Date the name was retired on AceDataCloud (status "retired").
    retired: str | None = None
    #: What effort means when it is not depth of thought.
    effort_meaning: str = ""
    #: Effort values the model takes but serves as another one (``{"xhigh": "high"}``).
    effort_as: Mapping[str, str] = field(default_factory=dict)
    #: A redirect's effort when none is sent (xAI's rule: ``low`` for reasoning models).
    served_effort: str | None = None
    #: Said in the notes of every call to this model.
    remark: str = ""
    #: List price (a redirect is billed at its target's).
    price: Price | None = None


def _efforts(low: str, high: str) -> frozenset[str]:
    return frozenset(EFFORTS[EFFORTS.index(low) : EFFORTS.index(high) + 1])


def _model(
    name: str,
    status: Status,
    efforts: frozenset[str] | None,
    default_effort: str | None = None,
    *,
    penalties: bool | None = False,
    stop: bool | None = False,
    images: bool | None = True,
    served_by: str | None = None,
    retired: str | None = None,
    effort_meaning: str = "",
    effort_as: Mapping[str, str] | None = None,
    served_effort: str | None = None,
    remark: str = "",
    price: Price | None = None,
) -> Capabilities:
    """A table entry; the keyword defaults are those of a reasoning model that takes images."""
    return Capabilities(
        name,
        status,
        efforts,
        default_effort,
        penalties,
        stop,
        images,
        served_by,
        retired,
        effort_meaning,
        dict(effort_as or {}),
        served_effort,
        remark,
        price,
    )


_RETIRED_ON_ACEDATA: Final = "2026-07-27"

_TABLE: Final[dict[str, Capabilities]] = {
    c.name: c
    for c in (
        _model("grok-4.7", "current", _efforts("low", "xhigh"), "high", price=_PRICE_47_46),
        _model(
            "grok-4.5",
            "current",
            _efforts("low", "high"),
            "high",
            effort_as={"xhigh": "high"},
            price=_PRICE_45,
        ),
        # Redirects: xAI retired both names on 2026-05-15 and answers them with grok-4.3 (effort
        # none..high): a reasoning model at low effort, a non-reasoning one with none. That
        # AceDataCloud passes effort through is unconfirmed: sent, upstream decides.
        _model(
            "grok-4",
            "redirect",
            None,
            served_by="grok-4.3",
            served_effort="low",
            price=_PRICE_43,
        ),
        _model(
            "grok-3",
            "redirect",
            None,
            images=None,
            served_by="grok-4.3",
            served_effort="none",
            price=_PRICE_43,
        ),
        _model("grok-4.6", "xai", _efforts("low", "xhigh"), "high", price=_PRICE_47_46),
        _model("grok-4.3", "xai", _efforts("none", "high"), "low", price=_PRICE_43),
        _model("grok-4.20-reasoning", "xai", frozenset(), price=_PRICE_43),
        _model("grok-4.20-non-reasoning", "xai", frozenset(), penalties=True, stop=True, price=_PRICE_43),
        _model(
            "grok-4.20-multi-agent",
            "xai",
            _efforts("low", "xhigh"),
            effort_meaning="agents: 4 for low/medium, 16 for high/xhigh",
            remark="grok-4.20-multi-agent is reported to work through xAI's Responses API only; chat "
            "completions have answered it with 400 'Multi Agent requests are not allowed on chat "
            "completions'.",
            price=_PRICE_43,
        ),
        *(
            _model(
                name, "retired", None, penalties=None, stop=None, images=images, retired=_RETIRED_ON_ACEDATA
            )
            for name, images in (
                ("grok-4-1-fast", True),
                ("grok-4-1-fast-non-reasoning", True),
                ("grok-3-mini", False),
                ("grok-2-vision", True),
            )
        ),
    )
}

#: What AceDataCloud serves today, newest first (its chat-model enum and the tool contract).
CURRENT_MODELS: Final = tuple(name for name, c in _TABLE.items() if c.status in ("current", "redirect"))
RETIRED_MODELS: Final = {name: c.retired for name, c in _TABLE.items() if c.retired}
#: The served names another model answers (xAI's 2026-05-15 redirects).
REDIRECTS: Final = tuple(name for name in CURRENT_MODELS if _TABLE[name].served_by)
#: How sure the redirects' effort is: xAI's rule, for names AceDataCloud passes on.
REDIRECT_SURENESS: Final = "xAI's redirect rule; AceDataCloud has not confirmed it"

#: Alias parts: ``-latest``, ``-beta``, ``-experimental`` and dates (``-0309``, ``-2025-07-09``,
#: ``-20250709``), wherever they stand: ``grok-4.20-0309-reasoning`` -> ``grok-4.20-reasoning``.
_ALIAS = re.compile(r"-(?:latest|beta|experimental|\d{4}-\d{2}-\d{2}|\d{8}|\d{4})(?=-|$)")


def canonical(model: str) -> str:
    """The model name without alias parts, lower case: ``grok-4-0709`` -> ``grok-4``."""
    return _ALIAS.sub("", model.strip().lower())


def models() -> tuple[Capabilities, ...]:
    """The whole table: served models first, then xAI's others, then the retired names."""
    return tuple(_TABLE.values())


def lookup(model: str) -> Capabilities | None:
    """The known capabilities of ``model``, or None for a name this table does not know."""
    return _TABLE.get(canonical(model))


def retired_on(model: str) -> str | None:
    """The date AceDataCloud retired ``model``, if it did."""
    caps = lookup(model)
    return caps.retired if caps is not None else None


def use_one_of() -> str:
    """The error hint's list: ``Use one of: grok-4.7, ... (grok-4 is the default).``"""
    return f"Use one of: {', '.join(CURRENT_MODELS)} ({DEFAULT_MODEL} is the default)."


def image_models() -> tuple[str, ...]:
    """The served models known to take images."""
    return tuple(name for name in CURRENT_MODELS if _TABLE[name].images)


def models_phrase() -> str:
    """The served models for the tool description: ``grok-4 by default; grok-4.7 (newest), ...``."""
    others = [name for name in CURRENT_MODELS if name != DEFAULT_MODEL]
    return f"{DEFAULT_MODEL} by default; {others[0]} (newest), {', '.join(others[1:])}"


def redirects_phrase() -> str:
    """What answers the redirected names, one sentence for the tool description: ``grok-4 is
    answered by grok-4.3 at low effort, grok-3 by grok-4.3 with reasoning off, unless ...``."""
    parts = [f"{name} by {_TABLE[name].served_by} {served_how(name)}" for name in REDIRECTS]
    return f"{parts[0].replace(' by ', ' is answered by ', 1)}, {', '.join(parts[1:])}, unless " + (
        f"reasoning_effort is sent ({REDIRECT_SURENESS})."
    )


def effort_aliases_phrase() -> str:
    """``grok-4.5 treats reasoning_effort xhigh as high.``, for the served models that do so."""
    return " ".join(
        f"{name} treats reasoning_effort {value} as {means}."
        for name in CURRENT_MODELS
        for value, means in _TABLE[name].effort_as.items()
    )


def served_how(model: str) -> str:
    """How a redirect's target answers when no effort is sent: ``at low effort``."""
    caps = lookup(model)
    effort = caps.served_effort if caps is not None else None
    return "with reasoning off" if effort == "none" else f"at {effort} effort" if effort else ""


def price_of(model: str) -> Price | None:
    """The list price that bills ``model`` (a redirect's target's), or None for an unknown name."""
    caps = lookup(model)
    return caps.price if caps is not None else None


def model_description() -> str:
    """The ``model`` parameter's description, from the table."""
    served = []
    for name in CURRENT_MODELS:
        caps = _TABLE[name]
        if caps.served_by:
            served.append(f"{name} (answered by {caps.served_by}, effort {caps.served_effort} unless sent)")
        else:
            served.append(f"{name} (effort {_span(caps.efforts or ())}, default {caps.default_effort})")
    unsure = [name for name in CURRENT_MODELS if _TABLE[name].images is None]
    xai = ", ".join(name for name, caps in _TABLE.items() if caps.status == "xai")
    return (
        f"The Grok chat model, default {DEFAULT_MODEL}. Served: {', '.join(served)}; "
        f"{', '.join(image_models())} take images"
        + (f" ({', '.join(unsure)}: unconfirmed)" if unsure else "")
        + f". xAI also has {xai} (multi-agent reportedly through the Responses API only). Names retired "
        f"on {_RETIRED_ON_ACEDATA} are refused: "
        f"{', '.join(RETIRED_MODELS)}. "
        "Any other name is sent as given."
    )


def effort_description() -> str:
    """The ``reasoning_effort`` parameter's description, from the table."""
    groups: dict[frozenset[str], list[str]] = {}
    for name, caps in _TABLE.items():
        if caps.efforts and caps.status != "retired":
            groups.setdefault(caps.efforts, []).append(name)
    takes = "; ".join(
        f"{'/'.join(names)} {_span(efforts)}{_as_phrase(names)}" for efforts, names in groups.items()
    )
    return (
        f"How hard the model thinks (lower is cheaper and faster): {takes} (on multi-agent, the number "
        "of agents). A value the model is known to reject is not sent; the result's notes say so."
    )


def _as_phrase(names: Iterable[str]) -> str:
    served_as = {k: v for name in names for k, v in _TABLE[name].effort_as.items()}
    return "".join(f" ({value} is treated as {means})" for value, means in served_as.items())


def _span(efforts: Iterable[str]) -> str:
    ordered = [e for e in EFFORTS if e in set(efforts)]
    return f"{ordered[0]}..{ordered[-1]}" if len(ordered) > 2 else "/".join(ordered) or "not accepted"


def _listed(efforts: Iterable[str]) -> str:
    return ", ".join(e for e in EFFORTS if e in set(efforts))


def _takes_images(model: str) -> bool:
    caps = lookup(model)
    return caps is not None and caps.images is not False


#: Fields upstream does not support, with the reason the agent is shown.
UNSUPPORTED_FIELDS: Final[dict[str, str]] = {
    "logit_bias": "Grok through AceDataCloud does not support token biases; steer the wording in the prompt",
    "web_search_options": "no web search here (xAI's search is a server-side tool of its Responses API)",
    "search_parameters": "xAI retired Live Search (search_parameters); this tool has no web search",
    "modalities": "Grok chat completions answer in text only",
    "audio": "Grok chat completions have no audio output",
    "prediction": "predicted outputs are an OpenAI feature that Grok does not support",
}

#: Arguments the self-correcting retry may drop: tuning knobs only. A 400 about messages, tools,
#: tool_choice or response_format is the caller's to fix, not something to drop silently.
DROPPABLE: Final = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "user",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "parallel_tool_calls",
        "n",
        "logprobs",
        "top_logprobs",
        "service_tier",
    }
)

_UNSUPPORTED = re.compile(
    r"Argument not supported(?: on this model)?: (?P<a>\w+)|does not support parameter (?P<b>\w+)"
)


def rejected_argument(message: str) -> str | None:
    """The tool argument an upstream error message says the model does not support, or None.

    The wordings: ``Argument not supported on this model: presencePenalty``,
    ``Model X does not support parameter reasoningEffort.`` and ``Argument not supported:
    service_tier``.
    """
    match = _UNSUPPORTED.search(message)
    return None if match is None else snake(match.group("a") or match.group("b"))


def unsupported_argument(message: str) -> str | None:
    """:func:`rejected_argument`, when it names an argument the server may drop and retry without."""
    name = rejected_argument(message)
    return name if name in DROPPABLE else None


def snake(name: str) -> str:
    """``presencePenalty`` -> ``presence_penalty``."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class Table:
    """The capability table of one server process, plus what upstream taught it while it runs."""

    def __init__(self) -> None:
        self._learned: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def learn(self, model: str, argument: str) -> bool:
        """Remember that upstream rejects ``argument`` for ``model``; True if that is news."""
        key = canonical(model)
        with self._lock:
            known = self._learned.setdefault(key, set())
            if argument in known:
                return False
            known.add(argument)
            return True

    def learned(self, model: str) -> frozenset[str]:
        """The arguments upstream rejected for ``model`` since the process started."""
        with self._lock:
            return frozenset(self._learned.get(canonical(model), ()))

    def adapt(self, model: str, payload: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The payload without what ``model`` rejects, and one short note per drop.

        The input is not modified. What cannot be adapted (a retired model, images for a text-only
        model) is refused earlier, by :meth:`refusal`.
        """
        caps = lookup(model)
        learned = self.learned(model)
        drops: dict[str, str] = {}
        notes_first: list[str] = [caps.remark] if caps is not None and caps.remark else []
        for key in payload:
            if key in learned:
                drops[key] = f"{key} not sent: upstream rejected it for {model} earlier in this session."
        effort = payload.get("reasoning_effort")
        if effort is not None and "reasoning_effort" not in drops and caps and caps.efforts is not None:
            if not caps.efforts:
                drops["reasoning_effort"] = f"reasoning_effort not sent: {model} has no effort setting."
            elif effort in caps.effort_as:
                notes_first.append(
                    f"reasoning_effort '{effort}': {model} treats it as '{caps.effort_as[effort]}'."
                )
            elif effort not in caps.efforts:
                drops["reasoning_effort"] = (
                    f"reasoning_effort '{effort}' not sent: {model} takes {_listed(caps.efforts)}."
                )
        if caps is not None:
            for key, accepted in (
                ("presence_penalty", caps.penalties),
                ("frequency_penalty", caps.penalties),
                ("stop", caps.stop),
            ):
                if accepted is False and key in payload and key not in drops:
                    drops[key] = f"{key} not sent: {model} is a reasoning model and rejects it."
        adapted = {k: v for k, v in payload.items() if k not in drops}
        notes = [*notes_first, *drops.values()]
        if caps is not None:
            adapted, where = _strip_names(adapted)
            if where:
                notes.append(
                    f"'name' not sent on {', '.join(where)}: upstream accepts it only on user messages."
                )
        return adapted, notes

    def refusal(self, model: str, payload: Mapping[str, Any]) -> str | None:
        """Why this call cannot work at all (retired model, images for a text-only one), or None."""
        caps = lookup(model)
        if caps is None:
            return None
        if caps.retired:
            return f"model: {model} was retired on AceDataCloud on {caps.retired}. {use_one_of()}"
        if caps.images is not False:
            return None
        for m, message in enumerate(payload.get("messages") or ()):
            content = message.get("content") if isinstance(message, dict) else None
            for p, part in enumerate(content if isinstance(content, list) else ()):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    takes = ", ".join(name for name in CURRENT_MODELS if _takes_images(name))
                    return f"messages[{m}].content[{p}]: {model} does not take images; use {takes}"
        return None


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
