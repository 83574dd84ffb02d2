"""Conversations and long calls through the MCP client, on every store (issue 19).

Follow-ups send only the new message; a call past the soft limit returns ``running`` and is
collected later with upstream called once; answers survive restarts (SQLite) and are shared
between servers (Redis); a conversation belongs to the token that started it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from standin.upstream import Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.store import Limits
from grok_chat_mcp.tool import NAME, CallPolicy
from tests.conftest import HELLO, TOKEN, answer, text_of

pytestmark = pytest.mark.anyio


def settings_for(stand_in: Upstream, store: str, **changes: Any) -> Settings:
    return replace(
        Settings(api_token=TOKEN, base_url=stand_in.url("ok"), max_retries=0, store=store), **changes
    )


class Caller:
    """Who is calling, as the HTTP transport would tell from the request's bearer token."""

    def __init__(self) -> None:
        self.token: str | None = None

    def __call__(self, _: object) -> str | None:
        return self.token


@asynccontextmanager
async def connected(
    settings: Settings, caller: Callable[[Any], str | None] | None = None
) -> AsyncIterator[Client]:
    policy = CallPolicy(token=caller) if caller is not None else CallPolicy()
    async with Client(build_server(settings, policy=policy)) as client:
        yield client


async def test_a_follow_up_sends_only_the_new_message(stand_in: Upstream, store: str) -> None:
    async with connected(settings_for(stand_in, store)) as client:
        first = answer(await client.call_tool(NAME, {"messages": HELLO}))
        conversation_id = (await client.call_tool(NAME, {"messages": HELLO})).structured_content[
            "conversation_id"
        ]
        follow_up = [{"role": "user", "content": "and then?"}]
        result = await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": follow_up})
        assert result.structured_content["conversation_id"] == conversation_id
        assert answer(result)["result"] == first["result"]
    sent = stand_in.requests[-1].body["messages"]
    assert sent == [*HELLO, {"role": "assistant", "content": "pong"}, *follow_up]


async def test_tool_calls_are_kept_in_the_history(stand_in: Upstream, store: str) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    async with connected(settings_for(stand_in, store)) as client:
        result = await client.call_tool(
            NAME, {"messages": HELLO, "tools": tools, "user": "scenario:tool-call"}
        )
        reply = answer(result)["result"]["choices"][0]["message"]
        assert reply["tool_calls"], reply
        follow = [{"role": "tool", "tool_call_id": reply["tool_calls"][0]["id"], "content": "sunny"}]
        conversation_id = result.structured_content["conversation_id"]
        await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": follow, "tools": tools})
    history = stand_in.requests[-1].body["messages"]
    assert history[1]["role"] == "assistant" and history[1]["tool_calls"] == reply["tool_calls"]
    assert history[2] == follow[0]


async def test_a_long_call_returns_running_and_is_collected(stand_in: Upstream, store: str) -> None:
    settings = settings_for(stand_in, store, return_after=0.2)
    async with connected(settings) as client:
        result = await client.call_tool(NAME, {"messages": HELLO, "user": "scenario:slow1500"})
        assert not result.is_error, text_of(result)
        running = result.structured_content
        assert running["status"] == "running" and running["conversation_id"].startswith("conv_")
        assert "call grok_chat_completions again with only" in text_of(result).lower()
        collect = {"conversation_id": running["conversation_id"]}
        for _ in range(50):  # each collecting call waits up to the soft limit
            result = await client.call_tool(NAME, collect)
            if result.structured_content.get("status") != "running":
                break
        assert answer(result)["result"]["choices"][0]["message"]["content"] == "pong"
        again = await client.call_tool(NAME, collect)  # an answer lost to a client timeout: fetched again
        assert answer(again) == answer(result)
    assert len(stand_in.requests) == 1  # upstream was called once


async def test_a_stream_past_the_soft_limit_says_how_much_arrived(stand_in: Upstream) -> None:
    settings = settings_for(stand_in, "memory", return_after=0.3)
    async with connected(settings) as client:
        result = await client.call_tool(NAME, {"messages": HELLO, "stream": True, "user": "scenario:long100"})
        assert result.structured_content["status"] == "running"
        assert result.structured_content["seconds"] >= 0
        assert result.structured_content["chars_received"] >= 0


async def test_unknown_ids_tell_the_agent_to_resend_the_history(stand_in: Upstream, store: str) -> None:
    async with connected(settings_for(stand_in, store)) as client:
        for arguments in (
            {"conversation_id": "conv_nope"},
            {"conversation_id": "conv_nope", "messages": HELLO},
        ):
            result = await client.call_tool(NAME, arguments)
            assert result.is_error
            assert "unknown or expired conversation_id" in text_of(result)
            assert "full history" in text_of(result)
    assert not stand_in.requests


async def test_another_token_cannot_see_a_conversation(stand_in: Upstream, store: str) -> None:
    caller = Caller()
    async with connected(settings_for(stand_in, store), caller) as client:
        caller.token = "alice-token-000001"
        conversation_id = (await client.call_tool(NAME, {"messages": HELLO})).structured_content[
            "conversation_id"
        ]
        caller.token = "mallory-token-0002"
        for arguments in (
            {"conversation_id": conversation_id},
            {"conversation_id": conversation_id, "messages": HELLO},
        ):
            result = await client.call_tool(NAME, arguments)
            assert result.is_error and "unknown or expired conversation_id" in text_of(result)
        caller.token = "alice-token-000001"
        assert not (await client.call_tool(NAME, {"conversation_id": conversation_id})).is_error
    assert len(stand_in.requests) == 1


async def test_sqlite_keeps_conversations_across_restarts(stand_in: Upstream, tmp_path: Path) -> None:
    settings = settings_for(stand_in, f"sqlite:///{tmp_path / 'state' / 'conversations.db'}")
    async with connected(settings) as client:
        conversation_id = (await client.call_tool(NAME, {"messages": HELLO})).structured_content[
            "conversation_id"
        ]
    assert (tmp_path / "state" / "conversations.db").stat().st_mode & 0o777 == 0o600
    async with connected(settings) as client:  # a new server process, as after a restart
        follow_up = [{"role": "user", "content": "still there?"}]
        result = await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": follow_up})
        assert not result.is_error, text_of(result)
    assert stand_in.requests[-1].body["messages"] == [
        *HELLO,
        {"role": "assistant", "content": "pong"},
        *follow_up,
    ]


async def test_a_conversation_past_its_size_limit_is_refused(
    stand_in: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("grok_chat_mcp.server.store_limits", lambda: Limits(max_conversation_bytes=3000))
    async with connected(settings_for(stand_in, "memory")) as client:
        big = [{"role": "user", "content": "x" * 1500}]
        conversation_id = (await client.call_tool(NAME, {"messages": big})).structured_content[
            "conversation_id"
        ]
        result = await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": big})
        assert result.is_error
        assert "start a new" in text_of(result).lower() or "limit" in text_of(result).lower()
    assert len(stand_in.requests) == 1


async def test_a_failed_call_keeps_the_history_and_is_reported_to_collectors(stand_in: Upstream) -> None:
    async with connected(settings_for(stand_in, "memory")) as client:
        conversation_id = (await client.call_tool(NAME, {"messages": HELLO})).structured_content[
            "conversation_id"
        ]
        bad = [{"role": "user", "content": "fail"}]
        result = await client.call_tool(
            NAME, {"conversation_id": conversation_id, "messages": bad, "user": "scenario:status500"}
        )
        assert result.is_error
        collected = await client.call_tool(NAME, {"conversation_id": conversation_id})
        assert collected.is_error and text_of(collected) == text_of(result)
        await client.call_tool(
            NAME, {"conversation_id": conversation_id, "messages": [{"role": "user", "content": "ok"}]}
        )
    assert [m["content"] for m in stand_in.requests[-1].body["messages"]] == ["hi", "pong", "ok"]


async def test_store_off_keeps_the_server_stateless(stand_in: Upstream) -> None:
    async with connected(settings_for(stand_in, "off", return_after=0.1)) as client:
        result = await client.call_tool(NAME, {"messages": HELLO, "user": "scenario:slow400"})
        assert not result.is_error and "conversation_id" not in result.structured_content  # no early return
        result = await client.call_tool(NAME, {"conversation_id": "conv_x"})
        assert result.is_error and "GROK_STORE=off" in text_of(result)
