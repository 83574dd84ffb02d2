"""The contract: advertised schema, validation before the network, payload fidelity."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from grok_chat_mcp.arguments import parse_arguments
from grok_chat_mcp.contract import MAX_MESSAGES, MAX_PARTS, MAX_TOOL_CALLS, MAX_VALUES, input_schema
from grok_chat_mcp.errors import InvalidArguments

HELLO = [{"role": "user", "content": "hi"}]
PARAMETERS = {
    "messages", "model", "temperature", "top_p", "max_tokens", "stop", "seed", "user", "stream",
    "presence_penalty", "frequency_penalty", "reasoning_effort", "response_format", "tools", "tool_choice",
    "max_completion_tokens", "parallel_tool_calls", "n", "logprobs", "top_logprobs", "conversation_id",
    "service_tier",
}  # fmt: skip


def test_schema_is_flat_and_complete() -> None:
    schema = input_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == PARAMETERS
    assert "required" not in schema  # parse_arguments enforces messages unless conversation_id collects
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    assert "$defs" not in schema
    assert "$ref" not in str(schema)
    assert "'default': None" not in str(schema)


def test_schema_constraints() -> None:
    props = input_schema()["properties"]
    assert props["model"]["default"] == "grok-4"
    assert props["stream"]["default"] is False
    assert (props["temperature"]["minimum"], props["temperature"]["maximum"]) == (0, 2)
    assert (props["top_p"]["exclusiveMinimum"], props["top_p"]["maximum"]) == (0, 1)
    assert (props["seed"]["minimum"], props["seed"]["maximum"]) == (-(2**31), 2**31 - 1)
    assert props["tools"]["maxItems"] == 128
    assert props["max_completion_tokens"]["minimum"] == 1
    assert props["parallel_tool_calls"]["type"] == "boolean"
    assert props["max_tokens"] == {**props["max_tokens"], "type": "integer", "minimum": 1}
    for name in ("presence_penalty", "frequency_penalty"):
        assert (props[name]["minimum"], props[name]["maximum"]) == (-2, 2)
    assert props["reasoning_effort"]["enum"] == ["none", "low", "medium", "high", "xhigh"]
    assert (props["top_logprobs"]["minimum"], props["top_logprobs"]["maximum"]) == (0, 8)
    assert props["n"]["minimum"] == 1 and props["logprobs"]["type"] == "boolean"
    assert props["conversation_id"]["type"] == "string"
    assert "not reasoning tokens" in props["max_completion_tokens"]["description"]
    assert "Deprecated" in props["max_tokens"]["description"]
    assert props["response_format"]["properties"]["type"]["enum"] == ["text", "json_object", "json_schema"]
    assert props["tool_choice"]["anyOf"][0]["enum"] == ["none", "auto", "required"]
    assert props["stop"]["anyOf"][1]["maxItems"] == 4
    message = props["messages"]["items"]
    assert message["properties"]["role"]["enum"] == ["system", "developer", "user", "assistant", "tool"]
    parts = message["properties"]["content"]["anyOf"][1]["items"]["properties"]
    assert parts["image_url"]["properties"]["detail"]["enum"] == ["auto", "low", "high"]
    assert props["messages"]["minItems"] == 1
    for name in PARAMETERS - {"model", "stream"}:
        assert "default" not in props[name], name


def test_payload_keeps_values_verbatim_and_omits_unset() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
            ],
            "x-custom": {"kept": True},
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            "reasoning_content": "thinking",
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    arguments = {"messages": messages, "temperature": 0, "stop": "END", "seed": -3, "top_p": None}
    _, payload = parse_arguments(arguments)
    assert payload == {"model": "grok-4", "messages": messages, "temperature": 0, "stop": "END", "seed": -3}
    assert payload["messages"] is messages


def test_model_given_is_sent() -> None:
    _, payload = parse_arguments({"messages": HELLO, "model": "grok-9-experimental"})
    assert payload["model"] == "grok-9-experimental"


def test_json_text_arguments_are_decoded() -> None:
    request, payload = parse_arguments({"messages": '[{"role": "user", "content": "hi"}]', "stop": '["a"]'})
    assert payload["messages"] == HELLO
    assert payload["stop"] == ["a"]
    assert request.stop == ["a"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "messages: required (unless conversation_id is given to collect an answer)"),
        ({"model": "grok-4"}, "messages: required (unless conversation_id"),
        ({"messages": []}, "messages: expected at least 1 item(s), got 0"),
        ({"messages": "hello"}, "messages: input should be a valid list"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role:"),
        ({"messages": [{"content": "x"}]}, "messages[0].role: required"),
        ({"messages": [{"role": "user"}]}, "messages[0]: 'content' is required"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0]: 'content' is required"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content: expected a string"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages[0]: a tool message needs 'tool_call_id'",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
            "messages[0]: only assistant messages may carry 'tool_calls'",
        ),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]},
            "messages[0].tool_calls[0].type: required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type:",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.detail:",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0]: a text part needs 'text'",
        ),
        ({"messages": HELLO, "model": ""}, "model:"),
        ({"messages": HELLO, "model": 4}, "model: input should be a valid string (got 4)"),
        ({"messages": HELLO, "temperature": 2.5}, "temperature: input should be less than or equal to 2"),
        ({"messages": HELLO, "temperature": -0.1}, "temperature: input should be greater than or equal to 0"),
        ({"messages": HELLO, "temperature": "0.5"}, "temperature: input should be a valid number"),
        ({"messages": HELLO, "temperature": True}, "temperature: input should be a valid number (got true)"),
        ({"messages": HELLO, "top_p": 1.5}, "top_p: input should be less than or equal to 1"),
        ({"messages": HELLO, "max_tokens": 0}, "max_tokens: input should be greater than or equal to 1"),
        ({"messages": HELLO, "max_tokens": 10.5}, "max_tokens: input should be a valid integer"),
        ({"messages": HELLO, "stop": 3}, "stop: expected a string or an array of 1 to 4 strings"),
        ({"messages": HELLO, "stop": []}, "stop: expected at least 1 item(s), got 0"),
        ({"messages": HELLO, "stop": ["a"] * 5}, "stop: expected at most 4 item(s), got 5"),
        ({"messages": HELLO, "stop": ["a", 1]}, "stop[1]: input should be a valid string"),
        ({"messages": HELLO, "seed": "7"}, "seed: input should be a valid integer"),
        ({"messages": HELLO, "user": 12}, "user: input should be a valid string"),
        ({"messages": HELLO, "stream": "yes"}, "stream: input should be a valid boolean"),
        (
            {"messages": HELLO, "presence_penalty": 3},
            "presence_penalty: input should be less than or equal to 2",
        ),
        (
            {"messages": HELLO, "frequency_penalty": -3},
            "frequency_penalty: input should be greater than or equal",
        ),
        (
            {"messages": HELLO, "reasoning_effort": "max"},
            "reasoning_effort: input should be 'none', 'low', 'medium', 'high' or 'xhigh'",
        ),
        ({"messages": HELLO, "top_logprobs": 9}, "top_logprobs: input should be less than or equal to 8"),
        ({"messages": HELLO, "top_logprobs": -1}, "top_logprobs: input should be greater than or equal to 0"),
        ({"messages": HELLO, "n": 0}, "n: input should be greater than or equal to 1"),
        ({"messages": HELLO, "logprobs": "yes"}, "logprobs: input should be a valid boolean"),
        ({"messages": HELLO, "conversation_id": 7}, "conversation_id: input should be a valid string"),
        (
            {"messages": HELLO, "logit_bias": {"50256": -100}},
            "logit_bias: not supported upstream: Grok through AceDataCloud does not support token biases",
        ),
        ({"messages": HELLO, "web_search_options": {}}, "web_search_options: not supported upstream: no web"),
        (
            {"messages": HELLO, "search_parameters": {}},
            "search_parameters: not supported upstream: xAI retired",
        ),
        ({"messages": HELLO, "modalities": ["audio"]}, "modalities: not supported upstream: Grok chat"),
        ({"messages": HELLO, "audio": {}}, "audio: not supported upstream"),
        ({"messages": HELLO, "prediction": {}}, "prediction: not supported upstream"),
        ({"messages": HELLO, "top_p": 0}, "top_p: input should be greater than 0 (got 0)"),
        ({"messages": HELLO, "seed": 2**31}, "seed: input should be less than or equal to 2147483647"),
        (
            {"messages": HELLO, "seed": -(2**31) - 1},
            "seed: input should be greater than or equal to -2147483648",
        ),
        (
            {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}] * 129},
            "tools: expected at most 128 item(s), got 129",
        ),
        (
            {"messages": HELLO, "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format: json_schema needs a 'name'",
        ),
        ({"messages": HELLO, "max_completion_tokens": 0}, "max_completion_tokens: input should be greater"),
        (
            {"messages": HELLO, "parallel_tool_calls": "yes"},
            "parallel_tool_calls: input should be a valid boolean",
        ),
        (
            {"messages": HELLO, "temperature": float("nan")},
            "temperature: nan is not a finite number",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "extra": [float("inf")]}]},
            "messages[0].extra[0]: inf is not a finite number",
        ),
        ({"messages": HELLO, "response_format": {"type": "xml"}}, "response_format.type:"),
        (
            {"messages": HELLO, "response_format": {"type": "json_schema"}},
            "response_format: type 'json_schema'",
        ),
        (
            {"messages": HELLO, "response_format": "json"},
            "response_format: input should be a valid dictionary",
        ),
        ({"messages": HELLO, "tools": [{"type": "function"}]}, "tools[0].function: required"),
        (
            {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "has space"}}]},
            "tools[0].function.name: string should match pattern",
        ),
        ({"messages": HELLO, "tool_choice": "always"}, "tool_choice: expected 'none', 'auto', 'required'"),
        ({"messages": HELLO, "tool_choice": {"type": "function"}}, "tool_choice: function: required"),
        ({"messages": HELLO, "temprature": 1}, "temprature: unknown parameter"),
        ({"messages": '[{"role": "user"'}, "messages: looks like JSON text but does not parse"),
        (
            {"messages": [{"role": "user", "content": "\ud800"}]},
            "messages[0].content: text is not valid Unicode",
        ),
    ],
)
def test_invalid_arguments_name_the_field(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse_arguments(arguments)
    message = str(caught.value)
    assert expected in message
    assert "pydantic" not in message
    assert len(message.splitlines()) <= 6


def test_deep_nesting_is_refused() -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(InvalidArguments, match="nested deeper than 64 levels"):
        parse_arguments({"messages": [{"role": "user", "content": "x", "extra": deep}]})


def test_many_errors_are_capped() -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse_arguments({"messages": [{"role": "x"}] * 10})
    assert "more problems" in str(caught.value)


def test_model_description_is_true_today() -> None:
    description = input_schema()["properties"]["model"]["description"]
    for model in ("grok-4.7", "grok-4.5", "grok-4", "grok-3", "grok-4.6", "grok-4.3"):
        assert model in description
    assert "retired" in description
    assert "images" in description
    effort = input_schema()["properties"]["reasoning_effort"]["description"]
    assert "grok-4.5 low..high" in effort and "grok-4.3 none..high" in effort and "xhigh" in effort


def test_the_new_fields_are_sent_as_given() -> None:
    arguments = {"messages": HELLO, "n": 2, "logprobs": True, "top_logprobs": 8, "reasoning_effort": "xhigh"}
    _, payload = parse_arguments(arguments)
    assert payload == {"model": "grok-4", **arguments}


def test_conversation_id_alone_collects_an_answer() -> None:
    request, payload = parse_arguments({"conversation_id": "c-1"})
    assert request.messages is None and request.conversation_id == "c-1"
    assert payload == {"model": "grok-4", "conversation_id": "c-1"}
    _, payload = parse_arguments({"conversation_id": "c-1", "messages": HELLO})
    assert payload["messages"] == HELLO


def test_a_call_without_messages_gets_one_line() -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse_arguments({"temperature": 0.5})
    assert str(caught.value) == "messages: required (unless conversation_id is given to collect an answer)"


def test_huge_invalid_values_give_short_errors() -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse_arguments({"messages": HELLO, "temperature": "x" * 1_000_000, "seed": [0] * 20_000})
    assert len(str(caught.value)) < 300
    assert "temperature" in str(caught.value) and "seed" in str(caught.value)


def test_the_shipped_schema_file_is_what_the_models_generate() -> None:
    from grok_chat_mcp.server import input_schema as shipped

    assert shipped() == input_schema(), (
        "regenerate: python -m grok_chat_mcp.contract > src/grok_chat_mcp/input_schema.json"
    )


# Bounds by structure: what a call costs in memory grows with its items, not only its bytes.


def test_structural_caps_are_in_the_schema() -> None:
    props = input_schema()["properties"]
    message = props["messages"]["items"]["properties"]
    assert props["messages"]["maxItems"] == MAX_MESSAGES
    parts = next(v for v in message["content"]["anyOf"] if v.get("type") == "array")
    assert parts["maxItems"] == MAX_PARTS
    assert message["tool_calls"]["maxItems"] == MAX_TOOL_CALLS


TEXT_PART = {"type": "text", "text": "a"}
TOOL_CALL = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def with_calls(count: int) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": None, "tool_calls": [TOOL_CALL] * count}, *HELLO]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            HELLO * (MAX_MESSAGES + 1),
            f"messages: expected at most {MAX_MESSAGES} item(s), got {MAX_MESSAGES + 1}",
        ),
        (HELLO * 2_000_000, f"messages: expected at most {MAX_MESSAGES} item(s), got 2000000"),
        (
            [*HELLO, {"role": "user", "content": [TEXT_PART] * 2_000_000}],
            f"messages[1].content: expected at most {MAX_PARTS} item(s), got 2000000",
        ),
        (
            with_calls(MAX_TOOL_CALLS + 1),
            f"messages[0].tool_calls: expected at most {MAX_TOOL_CALLS} item(s), got {MAX_TOOL_CALLS + 1}",
        ),
    ],
    ids=["messages", "two-million-messages", "two-million-parts", "tool-calls"],
)
def test_structural_caps_name_the_field(messages: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse_arguments({"messages": messages})
    assert str(caught.value) == expected


def test_the_caps_themselves_are_accepted() -> None:
    many = [{"role": "user", "content": [TEXT_PART] * MAX_PARTS}, *HELLO * (MAX_MESSAGES - 2)]
    request, payload = parse_arguments({"messages": [*with_calls(MAX_TOOL_CALLS)[:1], *many]})
    assert len(payload["messages"]) == MAX_MESSAGES == len(request.messages or [])


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"messages": [{"role": "user", "content": "a", "x": [[]] * MAX_VALUES}]}, "messages"),
        ({"messages": HELLO, "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "enum": list(range(MAX_VALUES))}}}]}, "tools"),
        ({"messages": HELLO, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "s": [
            {}] * MAX_VALUES}}}, "response_format"),
        ({"messages": HELLO * 1024 + [{"role": "user", "content": [TEXT_PART] * 100}] * 1000}, "messages"),
    ],
    ids=["extra-key", "tool-schema", "json-schema", "parts-over-many-messages"],
)  # fmt: skip
def test_too_many_values_in_all_are_refused_naming_the_field(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse_arguments(arguments)
    assert str(caught.value) == (
        f"{field}: the arguments hold more than {MAX_VALUES:,} JSON values (objects, arrays, strings, "
        "numbers); send less structure (with conversation_id, only the new messages)"
    )


def test_over_the_caps_nothing_is_built_per_item() -> None:
    """A refusal costs a walk, not a model per part (2,000,000 parts took gigabytes)."""
    huge = {"messages": [{"role": "user", "content": [TEXT_PART] * 2_000_000}]}
    tracemalloc.start()
    try:
        with pytest.raises(InvalidArguments):
            parse_arguments(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
