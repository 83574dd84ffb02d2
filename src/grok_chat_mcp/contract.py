"""The tool's input contract: pydantic models and the advertised JSON schema.

The models only validate: what goes upstream is the caller's own arguments (see
:mod:`grok_chat_mcp.arguments`), so values keep their exact keys, nesting and order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from grok_chat_mcp.capabilities import (
    DEFAULT_MODEL,
    Effort,
    ServiceTier,
    effort_description,
    model_description,
)

__all__ = ["ChatRequest", "input_schema"]

#: Deepest nesting accepted anywhere in the arguments; deeper JSON is refused, not sent.
MAX_DEPTH = 64
#: Upstream's limit on the number of tools (xAI API reference).
MAX_TOOLS = 128
#: Messages in one call, content parts in one message, tool calls on one message, and JSON values
#: (objects, arrays, strings, numbers, booleans, nulls) in all the arguments: bounds on what a
#: call costs in memory beyond its bytes (docs/tool.md, limits, says why these values).
MAX_MESSAGES = 2048
MAX_PARTS = 512
MAX_TOOL_CALLS = 256
MAX_VALUES = 50_000


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)


def _custom(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _content_or_text(value: Any) -> Any:
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if value is None or isinstance(value, list):
        return value
    raise _custom("content_type", "expected a string, an array of text/image_url parts, or null")


def _stop_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise _custom("stop_type", "expected a string or an array of 1 to 4 strings")


def _tool_choice(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise _custom("tool_choice", "expected 'none', 'auto', 'required' or a function object")
        return value
    if not isinstance(value, dict):
        raise _custom("tool_choice_type", "expected 'none', 'auto', 'required' or a function object")
    try:
        NamedToolChoice.model_validate(value)
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc']))}: {_lower(e['msg'])}" for e in exc.errors())
        raise _custom("tool_choice", "; ".join(problems)) from None
    return value


def _lower(message: str) -> str:
    if message == "Field required":
        return "required"
    return message[:1].lower() + message[1:]


_CONTENT_SCHEMA = {
    "description": "A string, or an array of parts (text / image_url). Null only on an assistant "
    "message that carries tool_calls.",
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "maxItems": MAX_PARTS,
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["text", "image_url"]},
                    "text": {"type": "string"},
                    "image_url": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string", "description": "http(s) or data: URL of the image"},
                            "detail": {"type": "string", "enum": ["auto", "low", "high"]},
                        },
                        "required": ["url"],
                    },
                },
                "required": ["type"],
            },
        },
        {"type": "null"},
    ],
}
_STOP_SCHEMA = {
    "description": "Stop sequences where the API will stop generating tokens: a string or 1 to 4 strings "
    "(not sent to reasoning models, which reject it).",
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4},
    ],
}
_TOOL_CHOICE_SCHEMA = {
    "description": "Controls tool calling: 'none', 'auto', 'required', or "
    '{"type": "function", "function": {"name": ...}} to force one function.',
    "anyOf": [
        {"type": "string", "enum": ["none", "auto", "required"]},
        {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["function"]},
                "function": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            },
            "required": ["type", "function"],
        },
    ],
}


class ImageURL(_Model):
    url: str = Field(min_length=1, description="http(s) or data: URL of the image")
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(_Model):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None

    @model_validator(mode="after")
    def _check_payload(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise _custom("part", "a text part needs 'text' (a string)")
        if self.type == "image_url" and self.image_url is None:
            raise _custom("part", "an image_url part needs 'image_url': {'url': ...}")
        return self


class FunctionCall(_Model):
    name: str = Field(min_length=1)
    arguments: str = Field(description="The call's arguments as a JSON string")


class ToolCall(_Model):
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionCall


class Message(_Model):
    """One conversation turn. Unknown extra keys are passed through untouched."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[
        Annotated[list[ContentPart], Field(max_length=MAX_PARTS)] | None,
        BeforeValidator(_content_or_text),
        WithJsonSchema(_CONTENT_SCHEMA),
    ] = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(
        default=None, max_length=MAX_TOOL_CALLS, description="Assistant only: the calls it made"
    )
    tool_call_id: str | None = Field(default=None, description="Tool messages: the id of the call answered")
    reasoning_content: str | None = Field(default=None, description="Assistant only: earlier reasoning")

    @model_validator(mode="after")
    def _check_role_rules(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise _custom("message", "a tool message needs 'tool_call_id' (the id of the call it answers)")
        if self.tool_calls is not None and self.role != "assistant":
            raise _custom("message", "only assistant messages may carry 'tool_calls'")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise _custom(
                "message", "'content' is required (null only on an assistant message with tool_calls)"
            )
        return self


class FunctionDef(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Function name (a-z, A-Z, 0-9, _ and -)")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="JSON Schema of the arguments")


class ToolDef(_Model):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Model):
    name: str = Field(min_length=1)


class NamedToolChoice(_Model):
    type: Literal["function"]
    function: NamedFunction


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = Field(
        default=None, description="Required when type is json_schema: {'name': ..., 'schema': {...}}"
    )

    @model_validator(mode="after")
    def _check_schema(self) -> ResponseFormat:
        if self.type == "json_schema":
            if self.json_schema is None:
                raise _custom("response_format", "type 'json_schema' needs a 'json_schema' object")
            name = self.json_schema.get("name")
            if not isinstance(name, str) or not name:
                raise _custom("response_format", "json_schema needs a 'name' (a non-empty string)")
        return self


class ChatRequest(BaseModel):
    """The arguments of ``grok_chat_completions``."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    messages: list[Message] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MESSAGES,
        description="Conversation messages, oldest first (required unless conversation_id collects an "
        "answer). Each has 'role' (system/developer/user/assistant/tool) and 'content'. For vision, "
        "content may be a list of text and image_url parts (https, data: or a local JPEG/PNG path). "
        "Assistant turns may carry 'tool_calls'; tool turns need 'tool_call_id'.",
    )
    model: str = Field(default=DEFAULT_MODEL, min_length=1, description=model_description())
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature between 0 and 2. Higher = more random."
    )
    top_p: float | None = Field(
        default=None, gt=0, le=1, description="Nucleus sampling probability mass, above 0 and at most 1."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Deprecated upstream: prefer max_completion_tokens."
    )
    max_completion_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Maximum number of visible output tokens (it bounds the answer, not reasoning tokens).",
    )
    stop: Annotated[
        list[Annotated[str, Field(strict=True)]] | None,
        BeforeValidator(_stop_list),
        Field(min_length=1, max_length=4),
        WithJsonSchema(_STOP_SCHEMA),
    ] = None
    seed: int | None = Field(
        default=None,
        ge=-(2**31),
        le=2**31 - 1,
        description="Random seed for (best-effort) deterministic sampling (32-bit integer).",
    )
    user: str | None = Field(default=None, description="End-user identifier for abuse monitoring.")
    stream: bool = Field(
        default=False,
        description="Stream the answer: progress notifications carry the text as it arrives; the result "
        "is still one assembled chat.completion.",
    )
    presence_penalty: float | None = Field(
        default=None,
        ge=-2,
        le=2,
        description="Presence penalty between -2.0 and 2.0 (not sent to reasoning models, which reject it).",
    )
    frequency_penalty: float | None = Field(
        default=None,
        ge=-2,
        le=2,
        description="Frequency penalty between -2.0 and 2.0 (not sent to reasoning models, which reject it).",
    )
    reasoning_effort: Effort | None = Field(
        default=None,
        description=effort_description(),
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        description='Response format, e.g. {"type": "json_object"} or {"type": "json_schema", '
        '"json_schema": {...}}.',
    )
    tools: list[ToolDef] | None = Field(
        default=None, max_length=MAX_TOOLS, description="Functions the model may call (at most 128)."
    )
    tool_choice: Annotated[Any, BeforeValidator(_tool_choice), WithJsonSchema(_TOOL_CHOICE_SCHEMA)] = None
    parallel_tool_calls: bool | None = Field(
        default=None, description="Whether the model may call several functions in one turn."
    )
    n: int | None = Field(default=None, ge=1, description="How many choices to generate (each is billed).")
    logprobs: bool | None = Field(default=None, description="Return the log probability of each token.")
    top_logprobs: int | None = Field(
        default=None, ge=0, le=8, description="With logprobs: the most likely tokens per position (0 to 8)."
    )
    service_tier: ServiceTier | None = Field(
        default=None,
        description="Processing tier: 'priority' answers sooner at twice the token price (the notes say "
        "when it applied); 'default' is the standard tier; 'auto' is sent as given.",
    )
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        description="Continue a stored conversation: with messages, they are appended to its history; "
        "without messages, collect the pending or last answer.",
    )

    @model_validator(mode="after")
    def _needs_messages(self) -> ChatRequest:
        if self.messages is None and self.conversation_id is None:
            raise _custom("missing_messages", _NO_MESSAGES)
        return self


_NO_MESSAGES = "required (unless conversation_id is given to collect an answer)"


@cache
def input_schema() -> dict[str, Any]:
    """The JSON schema advertised in ``tools/list``: flat, self-contained, no null noise."""
    raw = ChatRequest.model_json_schema()
    defs: dict[str, Any] = raw.pop("$defs", {})
    schema: dict[str, Any] = _clean(raw, defs)
    schema.pop("description", None)
    schema["additionalProperties"] = False
    return schema


def _clean(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if (
            key == "title"
            or (key == "default" and value is None)
            or (key == "additionalProperties" and value is True)
        ):
            continue
        if key == "properties":
            out[key] = {name: _clean(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _clean(value, defs)
    variants = out.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        if len(rest) == 1:
            del out["anyOf"]
            out = {**rest[0], **out}
    return out


if (
    __name__ == "__main__"
):  # regenerates src/grok_chat_mcp/input_schema.json: python -m grok_chat_mcp.contract (a test checks it)
    import sys

    sys.stdout.write(json.dumps(input_schema(), indent=2, ensure_ascii=False) + "\n")
