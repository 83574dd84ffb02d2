"""The server against a stand-in that answers like the real API (standin/README.md has the facts)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from standin.upstream import Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, TOKEN, text_of

pytestmark = pytest.mark.anyio


async def call(stand_in: Upstream, arguments: dict[str, Any], token: str = "tok-local-real") -> Any:
    settings = Settings(api_token=token, base_url=stand_in.url("ok"), max_retries=0)
    async with Client(build_server(settings)) as client:
        return await client.call_tool(TOOL_NAME, arguments)


@pytest.mark.parametrize("model", ["grok-4.7", "grok-4.5", "grok-4", "grok-3"])
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
    dropped = [note for note in result.structured_content["notes"] if "not sent" in note]
    assert len(dropped) == 3
    assert stand_in.requests[-1].body == {"model": model, "messages": HELLO}


async def test_the_same_arguments_sent_verbatim_get_the_real_400(stand_in: Upstream) -> None:
    arguments = {"messages": HELLO, "model": "grok-4-0709-unknown", "presence_penalty": 1}
    result = await call(stand_in, arguments)  # a model the table does not know: sent as given
    assert result.is_error
    assert "Model not available (HTTP 400, bad_request)" in text_of(result)
    assert "Upstream does not serve grok-4-0709-unknown" in text_of(result)


@pytest.mark.parametrize(
    ("model", "effort"),
    [
        ("grok-4.7", "low"),
        ("grok-4.7", "xhigh"),
        ("grok-4.5", "medium"),
        ("grok-4", "none"),
        ("grok-3", "high"),
    ],
)
async def test_reasoning_effort_is_sent_where_the_model_takes_it(
    stand_in: Upstream, model: str, effort: str
) -> None:
    result = await call(stand_in, {"messages": HELLO, "model": model, "reasoning_effort": effort})
    assert not result.is_error, text_of(result)
    assert not any("not sent" in note for note in result.structured_content["notes"])
    assert f"reasoning_effort {effort}; " in result.structured_content["notes"][-1]  # the receipt
    assert stand_in.requests[-1].body["reasoning_effort"] == effort


async def test_xhigh_on_grok_4_5_is_sent_with_a_note_that_it_means_high(stand_in: Upstream) -> None:
    result = await call(stand_in, {"messages": HELLO, "model": "grok-4.5", "reasoning_effort": "xhigh"})
    assert not result.is_error, text_of(result)
    assert "reasoning_effort 'xhigh': grok-4.5 treats it as 'high'." in result.structured_content["notes"]
    assert stand_in.requests[-1].body["reasoning_effort"] == "xhigh"
    result = await call(stand_in, {"messages": HELLO, "model": "grok-4.5", "reasoning_effort": "none"})
    assert (
        "reasoning_effort 'none' not sent: grok-4.5 takes low, medium, high."
        in (result.structured_content["notes"])
    )
    assert "reasoning_effort" not in stand_in.requests[-1].body


async def test_the_redirect_answers_with_grok_4_3(stand_in: Upstream) -> None:
    result = await call(stand_in, {"messages": HELLO})
    assert not result.is_error, text_of(result)
    completion = result.structured_content["result"]
    assert stand_in.requests[-1].body["model"] == "grok-4"
    assert completion["model"] == "grok-4.3"
    assert completion["usage"]["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert completion["usage"]["cost_in_usd_ticks"] == 37756000


async def test_an_argument_upstream_rejects_is_dropped_once_and_remembered(stand_in: Upstream) -> None:
    # The table is unsure about effort on grok-4, so xhigh is sent; grok-4.3 answers with the old wording
    # ("Argument not supported on this model: reasoningEffort"); the call is sent once more without it.
    settings = Settings(api_token=TOKEN, base_url=stand_in.url("ok"), max_retries=0)
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO, "reasoning_effort": "xhigh"})
        assert not result.is_error, text_of(result)
        first, second = stand_in.requests
        assert first.body["reasoning_effort"] == "xhigh" and "reasoning_effort" not in second.body
        assert (
            "reasoning_effort was not sent: upstream says grok-4 does not support it (remembered)."
            in result.structured_content["notes"]
        )
        # Remembered for the process's life: the next call does not pay the round trip again.
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO, "reasoning_effort": "low"})
        assert not result.is_error, text_of(result)
        assert len(stand_in.requests) == 3 and "reasoning_effort" not in stand_in.requests[-1].body
        assert any("reasoning_effort" in note for note in result.structured_content["notes"])


async def test_only_unsupported_arguments_are_retried(stand_in: Upstream) -> None:
    result = await call(stand_in, {"messages": HELLO, "model": "grok-4-0709-unknown"})
    assert result.is_error and len(stand_in.requests) == 1  # any other 400: no retry


async def test_the_stand_in_can_reject_what_the_table_believes_accepted(stand_in: Upstream) -> None:
    stand_in.rejects["grok-4.7"] = {"reasoning_effort"}
    result = await call(stand_in, {"messages": HELLO, "model": "grok-4.7", "reasoning_effort": "low"})
    assert stand_in.requests[0].body["reasoning_effort"] == "low"  # the table believed it accepted
    assert not result.is_error, text_of(
        result
    )  # "Model grok-4.7 does not support parameter reasoningEffort."
    assert len(stand_in.requests) == 2 and "reasoning_effort" not in stand_in.requests[-1].body
    assert any("reasoning_effort was not sent" in note for note in result.structured_content["notes"])


@pytest.mark.parametrize(
    "model",
    ["grok-2-vision", "grok-3-mini", "grok-4-1-fast", "grok-4-1-fast-non-reasoning", "grok-3-mini-latest"],
)
async def test_retired_models_are_refused_locally_with_the_current_list(
    stand_in: Upstream, model: str
) -> None:
    result = await call(stand_in, {"messages": HELLO, "model": model})
    assert result.is_error
    assert text_of(result) == (
        f"Invalid arguments:\nmodel: {model} was retired on AceDataCloud on 2026-07-27. "
        "Use one of: grok-4.7, grok-4.5, grok-4, grok-3 (grok-4 is the default)."
    )
    assert stand_in.requests == []  # no request reached upstream


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
    assert completion["model"] == "grok-4.3"  # grok-4 is answered by grok-4.3
    assert completion["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "completion_tokens_details": {"reasoning_tokens": 20},
        "cost_in_usd_ticks": 37756000,
        "input_tokens": 5,
        "output_tokens": 7,
    }
