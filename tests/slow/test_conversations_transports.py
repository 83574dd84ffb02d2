"""Conversations over the real console script: stdio, and HTTP replicas sharing one Redis (issue 19)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from standin.upstream import Upstream

from tests.conftest import HELLO, answer, params, text_of
from tests.slow.test_http import mcp_client, start_cli

pytestmark = pytest.mark.anyio
NAME = "grok_chat_completions"
FOLLOW_UP = [{"role": "user", "content": "and then?"}]


async def collect(client: Client, conversation_id: str) -> Any:
    """Call with only the conversation id until the answer is there (each call waits up to the limit)."""
    for _ in range(50):
        result = await client.call_tool(NAME, {"conversation_id": conversation_id})
        if result.is_error or result.structured_content.get("status") != "running":
            return result
    raise AssertionError("never collected")


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_conversation_over_stdio(stand_in: Upstream, tmp_path: Path, store: str) -> None:
    url = "memory" if store == "memory" else f"sqlite:///{tmp_path / 'conversations.db'}"
    launch = params(stand_in.url("ok"), tmp_path, GROK_STORE=url, GROK_RETURN_AFTER="0.3")
    async with Client(launch) as client:
        first = await client.call_tool(NAME, {"messages": HELLO})
        conversation_id = first.structured_content["conversation_id"]
        result = await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": FOLLOW_UP})
        assert answer(result)["result"]["choices"][0]["message"]["content"] == "pong"
        slow = [{"role": "user", "content": "think hard"}]
        result = await client.call_tool(
            NAME, {"conversation_id": conversation_id, "messages": slow, "user": "scenario:slow1200"}
        )
        assert result.structured_content["status"] == "running", text_of(result)
        assert not (await collect(client, conversation_id)).is_error
    assert stand_in.requests[1].body["messages"] == [
        *HELLO,
        {"role": "assistant", "content": "pong"},
        *FOLLOW_UP,
    ]
    assert len(stand_in.requests) == 3  # the long call reached upstream once
    if store == "sqlite":  # a restarted server still knows the conversation
        async with Client(launch) as client:
            result = await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": FOLLOW_UP})
            assert not result.is_error, text_of(result)
        assert len(stand_in.requests[-1].body["messages"]) == 7  # three turns and the new message


@contextmanager
def replica(stand_in: Upstream, tmp_path: Path, redis_url: str) -> Iterator[int]:
    """One HTTP server process on the shared Redis; its port."""
    process, port = start_cli(stand_in, tmp_path, GROK_STORE=redis_url, GROK_RETURN_AFTER="0.3")
    try:
        yield port
    finally:
        process.terminate()
        process.communicate(timeout=10)


async def test_http_replicas_sharing_redis_collect_each_others_answers(
    stand_in: Upstream, tmp_path: Path, redis_url: str
) -> None:
    with replica(stand_in, tmp_path, redis_url) as first, replica(stand_in, tmp_path, redis_url) as second:
        async with mcp_client(f"http://127.0.0.1:{first}", "alice-token-0001") as client:
            result = await client.call_tool(NAME, {"messages": HELLO, "user": "scenario:slow1200"})
            assert result.structured_content["status"] == "running", text_of(result)
            conversation_id = result.structured_content["conversation_id"]
        async with mcp_client(f"http://127.0.0.1:{second}", "alice-token-0001") as client:
            collected = await collect(client, conversation_id)
            assert answer(collected)["result"]["choices"][0]["message"]["content"] == "pong"
            result = await client.call_tool(NAME, {"conversation_id": conversation_id, "messages": FOLLOW_UP})
            assert not result.is_error, text_of(result)
        async with mcp_client(f"http://127.0.0.1:{first}", "mallory-token-02") as client:
            refused = await client.call_tool(NAME, {"conversation_id": conversation_id})
            assert refused.is_error and "unknown or expired conversation_id" in text_of(refused)
    assert len(stand_in.requests) == 2  # the long call once, then the follow-up
    assert stand_in.requests[1].body["messages"][:2] == [*HELLO, {"role": "assistant", "content": "pong"}]


def test_check_shows_the_store_without_its_password(tmp_path: Path) -> None:
    from tests.conftest import SCRIPT, server_env

    env = server_env("https://api.acedata.cloud", GROK_STORE="redis://user:s3cret-pass@127.0.0.1:6379/0")
    done = subprocess.run(
        [SCRIPT, "--check"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert "s3cret-pass" not in done.stdout
    assert "redis://user:***@127.0.0.1:6379/0  (environment)" in done.stdout
