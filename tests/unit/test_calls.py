"""``Calls.start``: a job's result, the early ``running`` return, cancellation and shutdown."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from mcp_types import CallToolResult, TextContent

from grok_chat_mcp.calls import Calls
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.store.memory import MemoryStore

pytestmark = pytest.mark.anyio
DONE = CallToolResult(content=[TextContent(type="text", text="done")])


def text(result: CallToolResult) -> str:
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


async def test_a_quick_job_returns_its_result() -> None:
    calls = Calls(MemoryStore(), return_after=10, call_timeout=60)

    async def job() -> CallToolResult:
        await anyio.lowlevel.checkpoint()
        return DONE

    assert await calls.start(job, "conv_abcdefgh", None, Secrets()) is DONE
    failing = GrokError("Upstream failed", "HTTP 500 with sk-secret-token-1", "Try again.")

    async def fails() -> CallToolResult:
        raise failing

    result = await calls.start(fails, "conv_abcdefgh", None, Secrets(["sk-secret-token-1"]))
    assert result.is_error and "HTTP 500" in text(result) and "sk-secret" not in text(result)
    await calls.aclose()


async def test_a_job_past_the_soft_limit_goes_on_after_running_is_returned() -> None:
    calls = Calls(MemoryStore(), return_after=0.05, call_timeout=60)
    finished = anyio.Event()

    async def job() -> CallToolResult:
        await anyio.sleep(0.2)
        finished.set()
        return DONE

    result = await calls.start(job, "conv_abcdefgh", None, Secrets())
    assert result.structured_content is not None and result.structured_content["status"] == "running"
    assert not finished.is_set()
    with anyio.fail_after(5):
        await finished.wait()
    await calls.aclose()


async def test_without_a_store_the_call_waits_for_its_job() -> None:
    calls = Calls(None, return_after=0.01, call_timeout=60)

    async def job() -> CallToolResult:
        await anyio.sleep(0.1)
        return DONE

    assert await calls.start(job, None, None, Secrets()) is DONE


async def test_cancelling_the_tool_call_cancels_its_job() -> None:
    calls = Calls(MemoryStore(), return_after=10, call_timeout=60)
    started, cancelled = anyio.Event(), anyio.Event()

    async def job() -> CallToolResult:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return DONE

    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(calls.start, job, "conv_abcdefgh", None, Secrets())
            await started.wait()
            group.cancel_scope.cancel()
        with anyio.fail_after(2):
            await cancelled.wait()
    assert not scope.cancelled_caught


async def test_shutdown_cancels_running_jobs_and_waits_for_them() -> None:
    calls = Calls(MemoryStore(), return_after=10, call_timeout=60)
    started, recorded = anyio.Event(), anyio.Event()
    results: list[CallToolResult] = []

    async def job() -> CallToolResult:
        started.set()
        try:
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)  # as a store records the cancellation
                recorded.set()
        return DONE

    async def call() -> None:
        results.append(await calls.start(job, "conv_abcdefgh", None, Secrets()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await started.wait()
            await calls.aclose()
            assert recorded.is_set()
    assert results and results[0].is_error and "shutting down" in text(results[0])

    async def late() -> CallToolResult:
        await anyio.sleep(30)
        return DONE

    with anyio.fail_after(5):  # a call that starts after shutdown is cut off at once
        assert "shutting down" in text(await calls.start(late, "conv_abcdefgh", None, Secrets()))
