"""The model capability table: what is not sent to which model, and the note that says so."""

from __future__ import annotations

from typing import Any

import pytest

from grok_chat_mcp.models import CURRENT_MODELS, adapt, canonical, capabilities, refusal, retired_on

HELLO = [{"role": "user", "content": "hi"}]
REJECTED_BY_REASONING = {"presence_penalty": 0.5, "frequency_penalty": 0.5, "stop": ["END"]}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("grok-4", "grok-4"),
        ("GROK-4-latest", "grok-4"),
        ("grok-4-0709", "grok-4"),
        ("grok-4.5-2026-07-09", "grok-4.5"),
        ("grok-3-latest", "grok-3"),
        ("grok-3-mini-latest", "grok-3-mini"),
    ],
)
def test_aliases_and_dated_ids_map_to_their_family(model: str, expected: str) -> None:
    assert canonical(model) == expected


@pytest.mark.parametrize("model", ["grok-4", "grok-4-0709", "grok-4.5", "grok-3", "grok-4.20-reasoning"])
def test_reasoning_models_get_no_penalties_or_stop_and_are_told(model: str) -> None:
    payload = {"model": model, "messages": HELLO, "temperature": 0.2, **REJECTED_BY_REASONING}
    sent, notes = adapt(payload)
    assert sent == {"model": model, "messages": HELLO, "temperature": 0.2}
    assert len(notes) == 3
    for key in REJECTED_BY_REASONING:
        assert any(note.startswith(f"{key} was not sent: {model}") for note in notes), notes
    assert payload["stop"] == ["END"]  # the caller's arguments are not modified


def test_non_reasoning_variants_keep_penalties_and_stop() -> None:
    payload = {"model": "grok-4.20-non-reasoning", "messages": HELLO, **REJECTED_BY_REASONING}
    assert adapt(payload) == (payload, [])


@pytest.mark.parametrize(
    ("model", "effort", "sent"),
    [
        ("grok-4", "high", False),
        ("grok-3", "low", False),
        ("grok-4.5", "medium", True),
        ("grok-4.5", "low", True),
        ("grok-4.3", "medium", True),
        ("grok-3-mini", "medium", False),
        ("grok-3-mini", "high", True),
    ],
)
def test_reasoning_effort_per_model(model: str, effort: str, sent: bool) -> None:
    payload = {"model": model, "messages": HELLO, "reasoning_effort": effort}
    adapted, notes = adapt(payload)
    assert ("reasoning_effort" in adapted) is sent
    assert bool(notes) is not sent
    if not sent:
        assert notes[0].startswith(f"reasoning_effort was not sent: {model}")


def test_unknown_models_pass_through_untouched() -> None:
    payload: dict[str, Any] = {
        "model": "grok-5",
        "messages": [{"role": "system", "content": "x", "name": "n"}],
        "reasoning_effort": "high",
        **REJECTED_BY_REASONING,
    }
    assert adapt(payload) == (payload, [])
    assert capabilities("grok-5") is None


def test_name_is_kept_on_user_messages_only() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "x", "name": "boss"},
        {"role": "user", "content": "y", "name": "ann"},
        {"role": "assistant", "content": "z", "name": "bot", "extra": 1},
    ]
    sent, notes = adapt({"model": "grok-4", "messages": messages})
    assert sent["messages"] == [
        {"role": "system", "content": "x"},
        {"role": "user", "content": "y", "name": "ann"},
        {"role": "assistant", "content": "z", "extra": 1},
    ]
    assert notes == [
        "'name' was not sent on messages[0] (system), messages[2] (assistant): "
        "upstream accepts it only on user messages."
    ]
    assert messages[0]["name"] == "boss"


def test_images_are_refused_for_a_text_only_model_and_accepted_by_grok_4() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "?"}, part]}]
    message = refusal({"model": "grok-3", "messages": messages})
    assert message is not None
    assert message.startswith("messages[0].content[1]: grok-3 does not take images")
    assert "grok-4" in message and "grok-4.5" in message
    assert refusal({"model": "grok-4", "messages": messages}) is None
    assert refusal({"model": "grok-5", "messages": messages}) is None


def test_current_and_retired_models() -> None:
    assert CURRENT_MODELS[0] == "grok-4"
    assert set(CURRENT_MODELS) == {"grok-4", "grok-4.5", "grok-3"}
    for model in ("grok-4-1-fast", "grok-4-1-fast-non-reasoning", "grok-3-mini", "grok-2-vision"):
        assert retired_on(model) == "2026-07-27"
    assert retired_on("grok-4") is None
