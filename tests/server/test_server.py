"""The tool through the SDK's in-memory MCP client."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
import respx
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND
from standin.upstream import Upstream

from grok_chat_mcp import __version__
from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, TOKEN, USAGE_NOTE, answer, completion, text_of

pytestmark = pytest.mark.anyio


async def test_server_identity(mcp: Client) -> None:
    assert mcp.server_info is not None
    assert mcp.server_info.name == "grok-chat-mcp"
    assert mcp.server_info.version == __version__
    assert mcp.instructions and TOOL_NAME in mcp.instructions


def test_no_schema_for_the_header_check(settings: Settings) -> None:
    """The SDK checks ``Mcp-Param-*`` headers only against properties that declare ``x-mcp-header``;
    ours declares none, so the lookup gives no schema and the check (which would pass every call
    anyway) is skipped instead of walking the whole schema twice per call."""
    from mcp.shared.inbound import validate_mcp_param_headers

    from grok_chat_mcp.server import input_schema

    schema = input_schema()
    assert "x-mcp-header" not in json.dumps(schema)
    server = build_server(settings)
    assert server.get_tool_input_schema is not None
    assert server.get_tool_input_schema(TOOL_NAME) is None
    assert server.get_tool_input_schema("other") is None
    arguments = {"model": "grok-4", "messages": HELLO, "stream": True}
    for headers in ({}, {"mcp-param-model": "grok-3"}, {"mcp-param-stream": "false", "mcp-name": TOOL_NAME}):
        assert validate_mcp_param_headers(schema, arguments, headers) is None


async def test_tools_list_advertises_the_contract(mcp: Client) -> None:
    (tool,) = (await mcp.list_tools()).tools
    assert tool.name == TOOL_NAME
    assert tool.title and tool.description and "chat.completion" in tool.description
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True and tool.annotations.open_world_hint is True
    schema = tool.input_schema
    assert "required" not in schema  # messages may be left out to collect an answer by conversation_id
    assert len(schema["properties"]) == 22
    assert schema["properties"]["model"]["default"] == "grok-4"
    assert schema["properties"]["temperature"]["maximum"] == 2
    assert tool.output_schema is not None
    # Minimal (clients re-check it on every call): the four fields, no titles or anyOf.
    assert tool.output_schema == {
        "type": "object",
        "properties": {
            "result": {"type": "object"},
            "notes": {"type": "array", "items": {"type": "string"}},
            "conversation_id": {"type": "string"},
            "status": {"type": "string"},
        },
    }
    assert tool.meta == {"anthropic/maxResultSizeChars": 500_000}
    assert "grok_text_to_video" not in tool.description
    for retired in ("grok-2-vision", "grok-3-mini", "grok-4-1-fast"):
        assert retired not in tool.description
    assert "grok-4" in tool.description and "images" in tool.description


async def test_capabilities_are_exactly_what_the_server_has(mcp: Client) -> None:
    capabilities = mcp.server_capabilities
    assert capabilities is not None
    advertised = {k for k, v in capabilities.model_dump(exclude_none=True).items() if v is not None}
    assert advertised == {"tools", "extensions"}
    assert capabilities.extensions == {"io.modelcontextprotocol/tasks": {}}
    for method in (mcp.list_prompts, mcp.list_resources, mcp.list_resource_templates):
        with pytest.raises(MCPError) as caught:
            await method()
        assert caught.value.error.code == METHOD_NOT_FOUND
    with pytest.raises(MCPError) as caught:
        await mcp.get_prompt("anything")
    assert caught.value.error.code == METHOD_NOT_FOUND


async def test_successful_call(mcp: Client, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion("pong"))
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO, "max_tokens": 5})
    assert answer(result) == {"result": completion("pong"), "notes": [USAGE_NOTE]}
    assert len(result.content) == 1
    text = text_of(result)
    assert "\n" not in text and '", "' not in text and '": ' not in text  # compact JSON
    sent = json.loads(route.calls.last.request.content)
    assert sent == {"model": "grok-4", "messages": HELLO, "max_tokens": 5}


async def test_validation_error_is_a_tool_error_and_sends_nothing(
    mcp: Client, upstream: respx.MockRouter
) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO, "temperature": 9, "top_p": -1})
    assert result.is_error
    text = text_of(result)
    assert text.startswith("Invalid arguments:")
    assert "temperature: input should be less than or equal to 2 (got 9)" in text
    assert "top_p: input should be greater than 0 (got -1)" in text
    assert "errors.pydantic.dev" not in text
    assert not route.called


@pytest.mark.parametrize(
    ("field", "value"),
    [("messages", []), ("model", ""), ("temperature", 3), ("top_p", 2), ("max_tokens", 0), ("stop", 1),
     ("seed", 1.5), ("user", 1), ("stream", "no"), ("presence_penalty", 5), ("frequency_penalty", -5),
     ("reasoning_effort", "max"), ("response_format", {"type": "yaml"}), ("tools", [{}]),
     ("tool_choice", "x")],
)  # fmt: skip
async def test_each_constrained_field_is_named(
    mcp: Client, upstream: respx.MockRouter, field: str, value: Any
) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    arguments = {"messages": HELLO, field: value}
    result = await mcp.call_tool(TOOL_NAME, arguments)
    assert result.is_error
    assert text_of(result).splitlines()[1].startswith(field)
    assert not route.called


async def test_missing_token_is_a_clear_tool_error(upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    async with Client(build_server(Settings(api_token=None))) as client:
        assert len((await client.list_tools()).tools) == 1
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO})
    assert result.is_error
    assert "ACEDATACLOUD_API_TOKEN" in text_of(result)
    assert not route.called


async def test_upstream_error_is_a_tool_error(mcp: Client, upstream: respx.MockRouter) -> None:
    body = {"error": {"code": "used_up", "message": f"balance insufficient for {TOKEN}"}, "trace_id": "tr-5"}
    upstream.post("/grok/chat/completions").respond(403, json=body)
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO})
    assert result.is_error
    text = text_of(result)
    assert "Insufficient balance (HTTP 403, used_up)" in text and "tr-5" in text
    assert TOKEN not in text
    assert "Traceback" not in text


async def test_retried_call_succeeds(mcp: Client, upstream: respx.MockRouter, no_backoff: None) -> None:
    route = upstream.post("/grok/chat/completions").mock(
        side_effect=[httpx.Response(503), httpx.Response(429), httpx.Response(200, json=completion())]
    )
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO})
    assert not result.is_error
    assert route.call_count == 3


async def test_arguments_the_model_rejects_are_not_sent_and_the_agent_is_told(
    mcp: Client, upstream: respx.MockRouter
) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    arguments = {
        "messages": HELLO,
        "model": "grok-4.5",
        "reasoning_effort": "none",
        "stop": "END",
        "temperature": 0.3,
    }
    result = await mcp.call_tool(TOOL_NAME, arguments)
    assert not result.is_error
    assert json.loads(route.calls.last.request.content) == {
        "model": "grok-4.5",
        "messages": HELLO,
        "temperature": 0.3,
    }
    notes = result.structured_content["notes"]
    assert notes[0] == "reasoning_effort 'none' not sent: grok-4.5 takes low, medium, high."
    assert notes[1] == "stop not sent: grok-4.5 is a reasoning model and rejects it."
    assert json.loads(text_of(result))["notes"] == notes  # the text block says the same
    # The default model is a redirect: the table is unsure about effort there, so it is sent.
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO, "reasoning_effort": "high"})
    assert json.loads(route.calls.last.request.content)["reasoning_effort"] == "high"
    route.respond(200, json=completion(model="grok-4.5"))
    result = await mcp.call_tool(
        TOOL_NAME, {"messages": HELLO, "model": "grok-4.5", "reasoning_effort": "medium"}
    )
    assert json.loads(route.calls.last.request.content)["reasoning_effort"] == "medium"
    assert result.structured_content["notes"] == [f"reasoning_effort medium; {USAGE_NOTE}"]


async def test_a_retired_model_is_refused_before_sending(mcp: Client, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO, "model": "grok-3-mini"})
    assert result.is_error
    assert "model: grok-3-mini was retired on AceDataCloud on 2026-07-27. Use one of: grok-4.7" in text_of(
        result
    )
    assert not route.called


async def test_every_parameter_reaches_upstream(mcp: Client, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    arguments = {
        "messages": HELLO,
        "model": "grok-5",  # unknown to the capability table: everything is sent as given
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 100,
        "stop": ["\n\n", "END"],
        "seed": 42,
        "user": "user-1",
        "stream": False,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "max_completion_tokens": 50,
        "parallel_tool_calls": False,
    }
    result = await mcp.call_tool(TOOL_NAME, arguments)
    assert not result.is_error
    assert json.loads(route.calls.last.request.content) == arguments


def sse_body(*deltas: dict[str, Any]) -> bytes:
    lines = [
        "data: " + json.dumps({"id": "s1", "object": "chat.completion.chunk", "model": "grok-4",
                               "choices": [{"index": 0, "delta": d, "finish_reason": None}]}) + "\n\n"
        for d in deltas
    ]  # fmt: skip
    return ("".join(lines) + "data: [DONE]\n\n").encode()


async def test_stream_call_returns_one_completion_and_progress(
    mcp: Client, upstream: respx.MockRouter
) -> None:
    body = sse_body({"role": "assistant", "content": "Hello"}, {"content": " world"})
    upstream.post("/grok/chat/completions").respond(
        200, content=body, headers={"content-type": "text/event-stream"}
    )
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = await mcp.call_tool(
        TOOL_NAME, {"messages": HELLO, "stream": True}, progress_callback=on_progress
    )
    assert not result.is_error
    completion_ = result.structured_content["result"]
    assert completion_["object"] == "chat.completion"
    assert completion_["choices"][0]["message"]["content"] == "Hello world"
    assert seen[-1][1] == "grok-4: 11 chars received ... Hello world"
    assert all(m and m.startswith("grok-4: ") and "\n" not in m for _, m in seen)
    values = [v for v, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)


async def test_heartbeat_progress_while_waiting(mcp: Client, upstream: respx.MockRouter) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.7)
        return httpx.Response(200, json=completion())

    upstream.post("/grok/chat/completions").mock(side_effect=slow)
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO}, progress_callback=on_progress)
    assert not result.is_error
    assert len(seen) >= 2  # heartbeat every 0.2 s in this fixture
    assert all("waiting for upstream" in (m or "") for _, m in seen)
    assert [v for v, _ in seen] == sorted({v for v, _ in seen})


async def test_json_string_arguments_from_clients_are_accepted(
    mcp: Client, upstream: respx.MockRouter
) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    result = await mcp.call_tool(TOOL_NAME, {"messages": json.dumps(HELLO)})
    assert not result.is_error
    assert json.loads(route.calls.last.request.content)["messages"] == HELLO


async def test_a_tool_call_goes_through_the_proxy_the_environment_names(
    stand_in: Upstream, proxied_settings: Settings
) -> None:
    """Through the MCP client: the pooled transport the call takes is the proxy's."""
    settings = proxied_settings
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO})
    assert not result.is_error, text_of(result)
    assert stand_in.requests[0].path == "http://grok.invalid/ok/grok/chat/completions"


async def test_a_bug_in_one_call_is_a_tool_error_and_the_server_lives_on(
    mcp: Client, upstream: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.post("/grok/chat/completions").respond(200, json=completion())

    def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr("grok_chat_mcp.results.answer", broken)
        result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO})
    assert result.is_error and text_of(result).startswith("Internal error:")
    assert "a bug" not in text_of(result) and "Traceback" not in text_of(result)
    assert not (await mcp.call_tool(TOOL_NAME, {"messages": HELLO})).is_error
