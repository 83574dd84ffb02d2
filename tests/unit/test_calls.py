"""``Calls``: a job's result, the early return, cancellation by the caller or by id, shutdown,
draining, and the lease a running call renews."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
from mcp_types import CallToolResult, TextContent

from grok_chat_mcp.calls import Call, Calls, Chars
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.store import Limits, owner_of
from grok_chat_mcp.store.memory import MemoryStore

pytestmark = pytest.mark.anyio
DONE = CallToolResult(content=[TextContent(type="text", text="done")])
CALL = Call(owner_of("sk-a"), None, Secrets(), conversation_id="conv_abcdefgh")


def text(result: CallToolResult) -> str:
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


@asynccontextmanager
async def running_calls(store: MemoryStore | None, limits: Limits | None = None) -> AsyncIterator[Calls]:
    """``Calls`` in a task group of their own, as the server's lifespan owns them."""
    async with anyio.create_task_group() as group:
        yield Calls(store, group, limits=limits or Limits(), return_after=10, call_timeout=60)
        group.cancel_scope.cancel()


async def test_a_quick_job_returns_its_result_and_a_failure_is_a_redacted_tool_error() -> None:
    async with running_calls(MemoryStore()) as calls:

        async def job() -> CallToolResult:
            await anyio.lowlevel.checkpoint()
            return DONE

        assert await calls.start(job, CALL, 10) is DONE
        failing = GrokError("Upstream failed", "HTTP 500 with sk-secret-token-1", "Try again.")

        async def fails() -> CallToolResult:
            raise failing

        secret = Call(CALL.owner, None, Secrets(["sk-secret-token-1"]), conversation_id="conv_abcdefgh")
        result = await calls.start(fails, secret, 10)
        assert result is not None and result.is_error
        assert "HTTP 500" in text(result) and "sk-secret" not in text(result)


async def test_a_bug_in_a_job_is_an_internal_error_not_a_crash() -> None:
    async with running_calls(MemoryStore()) as calls:

        async def broken() -> CallToolResult:
            raise KeyError("oops")

        result = await calls.start(broken, CALL, 10)
        assert result is not None and result.is_error and text(result).startswith("Internal error")


async def test_a_job_past_the_wait_goes_on_after_the_call_returns() -> None:
    async with running_calls(MemoryStore()) as calls:
        finished = anyio.Event()

        async def job() -> CallToolResult:
            await anyio.sleep(0.2)
            finished.set()
            return DONE

        assert await calls.start(job, CALL, 0.05) is None
        assert not finished.is_set()
        with anyio.fail_after(5):
            await calls.drained()
        assert finished.is_set()


async def test_without_a_store_or_a_conversation_the_call_waits_for_its_job() -> None:
    for store, call in ((None, CALL), (MemoryStore(), Call(CALL.owner, None, Secrets()))):
        async with running_calls(store) as calls:

            async def job() -> CallToolResult:
                await anyio.sleep(0.1)
                return DONE

            assert await calls.start(job, call, 0.01) is DONE


async def test_cancelling_the_tool_call_cancels_its_job() -> None:
    async with running_calls(MemoryStore()) as calls:
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
                group.start_soon(calls.start, job, CALL, 10)
                await started.wait()
                group.cancel_scope.cancel()
            with anyio.fail_after(2):
                await cancelled.wait()
        assert not scope.cancelled_caught


async def test_a_call_is_cancelled_by_its_conversation_id_and_only_that_one() -> None:
    async with running_calls(MemoryStore()) as calls:
        cancelled = anyio.Event()

        async def job() -> CallToolResult:
            try:
                await anyio.sleep(30)
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise
            return DONE

        assert await calls.start(job, CALL, 0) is None
        assert not calls.cancel_here("conv_someoneelse")
        assert calls.cancel_here("conv_abcdefgh")
        with anyio.fail_after(2):
            await cancelled.wait()
            await calls.drained()


async def test_shutdown_cancels_running_jobs_and_waits_for_them_to_record_it() -> None:
    recorded, started, stop = anyio.Event(), anyio.Event(), anyio.Event()
    results: list[CallToolResult | None] = []
    ready: list[Calls] = []

    async def lifespan() -> None:  # holds the jobs' task group, as the server's lifespan does
        async with anyio.create_task_group() as jobs:
            ready.append(Calls(MemoryStore(), jobs, limits=Limits(), return_after=10, call_timeout=60))
            await stop.wait()
            jobs.cancel_scope.cancel()

    async def job() -> CallToolResult:
        started.set()
        try:
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)  # as a store records the cancellation
                recorded.set()
        return DONE

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(lifespan)
            while not ready:
                await anyio.lowlevel.checkpoint()

            async def call() -> None:
                results.append(await ready[0].start(job, CALL, 10))

            group.start_soon(call)
            await started.wait()
            stop.set()
    assert recorded.is_set()
    assert results and results[0] is not None and "shutting down" in text(results[0])


async def test_a_running_call_renews_its_lease_with_the_characters_received() -> None:
    now = [1000.0]
    store = MemoryStore(Limits(lease=0.08), clock=lambda: now[0])
    conversation_id, _ = await store.begin(CALL.owner, None, [{"role": "user", "content": "q"}])
    async with running_calls(store, Limits(lease=0.08)) as calls, anyio.create_task_group() as renewer:
        renewer.start_soon(calls.renew_leases)
        chars = Chars()
        with calls.leased(conversation_id, chars):
            chars.count = 42
            now[0] += 0.05  # past the first renewal time: the lease now ends later than it began
            await anyio.sleep(0.1)  # real time for the renewer to run
            now[0] += 0.07  # past the first lease's end, within the renewed one
            conversation = await store.get(CALL.owner, conversation_id)
        renewer.cancel_scope.cancel()
    assert conversation.running and conversation.chars == 42
    assert not calls._leases  # the call left: nothing more to renew
    now[0] += 1  # nothing renews it any more: the call reads as abandoned
    assert not (await store.get(CALL.owner, conversation_id)).running
