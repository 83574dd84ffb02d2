"""The server against a stand-in that answers like the real API (tests/README.md has the facts)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import TOOL_NAME, build_server
from tests.conftest import HELLO, text_of
from tests.upstream import Upstream

pytestmark = pytest.mark.anyio


async def call(stand_in: Upstream, arguments: dict[str, Any], token: str = "tok-local-real") -> Any:
    settings = Settings(api_token=token, base_url=stand_in.url("ok"), max_retries=0)
    async with Client(build_server(settings)) as client:
        return await client.call_tool(TOOL_NAME, arguments)


@pytest.mark.parametrize("model", ["grok-4", "grok-4.5", "grok-3"])
async def test_penalties_and_stop_on_reasoning_models_succeed_with_notes(
    stand_in: Upstream, model: str
) -> None:
    arguments = {
        "messages": HELLO,
        "model": model,
        "presence_penalty": 1,
        "frequency_penalty": 1,
        "stop": "X",
    }
    result = await call(stand_in, arguments)
    assert not result.is_error, text_of(result)  # the stand-in answers 400 if any of them is sent
    assert len(result.structured_content["notes"]) == 3
    assert stand_in.requests[-1].body == {"model": model, "messages": HELLO}


async def test_the_same_arguments_sent_verbatim_get_the_real_400(stand_in: Upstream) -> None:
    arguments = {"messages": HELLO, "model": "grok-4-0709-unknown", "presence_penalty": 1}
    result = await call(stand_in, arguments)  # a model the table does not know: sent as given
    assert result.is_error
    assert "Model not available (HTTP 400, bad_request)" in text_of(result)
    assert "Upstream does not serve grok-4-0709-unknown" in text_of(result)


async def test_reasoning_effort_per_model(stand_in: Upstream) -> None:
    result = await call(stand_in, {"messages": HELLO, "model": "grok-4.5", "reasoning_effort": "medium"})
    assert not result.is_error and "notes" not in result.structured_content
    assert stand_in.requests[-1].body["reasoning_effort"] == "medium"
    result = await call(stand_in, {"messages": HELLO, "reasoning_effort": "high"})
    assert not result.is_error
    assert result.structured_content["notes"][0].startswith("reasoning_effort was not sent: grok-4")


@pytest.mark.parametrize(
    "model", ["grok-2-vision", "grok-3-mini", "grok-4-1-fast", "grok-4-1-fast-non-reasoning"]
)
async def test_retired_models_say_so_with_the_current_list(stand_in: Upstream, model: str) -> None:
    result = await call(stand_in, {"messages": HELLO, "model": model})
    assert result.is_error
    text = text_of(result)
    assert text.startswith("Model not available (HTTP 400, bad_request): The model")
    assert f"{model} was retired upstream on 2026-07-27. Use one of: grok-4, grok-4.5, grok-3" in text
    assert "trace_id: trace-local-1" in text


async def test_name_on_a_system_message_is_not_sent(stand_in: Upstream) -> None:
    messages = [
        {"role": "system", "content": "be brief", "name": "rules"},
        {"role": "user", "content": "hi", "name": "a"},
    ]
    result = await call(stand_in, {"messages": messages})
    assert not result.is_error, text_of(result)
    assert stand_in.requests[-1].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "a"},
    ]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("used-up-token", "Insufficient balance (HTTP 403, used_up): Your balance is used up"),
        ("disabled-token", "Access disabled (HTTP 403, disabled)"),
        ("expired-token", "Authentication failed (HTTP 401, token_expired)"),
        ("bad-token", "Authentication failed (HTTP 401, invalid_token)"),
        ("other-service-token", "Authentication failed (HTTP 400, token_mismatched)"),
    ],
)
async def test_account_errors_by_code(stand_in: Upstream, token: str, expected: str) -> None:
    result = await call(stand_in, {"messages": HELLO}, token=token)
    assert result.is_error
    assert text_of(result).startswith(expected)
    assert token not in text_of(result)


async def test_acedatacloud_stream_is_assembled(stand_in: Upstream) -> None:
    result = await call(stand_in, {"messages": HELLO, "stream": True, "user": "scenario:sse5"})
    assert not result.is_error, text_of(result)
    completion = result.structured_content["result"]
    assert completion["id"] == "foaicmpl-local"
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "input_tokens": 5,
        "output_tokens": 7,
    }
