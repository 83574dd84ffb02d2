"""The capability table: what is not sent to which model, what is refused, and what upstream teaches."""

from __future__ import annotations

from typing import Any

import pytest

from grok_chat_mcp.capabilities import (
    CURRENT_MODELS,
    DEFAULT_MODEL,
    EFFORTS,
    RETIRED_MODELS,
    UNSUPPORTED_FIELDS,
    Table,
    canonical,
    effort_aliases_phrase,
    lookup,
    model_description,
    models_phrase,
    redirects_phrase,
    retired_on,
    unsupported_argument,
    use_one_of,
)

HELLO = [{"role": "user", "content": "hi"}]
REJECTED_BY_REASONING = {"presence_penalty": 0.5, "frequency_penalty": 0.5, "stop": ["END"]}


def adapt(model: str, **arguments: Any) -> tuple[dict[str, Any], list[str]]:
    return Table().adapt(model, {"model": model, "messages": HELLO, **arguments})


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("grok-4", "grok-4"),
        ("GROK-4-latest", "grok-4"),
        ("grok-4-0709", "grok-4"),
        ("grok-4.5-2026-07-09", "grok-4.5"),
        ("grok-4.7-latest", "grok-4.7"),
        ("grok-3-latest", "grok-3"),
        ("grok-3-mini-latest", "grok-3-mini"),
        ("grok-4.20-0309-reasoning", "grok-4.20-reasoning"),
        ("grok-4.20-multi-agent-beta-0309", "grok-4.20-multi-agent"),
        ("grok-4.20-multi-agent-experimental-beta-0304", "grok-4.20-multi-agent"),
    ],
)
def test_aliases_and_dated_ids_map_to_the_table(model: str, expected: str) -> None:
    assert canonical(model) == expected
    assert lookup(model) is not None


def test_the_table_names_the_current_models_once() -> None:
    assert DEFAULT_MODEL == "grok-4"
    assert CURRENT_MODELS == ("grok-4.7", "grok-4.5", "grok-4", "grok-3")
    assert use_one_of() == "Use one of: grok-4.7, grok-4.5, grok-4, grok-3 (grok-4 is the default)."
    assert models_phrase() == "grok-4 by default; grok-4.7 (newest), grok-4.5, grok-3"
    assert redirects_phrase() == (
        "grok-4 is answered by grok-4.3 at low effort, grok-3 by grok-4.3 with reasoning off, unless "
        "reasoning_effort is sent (xAI's redirect rule; AceDataCloud has not confirmed it)."
    )
    assert effort_aliases_phrase() == "grok-4.5 treats reasoning_effort xhigh as high."
    for model in ("grok-4-1-fast", "grok-4-1-fast-non-reasoning", "grok-3-mini", "grok-2-vision"):
        assert retired_on(model) == "2026-07-27"
        assert model in RETIRED_MODELS
    assert retired_on("grok-4") is None and retired_on("grok-9") is None
    description = model_description()
    for model in (*CURRENT_MODELS, *RETIRED_MODELS, "grok-4.6", "grok-4.3"):
        assert model in description
    assert lookup("grok-4") is not None and lookup("grok-4").served_by == "grok-4.3"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("model", "effort", "sent"),
    [
        ("grok-4.7", "low", True),
        ("grok-4.7", "xhigh", True),
        ("grok-4.7", "none", False),
        ("grok-4.6", "xhigh", True),
        ("grok-4.5", "high", True),
        ("grok-4.5", "xhigh", True),  # treated as high: sent, with a note
        ("grok-4.5", "none", False),
        ("grok-4.3", "none", True),
        ("grok-4.3", "xhigh", False),
        ("grok-4.20-multi-agent", "xhigh", True),
        ("grok-4.20-reasoning", "low", False),
        ("grok-4.20-0309-non-reasoning", "none", False),
        # Unsure: the redirect through AceDataCloud. Sent, and upstream decides.
        ("grok-4", "high", True),
        ("grok-4", "none", True),
        ("grok-3", "low", True),
        # Unknown: sent as given.
        ("grok-5", "xhigh", True),
    ],
)
def test_reasoning_effort_is_gated_per_model(model: str, effort: str, sent: bool) -> None:
    adapted, notes = adapt(model, reasoning_effort=effort)
    assert ("reasoning_effort" in adapted) is sent
    caps = lookup(model)
    told = not sent or (caps is not None and (effort in caps.effort_as or bool(caps.remark)))
    assert bool(notes) is told
    if sent:
        assert adapted["reasoning_effort"] == effort


def test_the_note_names_the_value_and_what_the_model_takes() -> None:
    _, notes = adapt("grok-4.5", reasoning_effort="none")
    assert notes == ["reasoning_effort 'none' not sent: grok-4.5 takes low, medium, high."]
    adapted, notes = adapt("grok-4.5", reasoning_effort="xhigh")
    assert adapted["reasoning_effort"] == "xhigh"  # not a rejection: xAI serves it as high
    assert notes == ["reasoning_effort 'xhigh': grok-4.5 treats it as 'high'."]
    _, notes = adapt("grok-4.20-reasoning", reasoning_effort="low")
    assert notes == ["reasoning_effort not sent: grok-4.20-reasoning has no effort setting."]


@pytest.mark.parametrize(
    "model", ["grok-4", "grok-4-0709", "grok-4.5", "grok-4.7", "grok-3", "grok-4.20-reasoning"]
)
def test_reasoning_models_get_no_penalties_or_stop_and_are_told(model: str) -> None:
    payload = {"model": model, "messages": HELLO, "temperature": 0.2, **REJECTED_BY_REASONING}
    sent, notes = Table().adapt(model, payload)
    assert sent == {"model": model, "messages": HELLO, "temperature": 0.2}
    assert notes == [
        f"{key} not sent: {model} is a reasoning model and rejects it." for key in REJECTED_BY_REASONING
    ]
    assert payload["stop"] == ["END"]  # the caller's arguments are not modified


def test_non_reasoning_variants_keep_penalties_and_stop() -> None:
    payload = {"model": "grok-4.20-non-reasoning", "messages": HELLO, **REJECTED_BY_REASONING}
    assert Table().adapt("grok-4.20-non-reasoning", payload) == (payload, [])


def test_unknown_models_pass_through_untouched() -> None:
    payload: dict[str, Any] = {
        "model": "grok-5",
        "messages": [{"role": "system", "content": "x", "name": "n"}],
        "reasoning_effort": "xhigh",
        **REJECTED_BY_REASONING,
    }
    assert Table().adapt("grok-5", payload) == (payload, [])
    assert lookup("grok-5") is None
    assert lookup("grok-4.8") is None  # no family guess: upstream decides, and teaches the table


def test_name_is_kept_on_user_messages_only() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "x", "name": "boss"},
        {"role": "user", "content": "y", "name": "ann"},
        {"role": "assistant", "content": "z", "name": "bot", "extra": 1},
    ]
    sent, notes = Table().adapt("grok-4", {"model": "grok-4", "messages": messages})
    assert sent["messages"] == [
        {"role": "system", "content": "x"},
        {"role": "user", "content": "y", "name": "ann"},
        {"role": "assistant", "content": "z", "extra": 1},
    ]
    assert notes == [
        "'name' not sent on messages[0] (system), messages[2] (assistant): "
        "upstream accepts it only on user messages."
    ]
    assert messages[0]["name"] == "boss"


def test_what_upstream_taught_is_remembered_per_model() -> None:
    table = Table()
    assert table.learn("grok-4.7", "reasoning_effort") is True
    assert table.learn("grok-4.7-latest", "reasoning_effort") is False  # same model, already known
    payload = {"model": "grok-4.7", "messages": HELLO, "reasoning_effort": "low", "n": 2}
    adapted, notes = table.adapt("grok-4.7", payload)
    assert adapted == {"model": "grok-4.7", "messages": HELLO, "n": 2}
    assert notes == ["reasoning_effort not sent: upstream rejected it for grok-4.7 earlier in this session."]
    assert table.adapt("grok-4.5", {**payload, "model": "grok-4.5"})[1] == []  # other models untouched
    assert Table().adapt("grok-4.7", payload) == (payload, [])  # per table (per process), not global
    table.learn("grok-5", "top_logprobs")
    assert table.learned("grok-5") == {"top_logprobs"}


def test_retired_models_are_refused_with_the_current_list() -> None:
    for model in RETIRED_MODELS:
        refusal = Table().refusal(model, {"model": model, "messages": HELLO})
        assert refusal == (
            f"model: {model} was retired on AceDataCloud on 2026-07-27. "
            "Use one of: grok-4.7, grok-4.5, grok-4, grok-3 (grok-4 is the default)."
        )
    assert Table().refusal("grok-3-mini-latest", {}) is not None


def test_images_are_refused_only_where_the_table_is_sure() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "?"}, part]}]
    for model in ("grok-4.7", "grok-4.5", "grok-4", "grok-5"):
        assert Table().refusal(model, {"messages": messages}) is None
    assert Table().refusal("grok-3", {"messages": messages}) is None  # unsure: sent, upstream decides


@pytest.mark.parametrize(
    ("message", "argument"),
    [
        ("Argument not supported on this model: presencePenalty", "presence_penalty"),
        ("Argument not supported on this model: stop", "stop"),
        ("Model grok-4.5 does not support parameter reasoningEffort.", "reasoning_effort"),
        ("Model grok-4.7 does not support parameter maxCompletionTokens.", "max_completion_tokens"),
        ("Model grok-4 does not support parameter topLogprobs.", "top_logprobs"),
        ("Argument not supported on this model: frequencyPenalty", "frequency_penalty"),
        ("Argument not supported on this model: tools", None),  # not a knob: the caller's to fix
        ("Argument not supported on this model: fooBar", None),
        ("Argument not supported: service_tier", "service_tier"),  # NousResearch/hermes-agent#28490
        ("Only messages of role 'user' can have a name.", None),
        ("The model `grok-9` is not supported.", None),
    ],
)
def test_both_400_wordings_name_the_argument(message: str, argument: str | None) -> None:
    assert unsupported_argument(message) == argument


def test_unsupported_fields_have_a_reason_each() -> None:
    assert set(UNSUPPORTED_FIELDS) == {
        "logit_bias", "web_search_options", "search_parameters", "modalities", "audio", "prediction",
    }  # fmt: skip
    assert all(len(reason) > 20 for reason in UNSUPPORTED_FIELDS.values())


def test_efforts_are_listed_weakest_first() -> None:
    assert EFFORTS == ("none", "low", "medium", "high", "xhigh")


def test_the_stand_in_tells_the_same_truth() -> None:
    from standin import upstream

    assert set(upstream.MODELS) == set(CURRENT_MODELS)
    for model in CURRENT_MODELS:
        caps = lookup(model)
        assert caps is not None
        assert upstream.served_by(model) == (caps.served_by or model)
        if caps.efforts is not None:
            assert set(upstream.EFFORTS[model]) == caps.efforts | set(caps.effort_as)
    assert set(upstream.EFFORTS["grok-4.3"]) == lookup("grok-4.3").efforts  # type: ignore[union-attr]
