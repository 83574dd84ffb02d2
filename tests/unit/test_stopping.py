"""How long a stopping HTTP server waits for the calls still running: the rest of the shutdown
grace, shared with the requests in flight, and not at all after a second signal."""

from __future__ import annotations

import anyio
import pytest
from mcp_types import CallToolResult

from grok_chat_mcp import server
from grok_chat_mcp.store.memory import MemoryStore
from grok_chat_mcp.transports.admission import Admission, Limits
from tests.unit.test_calls import CALL, DONE, running_calls
from tests.unit.test_progress import Clock

pytestmark = pytest.mark.anyio


async def nothing(scope: object, receive: object, send: object) -> None:
    raise AssertionError("no request is served in these tests")


async def test_running_calls_get_the_rest_of_the_grace_then_none_after_a_second_signal() -> None:
    clock = Clock()
    front = Admission(nothing, Limits(grace=25), clock)
    assert front.time_left() == 0  # not stopping: a stop without a signal waits for nothing
    await front.drain()  # nothing in flight: returns at once
    assert front.time_left() == 25
    clock.now += 10  # the requests in flight took some of it
    assert front.time_left() == 15
    front.stop_all()  # a second signal
    assert front.time_left() == 0


async def test_the_wait_ends_when_the_calls_finish_or_when_no_time_is_left() -> None:
    left = [60.0]
    async with running_calls(MemoryStore()) as calls:
        stored = anyio.Event()

        async def job() -> CallToolResult:
            await stored.wait()
            return DONE

        assert await calls.start(job, CALL, 0) is None  # answered "running"; still running
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(server.finish_running, calls, lambda: left[0])
                await anyio.wait_all_tasks_blocked()
                stored.set()  # the call finishes and stores its answer: the wait ends
        never = anyio.Event()

        async def endless() -> CallToolResult:
            await never.wait()
            return DONE

        assert await calls.start(endless, CALL, 0) is None
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(server.finish_running, calls, lambda: left[0])
                await anyio.wait_all_tasks_blocked()
                left[0] = 0.0  # a second signal: the wait ends within one recheck
            await server.finish_running(calls, 0.0)  # stdio's seconds: none left
