"""The MCP server: the SDK's low-level ``Server`` with one tool, and what its calls share."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from mcp.server import Server, ServerRequestContext
from mcp.server.caching import CacheHint
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    CancelledNotificationParams,
    ListToolsResult,
    PaginatedRequestParams,
)

from grok_chat_mcp import __version__, tasks, tool
from grok_chat_mcp.budget import Budgets
from grok_chat_mcp.calls import Call, Calls
from grok_chat_mcp.capabilities import Table
from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.store import MEMORY_FALLBACK, Limits, Store, open_store

if TYPE_CHECKING:
    import httpx

    from grok_chat_mcp.upstream.client import GrokClient

logger = logging.getLogger(__name__)

NAME = "grok-chat-mcp"
INSTRUCTIONS = (
    "One tool, grok_chat_completions: send OpenAI-style messages to a Grok model; the result is "
    "{'result': <chat.completion>, 'conversation_id': ...}. Follow up with the conversation_id and only "
    "the new message. Errors come back as tool errors that say what to fix."
)


class Upstream:
    """The pooled upstream client, built when the first call needs it, in a worker thread (the
    event loop goes on serving meanwhile): a server that is only started and listed never imports
    httpx nor creates a TLS context (docs/design.md, start-up)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self._settings = settings
        self._transport = transport
        self._client: GrokClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = anyio.Lock()

    async def __call__(self) -> GrokClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await anyio.to_thread.run_sync(self._build)
        return self._client

    def _build(self) -> GrokClient:
        import grok_chat_mcp.request  # noqa: F401 - the validation models, loaded here rather than at start-up
        from grok_chat_mcp.upstream.client import GrokClient, make_http_client

        try:
            self._http = make_http_client(self._settings, self._transport)
        except (OSError, ssl.SSLError) as exc:  # e.g. SSL_CERT_FILE naming a missing or broken file
            raise GrokError(
                "Configuration error",
                f"the HTTPS client could not be set up: {exc}",
                "Check SSL_CERT_FILE and SSL_CERT_DIR in the server's environment (unset them to use "
                "the system's certificates), then call again.",
            ) from None
        return GrokClient(self._http, self._settings)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def input_schema() -> dict[str, Any]:
    """The advertised input schema, shipped as generated JSON (a test keeps it equal to the models)."""
    text = resources.files(__package__).joinpath("input_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


#: How long clients may reuse a tools/list result (2026-07-28 cache hints): an hour.
TOOLS_TTL_MS = 3_600_000
#: How often a stopping server asks again how long it may wait for its running calls.
RECHECK = 0.25


def store_limits() -> Limits:
    """The bounds of this server's store (looked up when the server starts, so tests may lower them)."""
    return Limits()


def _open_store(settings: Settings, limits: Limits | None = None) -> Store | None:
    limits = limits or store_limits()
    try:
        return open_store(settings.store, limits)
    except ValueError as exc:
        logger.error("%s; %s", exc, MEMORY_FALLBACK)
        return open_store("memory", limits)


def _cancel_here(calls: Calls, tracker: tool.Tracker | None, key: str) -> None:
    """A cancel another replica passed on: a task's conversation id, or a tracked request."""
    logger.debug("a replica passed on a cancel for %s", key)
    if not calls.cancel_here(key) and tracker is not None:
        tracker.cancel(key)


async def finish_running(calls: Calls, drain: float | Callable[[], float]) -> None:
    """Wait for the running calls for ``drain`` seconds, or for as long as ``drain()`` leaves."""
    if not callable(drain):
        with anyio.move_on_after(drain):
            await calls.drained()
        return
    while (left := drain()) > 0:
        with anyio.move_on_after(min(left, RECHECK)):
            await calls.drained()
            return


def build_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    policy: tool.CallPolicy | None = None,
    drain: float | Callable[[], float] = 0.0,
) -> Server[tool.Services]:
    """The server. ``transport`` replaces the network (tests, benchmarks); ``policy`` is what the
    transport decides for each call; ``drain`` is how long the calls still running when the server
    stops may take to finish and store their answers: seconds (stdio: stdin closed), or a function
    that says how many are left (HTTP: the rest of the shutdown grace, 0 after a second signal)."""
    policy = policy or tool.CallPolicy()
    definition = tool.definition(input_schema(), confirm=settings.confirm_calls)

    @asynccontextmanager
    async def lifespan(_: Server[tool.Services]) -> AsyncIterator[tool.Services]:
        upstream = Upstream(settings, transport)
        limits = store_limits()
        store = _open_store(settings, limits)
        try:
            async with anyio.create_task_group() as jobs:
                calls = Calls(
                    store,
                    jobs,
                    limits=limits,
                    return_after=settings.return_after,
                    call_timeout=settings.call_timeout,
                )
                if store is not None:  # leases, and the cancels other replicas pass on (Redis)
                    jobs.start_soon(calls.renew_leases)
                    jobs.start_soon(store.listen_cancels, partial(_cancel_here, calls, policy.tracker))
                try:
                    budget = Budgets.from_setting(settings.budget, store)
                    yield tool.Services(upstream, Table(), calls, settings.api_token, budget)
                    # The calls still running may finish and be stored (over stdio, a signal
                    # cancels this wait; over HTTP, the drain's clock ends it).
                    await finish_running(calls, drain)
                finally:
                    jobs.cancel_scope.cancel()  # the calls still running record that they were cut off
        finally:
            with anyio.CancelScope(shield=True):
                if store is not None:
                    await store.aclose()
                await upstream.aclose()

    async def list_tools(
        ctx: ServerRequestContext[tool.Services], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=[definition])

    async def call_tool(
        ctx: ServerRequestContext[tool.Services], params: CallToolRequestParams
    ) -> CallToolResult | dict[str, Any]:
        return await tool.call(ctx.lifespan_context, policy, ctx, params)

    def task_handler(
        method: Callable[[Calls, Call, str], Awaitable[dict[str, Any]]],
    ) -> Callable[[ServerRequestContext[tool.Services], tasks.TaskParams], Awaitable[dict[str, Any]]]:
        async def handle(
            ctx: ServerRequestContext[tool.Services], params: tasks.TaskParams
        ) -> dict[str, Any]:
            tasks.require_declared(ctx)
            services = ctx.lifespan_context
            return await method(services.calls, tool.caller(services, policy, ctx), params.task_id)

        return handle

    # The check only compares arguments whose schema declares ``x-mcp-header`` with their headers;
    # a schema that declares none validates nothing, and the SDK walks the whole schema twice per
    # call to find that out, so such a schema is not handed over (docs/benchmarks.md).
    header_schema = (
        definition.input_schema if '"x-mcp-header"' in json.dumps(definition.input_schema) else None
    )

    def tool_input_schema(name: str) -> Mapping[str, Any] | None:
        """For the SDK's check of ``Mcp-Param-*`` headers on 2026-07-28 calls, which otherwise runs
        ``tools/list`` again for every call (docs/benchmarks.md)."""
        return header_schema if name == definition.name else None

    server: Server[tool.Services] = Server(
        NAME,
        version=__version__,
        title="Grok Chat",
        instructions=INSTRUCTIONS,
        website_url="https://github.com/grok-chat-mcp/grok-chat-mcp",  # no PyPI page before a release
        lifespan=lifespan,
        get_tool_input_schema=tool_input_schema,
        # The tool list is fixed for the life of the process and the same for every caller.
        cache_hints={"tools/list": CacheHint(ttl_ms=TOOLS_TTL_MS, scope="public")},
        on_list_tools=list_tools,
    )
    # Registered here rather than as ``on_call_tool``: a call may answer with a task (a mapping).
    server.add_request_handler("tools/call", CallToolRequestParams, call_tool)
    server.extensions[tasks.EXTENSION] = {}
    for name, method in (
        ("tasks/get", tasks.get),
        ("tasks/cancel", tasks.cancel),
        ("tasks/update", tasks.update),
    ):
        server.add_request_handler(name, tasks.TaskParams, task_handler(method))
    tracker = policy.tracker
    if tracker is not None:

        async def cancelled(
            ctx: ServerRequestContext[tool.Services], params: CancelledNotificationParams
        ) -> None:
            if params.request_id is not None:
                key = tracker.key(ctx, params.request_id)
                if not tracker.cancel(key):
                    ctx.lifespan_context.calls.forward_cancel(key)

        server.add_notification_handler("notifications/cancelled", CancelledNotificationParams, cancelled)
    return server
