"""The ``grok_chat_completions`` tool: its definition, and one call from arguments to answer.

A call flows one way: validate, open its conversation, build the upstream request (capabilities,
local images, adaptation), send it (once more without an argument upstream rejects), relay
progress, store and return the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from mcp.server import ServerRequestContext
from mcp_types import CallToolRequestParams, CallToolResult, Tool, ToolAnnotations

from grok_chat_mcp import results
from grok_chat_mcp.budget import Budgets
from grok_chat_mcp.calls import STORE_PROGRESS_EVERY, Calls
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
from grok_chat_mcp.store import StoreError, owner_of

if TYPE_CHECKING:
    from grok_chat_mcp.request import GrokRequest
    from grok_chat_mcp.upstream.client import GrokClient

logger = logging.getLogger(__name__)

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

    def cancel(self, ctx: ServerRequestContext[Any, Any], request_id: str | int) -> None: ...


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


async def call(
    services: Services, policy: CallPolicy, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
) -> CallToolResult:
    """One ``tools/call`` of this tool."""
    token = policy.token(ctx)
    secrets = Secrets((token, services.api_token))
    if params.name != NAME:
        return results.error(f"Unknown tool {params.name[:80]!r}: this server has only {NAME}.")
    if policy.tracker is None:
        return await _call(services, policy, ctx, params, token, secrets)
    with policy.tracker.track(ctx) as scope:
        return await _call(services, policy, ctx, params, token, secrets)
    # Reached only when a cancellation routed by the tracker ended the block.
    assert scope.cancelled_caught
    logger.info("call %s cancelled by the client; upstream request aborted", ctx.request_id)
    return results.error("Cancelled by the client; the upstream request was aborted.")


async def _call(
    services: Services,
    policy: CallPolicy,
    ctx: ServerRequestContext[Any, Any],
    params: CallToolRequestParams,
    token: str | None,
    secrets: Secrets,
) -> CallToolResult:
    # Loaded on first use (the validation models take a while to build): docs/design.md, start-up.
    from grok_chat_mcp import arguments
    from grok_chat_mcp.request import build

    try:
        args = arguments.parse(params.arguments)
    except InvalidArguments as exc:
        return results.error(f"Invalid arguments:\n{exc}", secrets)
    calls, store = services.calls, services.calls.store
    relay = _relay(ctx, policy, args.model, secrets)
    owner = owner_of(token)
    conversation_id: str | None = None
    history: list[dict[str, Any]] = []
    try:
        if args.conversation_id is not None and store is None:
            return results.error(
                "conversation_id: conversations are off on this server (GROK_STORE=off); send the whole "
                "history in messages instead."
            )
        if args.collects:
            assert args.conversation_id is not None
            return await calls.collect(owner, args.conversation_id, secrets, relay)
        if (over_budget := await services.budget.refusal(owner)) is not None:
            return results.error(over_budget, secrets)
        if store is not None:
            new = [dict(message) for message in args.messages]
            conversation_id, history = await store.begin(owner, args.conversation_id, new)
            del history[len(history) - len(new) :]  # begin returns the whole history: keep what came before
    except StoreError as exc:
        return results.error(str(exc), secrets)
    try:
        request = await build(args, history, table=services.table, local_images=policy.local_images)
    except InvalidArguments as exc:
        await _fail(services, conversation_id, f"Invalid arguments:\n{exc}")
        return results.error(f"Invalid arguments:\n{exc}", secrets)

    async def job() -> CallToolResult:
        return await _complete(services, request, token, conversation_id, relay, secrets)

    return await calls.start(job, conversation_id, relay, secrets)


def _relay(
    ctx: ServerRequestContext[Any, Any], policy: CallPolicy, model: str, secrets: Secrets
) -> ProgressRelay | None:
    meta = ctx.meta or {}
    if policy.progress_needs_token and "progressToken" not in meta and "progress_token" not in meta:
        return None
    return ProgressRelay(ctx.session.report_progress, model, heartbeat=policy.heartbeat, secrets=secrets)


async def _complete(
    services: Services,
    request: GrokRequest,
    token: str | None,
    conversation_id: str | None,
    relay: ProgressRelay | None,
    secrets: Secrets,
) -> CallToolResult:
    """Send the request, store the answer (or the failure) and return the result."""
    grok: GrokClient = await services.grok()
    on_text = _on_text(services, conversation_id, relay) if request.stream else None
    try:
        if relay is None:
            outcome = await _send(grok, services.table, request, token, on_text)
        else:
            async with relay.running():  # its task group would wrap an exception: a value instead
                outcome = await _send(grok, services.table, request, token, on_text)
        if isinstance(outcome, GrokError):
            raise outcome
        completion, sent = outcome
    except GrokError as exc:
        await _fail(services, conversation_id, secrets.redact(str(exc)))
        raise
    except anyio.get_cancelled_exc_class():
        await _fail(
            services, conversation_id, "The call was cancelled before it finished; send the message again."
        )
        raise
    left = await services.budget.record(owner_of(token), results.cost(completion, sent.model))
    result = results.success(results.answer(completion, sent, conversation_id, left), secrets)
    store = services.calls.store
    if store is not None and conversation_id is not None:
        with anyio.CancelScope(shield=True):
            try:
                await store.finish(
                    conversation_id,
                    [dict(m) for m in sent.new_messages],
                    _reply(completion),
                    dict(result.structured_content or {}),
                )
            except StoreError as exc:  # the caller still gets the answer; the conversation lacks it
                logger.warning("the answer could not be stored: %s", exc)
    return result


async def _send(
    grok: GrokClient,
    table: Table,
    request: GrokRequest,
    token: str | None,
    on_text: Callable[[str], Any] | None,
) -> tuple[dict[str, Any], GrokRequest] | GrokError:
    """The completion, sent once more without an argument the model turned out to reject."""
    try:
        return await grok.complete(request, token, on_text), request
    except GrokError as exc:
        argument = unsupported_argument(exc.detail) if exc.status == 400 else None
        if argument is None or argument not in request.payload:
            return exc
    table.learn(request.model, argument)
    logger.info("upstream rejected %s for %s; sending without it (remembered)", argument, request.model)
    retry = request.without(
        argument, f"{argument} was not sent: upstream says {request.model} does not support it (remembered)."
    )
    try:
        return await grok.complete(retry, token, on_text), retry
    except GrokError as exc:
        return exc


def _on_text(
    services: Services, conversation_id: str | None, relay: ProgressRelay | None
) -> Callable[[str], Any]:
    store = services.calls.store
    received = 0
    last = time.monotonic()

    async def on_text(text: str) -> None:
        nonlocal received, last
        received += len(text)
        if relay is not None:
            await relay.text(text)
        if (
            store is not None
            and conversation_id is not None
            and time.monotonic() - last >= STORE_PROGRESS_EVERY
        ):
            last = time.monotonic()
            await store.progress(conversation_id, received)

    return on_text


async def _fail(services: Services, conversation_id: str | None, text: str) -> None:
    store = services.calls.store
    if store is not None and conversation_id is not None:
        with anyio.CancelScope(shield=True):
            try:
                await store.fail(conversation_id, text)
            except StoreError as exc:
                logger.warning("the failure could not be stored: %s", exc)


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
