"""Cancellation, concurrency and large bodies, against the stand-in upstream on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, params
from tests.upstream import Upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
async def local(stand_in: Upstream) -> AsyncIterator[Client]:
    """The in-memory client, with the server's real HTTP client pointed at the stand-in."""
    settings = Settings(api_token="tok-local-1", base_url=stand_in.url("ok"), max_retries=0)
    async with Client(build_server(settings)) as client:
        yield client


async def wait_for_disconnect(stand_in: Upstream, limit: float = 3.0) -> float:
    for _ in range(int(limit / 0.01)):  # polled: the stand-in records from its own threads
        if stand_in.disconnects:
            break
        await anyio.sleep(0.01)
    assert stand_in.disconnects, "the upstream connection was never closed"
    return stand_in.disconnects[0]


@pytest.mark.parametrize("scenario", ["hang", "long50"])
async def test_cancel_closes_the_upstream_connection_in_memory(
    local: Client, stand_in: Upstream, scenario: str
) -> None:
    arguments = {"messages": HELLO, "user": f"scenario:{scenario}", "stream": scenario != "hang"}
    with anyio.move_on_after(0.5):
        await local.call_tool(TOOL_NAME, arguments)
    cancelled = time.monotonic()
    assert await wait_for_disconnect(stand_in) - cancelled < 1.0
    assert len(stand_in.requests) == 1  # not retried
    assert not (await local.call_tool(TOOL_NAME, {"messages": HELLO})).is_error


async def test_cancel_over_stdio_closes_the_upstream_connection(stand_in: Upstream, tmp_path: Path) -> None:
    async with Client(params(stand_in.url("long50"), tmp_path)) as client:
        with anyio.move_on_after(0.6):
            await client.call_tool(TOOL_NAME, {"messages": HELLO, "stream": True})
        cancelled = time.monotonic()
        assert await wait_for_disconnect(stand_in) - cancelled < 1.0
        healthy = await client.call_tool(TOOL_NAME, {"messages": HELLO, "user": "scenario:ok"})
    assert not healthy.is_error
    assert len(stand_in.requests) == 2


async def test_forty_concurrent_slow_calls(local: Client, stand_in: Upstream) -> None:
    results: list[bool] = []

    async def one() -> None:
        result = await local.call_tool(TOOL_NAME, {"messages": HELLO, "user": "scenario:slow300"})
        results.append(result.is_error)

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(40):
            group.start_soon(one)
    elapsed = time.monotonic() - started
    assert results == [False] * 40
    assert elapsed < 1.0, f"40 x 300 ms took {elapsed:.2f}s: calls are blocking each other"


async def test_large_completion_passes_through(local: Client) -> None:
    result = await local.call_tool(TOOL_NAME, {"messages": HELLO, "user": "scenario:big2048"})
    assert not result.is_error
    content = result.structured_content["result"]["choices"][0]["message"]["content"]
    assert len(content) == 2 * 1024 * 1024


async def test_first_progress_arrives_right_after_the_first_chunk(local: Client, stand_in: Upstream) -> None:
    arrivals: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        arrivals.append(time.monotonic())

    arguments = {"messages": HELLO, "user": "scenario:sse200", "stream": True}
    await local.call_tool(TOOL_NAME, arguments, progress_callback=on_progress)
    assert arrivals
    assert arrivals[0] - stand_in.first_chunk_sent[0] < 0.1


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
