"""Hostile inputs in process (issue 21): the bytes held by requests in flight are capped."""

from __future__ import annotations

import anyio
import httpx
import pytest
import respx
from mcp import Client

from grok_chat_mcp.tool import NAME as TOOL_NAME
from grok_chat_mcp.upstream import client as upstream_client
from tests.conftest import URL, completion, text_of

pytestmark = pytest.mark.anyio


def message_of(size: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "x" * size}]


async def test_bytes_held_by_calls_in_flight_are_capped(
    mcp: Client, upstream: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget of 10,000 bytes, a call of 6,000 in flight leaves no room for a second one:
    that fails at once (never sent) and says why; once the first is answered, room is back."""
    monkeypatch.setattr(upstream_client, "MAX_BYTES_IN_FLIGHT", 10_000)
    release = anyio.Event()
    arrived = anyio.Event()

    sent: list[int] = []

    async def held(request: httpx.Request) -> httpx.Response:
        sent.append(len(request.content))
        if len(request.content) > 5_000:
            arrived.set()
            await release.wait()
        return httpx.Response(200, json=completion())

    upstream.post(URL).mock(side_effect=held)
    outcomes: list[bool] = []

    async def first() -> None:
        outcomes.append((await mcp.call_tool(TOOL_NAME, {"messages": message_of(6_000)})).is_error)

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        with anyio.fail_after(10):  # a guard against hanging
            await arrived.wait()
        assert upstream_client.bytes_in_flight() > 6_000
        refused = await mcp.call_tool(TOOL_NAME, {"messages": message_of(6_000)})
        assert refused.is_error
        assert "Server busy" in text_of(refused) and "Try again in a moment" in text_of(refused)
        assert len(sent) == 1  # the refused call was never sent
        small = await mcp.call_tool(TOOL_NAME, {"messages": message_of(100)})  # fits beside it
        assert not small.is_error
        release.set()
    assert outcomes == [False]
    assert upstream_client.bytes_in_flight() == 0
    again = await mcp.call_tool(TOOL_NAME, {"messages": message_of(6_000)})
    assert not again.is_error


async def test_a_call_larger_than_the_whole_budget_is_refused(
    mcp: Client, upstream: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_client, "MAX_BYTES_IN_FLIGHT", 1_000)
    route = upstream.post(URL).respond(200, json=completion())
    result = await mcp.call_tool(TOOL_NAME, {"messages": message_of(2_000)})
    assert result.is_error and "at most 0.0 MiB at once" in text_of(result)
    assert route.call_count == 0
    assert upstream_client.bytes_in_flight() == 0
