"""The MCP Tasks extension (``io.modelcontextprotocol/tasks``): long calls as tasks the host polls.

A request that declares the extension in its ``_meta`` client capabilities gets, for a call
still running after :data:`TASK_WAIT` seconds, a ``CreateTaskResult`` instead of a result; the
host polls ``tasks/get`` until the task is done and hands the model the ``CallToolResult``.
A task is the conversation's stored record: the task id is the conversation id, so any replica
sharing the store answers, and the answer can also be collected as a conversation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from grok_chat_mcp import results
from grok_chat_mcp.calls import Call, Calls
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.store import ABANDONED, CANCELLED, Conversation, StoreError, UnknownConversation

EXTENSION = "io.modelcontextprotocol/tasks"
#: Seconds a call answers inline before it becomes a task: most answers that do not reason at
#: length arrive within it (docs/tool.md, "Long calls").
TASK_WAIT = 5.0
#: How often the host should poll ``tasks/get``, in milliseconds.
POLL_INTERVAL_MS = 2000
#: JSON-RPC error codes of the extension's specification.
MISSING_CAPABILITY = -32021
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class TaskParams(RequestParams):
    """The parameters of ``tasks/get``, ``tasks/cancel`` and ``tasks/update``."""

    task_id: str = Field(alias="taskId")
    #: ``tasks/update`` only; this server never asks for input, so none is outstanding.
    input_responses: dict[str, Any] | None = Field(default=None, alias="inputResponses")


def declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether the request declares the extension (on the 2026-07-28 wire, which carries it)."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = (ctx.meta or {}).get(CLIENT_CAPABILITIES_META_KEY)
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(extensions, dict) and EXTENSION in extensions


def require_declared(ctx: ServerRequestContext[Any, Any]) -> None:
    """``-32021`` for a ``tasks/*`` request that does not declare the extension."""
    if not declared(ctx):
        raise MCPError(
            MISSING_CAPABILITY,
            "Missing required client capability",
            {"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
        )


async def get(calls: Calls, call: Call, task_id: str) -> dict[str, Any]:
    """``tasks/get``: the task as it stands, with its result inlined once it is done."""
    return detailed(await _conversation(calls, call, task_id), calls.limits.ttl, call.secrets)


async def cancel(calls: Calls, call: Call, task_id: str) -> dict[str, Any]:
    """``tasks/cancel``: stop the upstream request (here, or on the replica running it)."""
    conversation = await _conversation(calls, call, task_id)
    if conversation.running:
        calls.cancel(task_id)
    return {}


async def update(calls: Calls, call: Call, task_id: str) -> dict[str, Any]:
    """``tasks/update``: acknowledged; this server never asks for input, so nothing is outstanding."""
    await _conversation(calls, call, task_id)
    return {}


async def _conversation(calls: Calls, call: Call, task_id: str) -> Conversation:
    if calls.store is None:
        raise not_found(task_id)
    try:
        return await calls.store.get(call.owner, task_id)
    except UnknownConversation:
        raise not_found(task_id) from None
    except StoreError as exc:
        raise MCPError(INTERNAL_ERROR, str(exc)) from None


def not_found(task_id: str) -> MCPError:
    """Unknown, expired and another owner's tasks all read the same."""
    shown = task_id if len(task_id) <= 80 else task_id[:77] + "..."
    return MCPError(INVALID_PARAMS, f"Failed to retrieve task: task {shown!r} not found")


def created(conversation: Conversation, ttl: float) -> dict[str, Any]:
    """The ``CreateTaskResult`` for a call still running in ``conversation``."""
    return {"resultType": "task", **_task(conversation, ttl)}


def detailed(conversation: Conversation, ttl: float, secrets: Secrets) -> dict[str, Any]:
    """The ``DetailedTask`` that ``tasks/get`` returns for ``conversation``'s latest call."""
    task = _task(conversation, ttl)
    if conversation.running:
        return task
    if conversation.error == CANCELLED:
        return {**task, "status": "cancelled", "statusMessage": CANCELLED}
    if conversation.error == ABANDONED:  # no JSON-RPC answer was ever made: a protocol-level failure
        error = {"code": INTERNAL_ERROR, "message": ABANDONED}
        return {**task, "status": "failed", "statusMessage": ABANDONED, "error": error}
    if conversation.error is not None:
        result = results.error(conversation.error, secrets)
    elif conversation.answer is not None:
        result = results.success(conversation.answer, secrets)
    else:
        result = results.error(f"Task {conversation.id} has no answer.")
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {**task, "status": "completed", "statusMessage": _summary(result.is_error), "result": dumped}


def _task(conversation: Conversation, ttl: float) -> dict[str, Any]:
    started = conversation.started_at if conversation.started_at is not None else conversation.updated_at
    return {
        "taskId": conversation.id,
        "status": "working",
        "statusMessage": f"Grok is answering: {conversation.chars:,} characters received so far.",
        "createdAt": _iso(started),
        "lastUpdatedAt": _iso(max(conversation.updated_at, started)),
        "ttlMs": int(ttl * 1000),
        "pollIntervalMs": POLL_INTERVAL_MS,
    }


def _summary(is_error: bool | None) -> str:
    return "The call ended with a tool error." if is_error else "The answer is ready."


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
