"""The ``grok_chat_completions`` tool: its definition, and one call from arguments to answer.

A call flows one way: validate, open its conversation, build the upstream request (capabilities,
local images, adaptation), send it (once more without an argument upstream rejects), relay
progress, store and return the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from mcp.server import ServerRequestContext
from mcp_types import CallToolRequestParams, CallToolResult, Tool, ToolAnnotations

from grok_chat_mcp import results, tasks
from grok_chat_mcp.budget import Budgets
from grok_chat_mcp.calls import Call, Calls, Chars, best_effort
from grok_chat_mcp.capabilities import (
    Table,
    effort_aliases_phrase,
    models_phrase,
    redirects_phrase,
    unsupported_argument,
)
from grok_chat_mcp.errors import GrokError, InvalidArguments
from grok_chat_mcp.progress import ProgressRelay
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.store import CANCELLED, StoreError, Unavailable, owner_of

if TYPE_CHECKING:
    from grok_chat_mcp.request import GrokRequest
    from grok_chat_mcp.upstream.client import GrokClient

logger = logging.getLogger(__name__)

NOT_REMEMBERED = (
    "The conversation store is unavailable, so this conversation is not remembered: send the whole "
    "history in messages next time."
)
NOT_STORED = (
    "This answer could not be stored (the conversation store failed); a follow-up with this "
    "conversation_id will not include it: send the history in messages instead."
)

NAME = "grok_chat_completions"
TITLE = "Grok chat completion"
DESCRIPTION = f"""Chat with a Grok (xAI) model through AceDataCloud and get an OpenAI-compatible \
chat.completion back.
Use it to chat or reason with Grok ({models_phrase()}), to understand images (image_url parts: \
https, data: or a local JPEG/PNG path), and for function calling (tools / tool_choice). \
{redirects_phrase()} {effort_aliases_phrase()} Arguments a model rejects are not sent; the \
result's notes say which. \
Every answer carries a conversation_id: send it with only your new message to follow up. If a \
call is still running after a while, the result says status "running": call again with just its \
conversation_id to collect the answer."""
#: Claude Code inlines results up to this many characters (default about 50,000) instead of saving
#: them to a file the model may never read.
MAX_RESULT_SIZE_CHARS = 500_000


def definition(input_schema: Mapping[str, Any], *, confirm: bool = False) -> Tool:
    """The tool as ``tools/list`` advertises it; ``confirm`` (``GROK_CONFIRM_CALLS``): hosts must ask
    the user before each call, so the read-only hint that lets them approve it alone is left out."""
    meta: dict[str, Any] = {"anthropic/maxResultSizeChars": MAX_RESULT_SIZE_CHARS}
    if confirm:
        meta["anthropic/requiresUserInteraction"] = True
    return Tool(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        input_schema=dict(input_schema),
        output_schema=results.OUTPUT_SCHEMA,
        annotations=ToolAnnotations(
            title=TITLE,
            read_only_hint=None if confirm else True,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
        _meta=meta,
    )


class Tracker(Protocol):
    """Calls in flight, for cancellations that arrive outside their own request (stateless HTTP)."""

    def track(self, ctx: ServerRequestContext[Any, Any]) -> AbstractContextManager[anyio.CancelScope]: ...

    def key(self, ctx: ServerRequestContext[Any, Any], request_id: str | int) -> str: ...

    def cancel(self, key: str) -> bool: ...


def _no_token(_: ServerRequestContext[Any, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class CallPolicy:
    """What the transport decides for each call."""

    #: The call's own upstream token (None: the configured one).
    token: Callable[[ServerRequestContext[Any, Any]], str | None] = _no_token
    #: Image parts may name local files (not over a network transport).
    local_images: bool = True
    #: Cancellations routed from outside the call's request.
    tracker: Tracker | None = None
    #: Seconds between heartbeats while a call waits.
    heartbeat: float = 5.0
    #: Progress only for calls that carry a progress token (JSON-RPC transports); in-process
    #: clients receive progress through a callback, without a token.
    progress_needs_token: bool = False


@dataclass
class Services:
    """What every call shares (one per server process)."""

    grok: Callable[[], Coroutine[Any, Any, GrokClient]]
    table: Table
    calls: Calls
    api_token: str | None
    #: ``GROK_BUDGET``: checked before a call is sent, counted when its answer arrives.
    budget: Budgets = field(default_factory=lambda: Budgets(None, None))

    @cached_property
    def server_caller(self) -> Call:
        """A request without a token of its own: the server's pays and owns what it makes."""
        return Call(owner_of(self.api_token), None, Secrets((self.api_token,)))


def caller(services: Services, policy: CallPolicy, ctx: ServerRequestContext[Any, Any]) -> Call:
    """Who a request is from: its own token, else the server's, which pays and owns what it makes."""
    token = policy.token(ctx)
    if token is None:
        return services.server_caller
    return Call(owner_of(token), token, Secrets((token, services.api_token)))


async def call(
    services: Services, policy: CallPolicy, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
) -> CallToolResult | dict[str, Any]:
    """One ``tools/call`` of this tool: its result, or a task for a long call (Tasks extension)."""
    call = caller(services, policy, ctx)
    if params.name != NAME:
        return results.error(f"Unknown tool {params.name[:80]!r}: this server has only {NAME}.")
    if policy.tracker is None:
        return await _call(services, policy, ctx, call, params)
    with policy.tracker.track(ctx) as scope:
        return await _call(services, policy, ctx, call, params)
    # Reached only when a cancellation routed by the tracker ended the block.
    assert scope.cancelled_caught
    logger.info("call %s cancelled by the client; upstream request aborted", ctx.request_id)
    return results.error("Cancelled by the client; the upstream request was aborted.")


async def _call(
    services: Services,
    policy: CallPolicy,
    ctx: ServerRequestContext[Any, Any],
    call: Call,
    params: CallToolRequestParams,
) -> CallToolResult | dict[str, Any]:
    # Loaded on first use (the validation models take a while to build): docs/design.md, start-up.
    from grok_chat_mcp import arguments
    from grok_chat_mcp.request import build

    try:
        args = arguments.parse(params.arguments)
    except InvalidArguments as exc:
        return results.error(f"Invalid arguments:\n{exc}", call.secrets)
    call = replace(call, relay=_relay(ctx, policy, args.model, call.secrets))
    calls, store = services.calls, services.calls.store
    if args.conversation_id is not None and store is None:
        return results.error(
            "conversation_id: conversations are off on this server (GROK_STORE=off); send the whole "
            "history in messages instead."
        )
    notes: list[str] = []
    history: list[dict[str, Any]] = []
    try:
        if args.collects:
            assert args.conversation_id is not None
            return await calls.collect(call, args.conversation_id)
        if (over_budget := await services.budget.refusal(call.owner)) is not None:
            return results.error(over_budget, call.secrets)
        if store is not None:
            conversation_id, history = await store.begin(
                call.owner, args.conversation_id, [dict(m) for m in args.messages]
            )
            call = replace(call, conversation_id=conversation_id)
    except Unavailable as exc:
        if args.conversation_id is not None:
            return results.error(str(exc), call.secrets)
        logger.warning("%s; answering without storing the conversation", exc)
        notes.append(NOT_REMEMBERED)
    except StoreError as exc:
        return results.error(str(exc), call.secrets)
    try:
        request = await build(args, history, table=services.table, local_images=policy.local_images)
    except InvalidArguments as exc:
        await _fail(services, call, f"Invalid arguments:\n{exc}")
        return results.error(f"Invalid arguments:\n{exc}", call.secrets)

    async def job() -> CallToolResult:
        return await _complete(services, request, call, notes)

    as_task = tasks.declared(ctx) and store is not None
    wait = tasks.TASK_WAIT if as_task else calls.return_after
    result = await calls.start(job, call, wait)
    if result is not None:
        return result
    assert store is not None and call.conversation_id is not None  # an early return needs a store
    if as_task:
        return tasks.created(await store.get(call.owner, call.conversation_id), calls.limits.ttl)
    chars = call.relay.chars if call.relay is not None else 0
    return results.running(call.conversation_id, wait, chars)


def _relay(
    ctx: ServerRequestContext[Any, Any], policy: CallPolicy, model: str, secrets: Secrets
) -> ProgressRelay | None:
    meta = ctx.meta or {}
    if policy.progress_needs_token and "progressToken" not in meta and "progress_token" not in meta:
        return None
    return ProgressRelay(ctx.session.report_progress, model, heartbeat=policy.heartbeat, secrets=secrets)


async def _complete(services: Services, request: GrokRequest, call: Call, notes: list[str]) -> CallToolResult:
    """Send the request, store the answer (or the failure) and return the result."""
    chars = Chars()
    try:
        completion, sent = await _run(services, request, call, chars)
    except GrokError as exc:
        await _fail(services, call, call.secrets.redact(str(exc)))
        return results.error(str(exc), call.secrets)
    except anyio.get_cancelled_exc_class():
        await _fail(services, call, CANCELLED)
        raise
    spent = results.cost(completion, sent.model)
    left = await services.budget.record(call.owner, spent)
    structured = results.answer(completion, sent, call.conversation_id, spent, notes, left)
    store = services.calls.store
    if store is not None and call.conversation_id is not None:
        with anyio.CancelScope(shield=True), best_effort("storing the answer") as failures:
            await store.finish(
                call.conversation_id, [dict(m) for m in sent.new_messages], _reply(completion), structured
            )
        if failures:
            structured = {**structured, "notes": [*structured.get("notes", []), NOT_STORED]}
    return results.success(structured, call.secrets)


async def _run(
    services: Services, request: GrokRequest, call: Call, chars: Chars
) -> tuple[dict[str, Any], GrokRequest]:
    """The completion, with the call's lease renewed and its progress relayed meanwhile."""
    grok: GrokClient = await services.grok()
    on_text = _on_text(call.relay, chars) if request.stream else None
    try:
        with services.calls.leased(call.conversation_id, chars):
            if call.relay is None:
                return await _send(grok, services.table, request, call.token, on_text)
            async with call.relay.running():
                return await _send(grok, services.table, request, call.token, on_text)
    except* GrokError as group:
        raise _first(group) from None


def _first(group: BaseExceptionGroup[GrokError]) -> GrokError:
    error = group.exceptions[0]
    return error if isinstance(error, GrokError) else _first(error)


async def _send(
    grok: GrokClient,
    table: Table,
    request: GrokRequest,
    token: str | None,
    on_text: Callable[[str], Any] | None,
) -> tuple[dict[str, Any], GrokRequest]:
    """The completion, sent once more without an argument the model turned out to reject."""
    try:
        return await grok.complete(request, token, on_text), request
    except GrokError as exc:
        argument = unsupported_argument(exc.detail) if exc.status == 400 else None
        if argument is None or argument not in request.payload:
            raise
    table.learn(request.model, argument)
    logger.info("upstream rejected %s for %s; sending without it (remembered)", argument, request.model)
    retry = request.without(
        argument, f"{argument} was not sent: upstream says {request.model} does not support it (remembered)."
    )
    return await grok.complete(retry, token, on_text), retry


def _on_text(relay: ProgressRelay | None, chars: Chars) -> Callable[[str], Any]:
    async def on_text(text: str) -> None:
        chars.count += len(text)
        if relay is not None:
            await relay.text(text)

    return on_text


async def _fail(services: Services, call: Call, text: str) -> None:
    store = services.calls.store
    if store is not None and call.conversation_id is not None:
        with anyio.CancelScope(shield=True), best_effort("recording the failure"):
            await store.fail(call.conversation_id, text)


def _reply(completion: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant message to keep in the conversation (the first choice; tool calls included)."""
    choices = completion.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return {"role": "assistant", "content": ""}
    reply = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        reply["tool_calls"] = message["tool_calls"]
    if reply["content"] is None and "tool_calls" not in reply:
        reply["content"] = ""
    return reply
