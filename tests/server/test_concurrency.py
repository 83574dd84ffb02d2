"""Cancellation, concurrency and large bodies, against the stand-in upstream on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from mcp import Client
from standin.upstream import Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, wait_for_disconnect

pytestmark = pytest.mark.anyio


@pytest.fixture
async def local(stand_in: Upstream) -> AsyncIterator[Client]:
    """The in-memory client, with the server's real HTTP client pointed at the stand-in."""
    settings = Settings(api_token="tok-local-1", base_url=stand_in.url("ok"), max_retries=0)
    async with Client(build_server(settings)) as client:
        yield client


@pytest.mark.parametrize("scenario", ["hang", "long50"])
async def test_cancel_closes_the_upstream_connection_in_memory(
    local: Client, stand_in: Upstream, scenario: str
) -> None:
    arguments = {"messages": HELLO, "user": f"scenario:{scenario}", "stream": scenario != "hang"}
    with anyio.move_on_after(0.5):
        await local.call_tool(TOOL_NAME, arguments)
    await wait_for_disconnect(stand_in)
    assert len(stand_in.requests) == 1  # not retried
    assert not (await local.call_tool(TOOL_NAME, {"messages": HELLO})).is_error


async def test_forty_concurrent_slow_calls(local: Client, stand_in: Upstream) -> None:
    results: list[bool] = []
    reached_upstream: list[int] = []

    async def one() -> None:
        result = await local.call_tool(TOOL_NAME, {"messages": HELLO, "user": "scenario:slow300"})
        reached_upstream.append(len(stand_in.requests))
        results.append(result.is_error)

    async with anyio.create_task_group() as group:
        for _ in range(40):
            group.start_soon(one)
    assert results == [False] * 40
    assert min(reached_upstream) == 40  # every call was upstream before the first answer: none waited


async def test_large_completion_passes_through(local: Client) -> None:
    result = await local.call_tool(TOOL_NAME, {"messages": HELLO, "user": "scenario:big2048"})
    assert not result.is_error
    content = result.structured_content["result"]["choices"][0]["message"]["content"]
    assert len(content) == 2 * 1024 * 1024


async def test_first_progress_arrives_right_after_the_first_chunk(local: Client, stand_in: Upstream) -> None:
    messages: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)

    arguments = {"messages": HELLO, "user": "scenario:sse200", "stream": True}
    await local.call_tool(TOOL_NAME, arguments, progress_callback=on_progress)
    assert messages[0] == "grok-4: 5 chars received ... Hello"  # relayed before the next chunk (200 ms)


async def test_three_hundred_concurrent_calls_all_answered(local: Client, stand_in: Upstream) -> None:
    answered: list[str] = []

    async def one(index: int) -> None:
        messages = [{"role": "user", "content": f"call {index}"}]
        result = await local.call_tool(TOOL_NAME, {"messages": messages, "user": "scenario:slow100"})
        assert not result.is_error
        answered.append(result.structured_content["result"]["choices"][0]["message"]["content"])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for index in range(300):
                group.start_soon(one, index)
    assert len(answered) == 300
    assert len(stand_in.requests) == 300  # no call was dropped or sent twice
    assert sorted(r.body["messages"][0]["content"] for r in stand_in.requests) == sorted(
        f"call {index}" for index in range(300)
    )
