"""The Tasks extension through the SDK's in-memory client: a long call becomes a task the client
polls to the whole answer; cancel, ownership, stores, and clients that do not declare it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Request, RequestParams, Result, TextContent
from pydantic import ConfigDict, Field
from standin.upstream import Upstream

from grok_chat_mcp import tasks
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.server import build_server
from grok_chat_mcp.store import Limits, owner_of
from grok_chat_mcp.store.memory import MemoryStore
from grok_chat_mcp.tool import NAME, CallPolicy
from tests.conftest import HELLO, text_of, wait_for_disconnect
from tests.server.test_conversations import Caller, settings_for

pytestmark = pytest.mark.anyio
EXTENSION = "io.modelcontextprotocol/tasks"
LONG = {"messages": HELLO, "stream": True, "user": "scenario:sse200"}  # 1.4 s of stream


class TaskId(RequestParams):
    task_id: str


class TaskState(Result):
    """A ``tasks/*`` answer, every field kept."""

    model_config = ConfigDict(extra="allow")


class GetTask(Request[TaskId, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskId


class CancelTask(Request[TaskId, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskId


class UpdateTask(Request[TaskId, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: TaskId


class CreatedTask(Result):
    """The ``CreateTaskResult`` a server answers a long call with."""

    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    created_at: str = Field(alias="createdAt")
    last_updated_at: str = Field(alias="lastUpdatedAt")
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int = Field(alias="pollIntervalMs")


class Requester(ClientExtension):
    """A minimal Tasks requester: declares the extension and polls a task to its result."""

    identifier = EXTENSION

    def __init__(self) -> None:
        self.created: list[CreatedTask] = []
        self.polls: list[dict[str, Any]] = []

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self.resolve)]

    async def resolve(self, task: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        self.created.append(task)
        while True:
            polled = await send(ctx.session, GetTask(params=TaskId(task_id=task.task_id)))
            self.polls.append(polled)
            if polled["status"] == "completed":
                return CallToolResult.model_validate(polled["result"])
            if polled["status"] != "working":
                return CallToolResult(
                    content=[TextContent(type="text", text=polled["status"])], is_error=True
                )
            await anyio.sleep(0.05)  # the test's own pace, not the advertised pollIntervalMs


@asynccontextmanager
async def connected(
    stand_in: Upstream, store: str, extensions: Sequence[ClientExtension] = (), caller: Caller | None = None
) -> AsyncIterator[Client]:
    settings = settings_for(stand_in, store)
    policy = CallPolicy(token=caller) if caller is not None else CallPolicy()
    async with Client(build_server(settings, policy=policy), extensions=list(extensions)) as client:
        yield client


@pytest.fixture(autouse=True)
def short_task_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grok_chat_mcp.tasks.TASK_WAIT", 0.3)


async def send(session: ClientSession, request: Request[TaskId, Any]) -> dict[str, Any]:
    state = await session.send_request(request, TaskState)
    return state.model_dump(by_alias=True, exclude_none=True)


async def get_in(session: ClientSession, task_id: str) -> dict[str, Any]:
    return await send(session, GetTask(params=TaskId(task_id=task_id)))


async def get(client: Client, task_id: str) -> dict[str, Any]:
    return await send(client.session, GetTask(params=TaskId(task_id=task_id)))


async def test_a_long_call_becomes_a_task_polled_to_the_whole_answer(stand_in: Upstream, store: str) -> None:
    requester = Requester()
    async with connected(stand_in, store, [requester]) as client:
        assert client.server_capabilities.extensions == {EXTENSION: {}}
        result = await client.call_tool(NAME, LONG)
        assert not result.is_error, text_of(result)
        (created,) = requester.created
        assert (created.status, created.poll_interval_ms, created.ttl_ms) == (
            "working",
            2000,
            24 * 3600 * 1000,
        )
        assert created.created_at.endswith("Z") and created.last_updated_at >= created.created_at
        assert (
            requester.polls[0]["status"] == "working" and "characters" in requester.polls[0]["statusMessage"]
        )
        structured = result.structured_content or {}
        assert structured["conversation_id"] == created.task_id
        content = structured["result"]["choices"][0]["message"]["content"]
        assert content == "Hello from a streamed Grok answer."
        again = await get(client, created.task_id)  # the result stays for a second tasks/get
        assert again["status"] == "completed" and again["result"]["structuredContent"] == structured
        # The task id is the conversation id: a follow-up continues it.
        follow = await client.call_tool(NAME, {"conversation_id": created.task_id, "messages": HELLO})
        assert (follow.structured_content or {})["conversation_id"] == created.task_id
    assert len(stand_in.requests) == 2


async def test_a_short_call_answers_inline(stand_in: Upstream) -> None:
    requester = Requester()
    async with connected(stand_in, "memory", [requester]) as client:
        result = await client.call_tool(NAME, {"messages": HELLO})
        assert not result.is_error and not requester.created


async def test_a_client_that_does_not_declare_tasks_never_sees_one(stand_in: Upstream) -> None:
    async with connected(stand_in, "memory") as client:
        result = await client.call_tool(NAME, LONG)
        assert not result.is_error and (result.structured_content or {})["result"]["choices"]
        with pytest.raises(MCPError) as refused:
            await get(client, (result.structured_content or {})["conversation_id"])
        assert refused.value.error.code == -32021
        assert refused.value.error.data == {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}


async def test_unknown_and_other_owners_tasks_are_invalid_params(stand_in: Upstream) -> None:
    caller = Caller()
    requester = Requester()
    async with connected(stand_in, "memory", [requester], caller) as client:
        caller.token = "alice-token-000001"
        await client.call_tool(NAME, LONG)
        (created,) = requester.created
        caller.token = "mallory-token-0002"
        for request in (
            GetTask(params=TaskId(task_id=created.task_id)),
            CancelTask(params=TaskId(task_id=created.task_id)),
            UpdateTask(params=TaskId(task_id=created.task_id)),
            GetTask(params=TaskId(task_id="conv_doesnotexist")),
        ):
            with pytest.raises(MCPError) as refused:
                await send(client.session, request)
            assert refused.value.error.code == -32602 and "not found" in refused.value.error.message
        caller.token = "alice-token-000001"
        assert (await get(client, created.task_id))["status"] == "completed"
        acknowledged = await send(client.session, UpdateTask(params=TaskId(task_id=created.task_id)))
        assert acknowledged["resultType"] == "complete"
        assert set(acknowledged) <= {"resultType", "_meta"}


async def test_tasks_cancel_closes_the_upstream_request_and_reads_cancelled(stand_in: Upstream) -> None:
    class Cancelling(Requester):
        async def resolve(self, task: CreatedTask, ctx: ClaimContext) -> CallToolResult:
            self.created.append(task)
            await send(ctx.session, CancelTask(params=TaskId(task_id=task.task_id)))
            with anyio.fail_after(5):
                while (polled := await get_in(ctx.session, task.task_id))["status"] == "working":
                    await anyio.sleep(0.02)
            self.polls.append(polled)
            return CallToolResult(content=[], is_error=True)

    requester = Cancelling()
    async with connected(stand_in, "memory", [requester]) as client:
        await client.call_tool(NAME, {**LONG, "user": "scenario:long100"})
        (polled,) = requester.polls
        assert polled["status"] == "cancelled" and "cancelled" in polled["statusMessage"]
        await wait_for_disconnect(stand_in)


async def test_a_task_whose_server_died_reads_failed_within_a_lease_and_takes_follow_ups() -> None:
    now = [1000.0]
    store = MemoryStore(Limits(lease=60), clock=lambda: now[0])
    owner = owner_of("sk-a")
    task_id, _ = await store.begin(owner, None, HELLO)
    assert tasks.detailed(await store.get(owner, task_id), 3600, Secrets())["status"] == "working"
    now[0] += 61  # nothing renewed the lease: the process running the call is gone
    state = tasks.detailed(await store.get(owner, task_id), 3600, Secrets())
    assert state["status"] == "failed" and state["error"]["code"] == -32603
    assert "stopped before it finished" in state["statusMessage"] and "ask again" in state["statusMessage"]
    await store.begin(owner, task_id, HELLO)  # the conversation takes a follow-up again


async def test_tasks_cancel_on_another_replica_reaches_the_call_through_redis(
    stand_in: Upstream, redis_url: str
) -> None:
    shared = redis_url.rsplit("/", 1)[0] + "/13"
    requester = Requester()
    async with connected(stand_in, shared, [requester]) as a, connected(stand_in, shared, [Requester()]) as b:
        async with anyio.create_task_group() as group:

            async def call() -> None:
                await a.call_tool(NAME, {**LONG, "user": "scenario:long100"})

            group.start_soon(call)
            with anyio.fail_after(10):
                while not requester.created:
                    await anyio.sleep(0.02)
            task_id = requester.created[0].task_id
            await send(b.session, CancelTask(params=TaskId(task_id=task_id)))  # replica b does not run it
            with anyio.fail_after(5):
                while (await get(b, task_id))["status"] == "working":
                    await anyio.sleep(0.02)
            assert (await get(b, task_id))["status"] == "cancelled"
        await wait_for_disconnect(stand_in)
