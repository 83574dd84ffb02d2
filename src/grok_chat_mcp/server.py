"""Builds the MCP server and its one tool, ``grok_chat_completions``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import anyio.to_thread
import pydantic_core
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from grok_chat_mcp import __version__
from grok_chat_mcp.capabilities import Table, image_models, models_phrase
from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError, InvalidArguments, redact, redact_json
from grok_chat_mcp.images import inline_local_images
from grok_chat_mcp.progress import ProgressRelay

if TYPE_CHECKING:
    import httpx

    from grok_chat_mcp.client import GrokClient, OnText

logger = logging.getLogger(__name__)

TOOL_NAME = "grok_chat_completions"
TOOL_DESCRIPTION = f"""Chat with a Grok (xAI) model through AceDataCloud and get an OpenAI-compatible \
chat.completion back.
Use it to chat or reason with Grok ({models_phrase()}), to understand images ({", ".join(image_models())} \
take image_url parts: https, data: or a local JPEG/PNG path), and for function calling \
(tools / tool_choice). Arguments a model rejects are not sent; the result's notes say which. With \
stream: true, progress notifications show the text as it arrives; the result is the same."""
#: Claude Code inlines results up to this many characters (default about 50,000) instead of saving
#: them to a file the model may never read: a completion of ~125k tokens at ~4 characters each,
#: more than one Grok answer holds in practice, plus the JSON around it.
MAX_RESULT_SIZE_CHARS = 500_000
INSTRUCTIONS = (
    "One tool, grok_chat_completions: send OpenAI-style messages to a Grok model; the result is "
    "{'result': <chat.completion>}. Errors come back as tool errors that say what to fix."
)

#: Resolves the upstream token for a call; None means the configured token.
TokenResolver = Callable[[Context[Any, Any]], str | None]


class InFlight:
    """Calls in progress by (caller, request id), so a cancellation that arrives in another HTTP
    request (the stateless transport has no session to route it) still finds its call.

    The caller is a hash of the request's bearer token: one caller cannot cancel another's call.
    """

    def __init__(self) -> None:
        self._scopes: dict[tuple[str, str], list[anyio.CancelScope]] = {}

    @staticmethod
    def caller(token: str | None) -> str:
        return hashlib.sha256((token or "").encode()).hexdigest()[:32]

    @contextmanager
    def track(self, caller: str, request_id: str) -> Iterator[anyio.CancelScope]:
        key = (caller, request_id)
        scope = anyio.CancelScope()
        self._scopes.setdefault(key, []).append(scope)
        try:
            with scope:
                yield scope
        finally:
            scopes = self._scopes[key]
            scopes.remove(scope)
            if not scopes:
                del self._scopes[key]

    def cancel(self, caller: str, request_id: str) -> bool:
        """Cancel the caller's call with this id; True if there was one."""
        scopes = self._scopes.get((caller, request_id), [])
        for scope in scopes:
            scope.cancel()
        return bool(scopes)

    def __len__(self) -> int:
        return sum(len(scopes) for scopes in self._scopes.values())


class ToolOutput(BaseModel):
    result: dict[str, Any] = Field(description="The chat.completion object, exactly as Grok returned it")
    notes: list[str] | None = Field(
        default=None,
        description="Only when the request was adapted to the model: what was not sent, and why",
    )


class AppState:
    """What every call shares: the upstream client, built on first use (or warmed up early).

    Building it imports httpx and creates its TLS context (about 0.1 s), which the SDK does not
    need: doing that after the handshake, in a worker thread, keeps it out of start-up.
    """

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self.settings = settings
        self._transport = transport
        self._grok: GrokClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = anyio.Lock()
        self._warming: asyncio.Future[GrokClient] | None = None

    async def grok(self) -> GrokClient:
        """The pooled upstream client (one per process)."""
        if self._grok is None:
            async with self._lock:
                if self._grok is None:
                    self._grok = await anyio.to_thread.run_sync(self._build)
        return self._grok

    def _build(self) -> GrokClient:
        import grok_chat_mcp.schema  # noqa: F401 - the validation models, off the start-up path
        from grok_chat_mcp.client import GrokClient, make_http_client

        self._http = make_http_client(self.settings, self._transport)
        return GrokClient(self._http, self.settings)

    def warm_up(self) -> None:
        """Build the client in the background, so the first call does not wait for it."""
        if self._grok is None and self._warming is None:
            self._warming = asyncio.ensure_future(self.grok())

    async def aclose(self) -> None:
        if self._warming is not None and not self._warming.done():
            await asyncio.wait([self._warming])
        if self._http is not None:
            await self._http.aclose()


def build_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    heartbeat: float = 5.0,
    token_for: TokenResolver | None = None,
    local_images: bool = True,
    in_flight: InFlight | None = None,
    progress_needs_token: bool = False,
) -> MCPServer[AppState]:
    """The server, with one pooled HTTP client that lives as long as the server.

    ``transport`` replaces the network (tests, benchmarks); ``token_for`` picks a per-request token;
    ``local_images`` lets image parts name local files (off for remote transports); ``in_flight``
    registers calls so that a cancellation sent in a separate HTTP request can find them.
    ``progress_needs_token``: on JSON-RPC transports a client that wants progress sends a
    ``progressToken``; without one no progress relay is started for the call.
    """

    table = Table()  # what each model accepts, and what upstream taught this process

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        state = AppState(settings, transport)
        try:
            yield state
        finally:
            await state.aclose()

    async def grok_chat_completions(ctx: Context[AppState, Any]) -> Annotated[CallToolResult, ToolOutput]:
        from grok_chat_mcp.schema import parse_arguments  # loaded after the handshake (see AppState)

        request = ctx.request_context
        try:
            chat, payload = parse_arguments((request.params or {}).get("arguments"))
            refused = table.refusal(chat.model, payload)
            if refused is not None:
                raise InvalidArguments(refused)
            payload = await inline_local_images(payload, allowed=local_images)
        except InvalidArguments as exc:
            return _error(f"Invalid arguments:\n{exc}")
        payload, notes = table.adapt(chat.model, payload)
        token = token_for(ctx) if token_for is not None else None
        meta = ctx.request_context.meta or {}
        wants_progress = not progress_needs_token or "progress_token" in meta or "progressToken" in meta
        call = _Call(ctx, chat.model, payload, notes, token, heartbeat if wants_progress else None)
        if in_flight is None:
            return await call.run()
        with in_flight.track(InFlight.caller(token), ctx.request_id):
            return await call.run()
        # Reached only when a cancellation ended the block: the upstream request is closed.
        logger.info("call %s cancelled by the client; upstream request aborted", ctx.request_id)
        return _error("Cancelled by the client; the upstream request was aborted.")

    tool = Tool.from_function(
        grok_chat_completions,
        name=TOOL_NAME,
        title="Grok chat completion",
        description=TOOL_DESCRIPTION,
        meta={"anthropic/maxResultSizeChars": MAX_RESULT_SIZE_CHARS},
        annotations=ToolAnnotations(
            title="Grok chat completion",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    # The function reads its arguments itself (see parse_arguments) so that every error names the
    # field in plain words; the advertised schema is the contract's, flat and null-free.
    tool.parameters = input_schema()
    server = MCPServer(
        "grok-chat-mcp",
        title="Grok Chat",
        instructions=INSTRUCTIONS,
        version=__version__,
        website_url="https://pypi.org/project/grok-chat-mcp/",
        lifespan=lifespan,
        tools=[tool],
        log_level=settings.log_level,  # type: ignore[arg-type]
    )
    server.middleware.append(only_tools)
    return server


#: Method families the high-level server answers although this server has nothing there.
_NOT_SERVED = ("prompts/", "resources/")
_EMPTY_CAPABILITIES = ("prompts", "resources")


async def only_tools(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Advertise and answer only what this server has: tools (and logging), no empty prompts/resources.

    ``MCPServer`` always registers prompt and resource handlers, so clients saw empty capabilities
    (Claude Code then adds resource tools to every model request). Those methods now answer
    "method not found" (-32601), and the capabilities in ``initialize`` / ``server/discover`` omit them.
    """
    if ctx.method.startswith(_NOT_SERVED):
        raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data=ctx.method)
    result = await call_next(ctx)
    if ctx.method == "tools/list" and isinstance(ctx.lifespan_context, AppState):
        ctx.lifespan_context.warm_up()  # the client has what it needs; build the upstream client now
    if ctx.method in ("initialize", "server/discover") and isinstance(result, dict):
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            result = {
                **result,
                "capabilities": {k: v for k, v in capabilities.items() if k not in _EMPTY_CAPABILITIES},
            }
    return result


class _Call:
    """One tool call after validation: the upstream request, with progress while it runs."""

    def __init__(
        self,
        ctx: Context[AppState, Any],
        model: str,
        payload: dict[str, Any],
        notes: list[str],
        token: str | None,
        heartbeat: float | None,
    ) -> None:
        self.ctx, self.model, self.payload, self.notes, self.token = ctx, model, payload, notes, token
        self.heartbeat = heartbeat

    async def run(self) -> CallToolResult:
        """The call's result; progress only when the client can receive it (``heartbeat`` set)."""
        grok = await self.ctx.request_context.lifespan_context.grok()
        secrets = (self.token, grok.api_token)
        if self.heartbeat is None:
            return await self._complete(grok, secrets, None)
        relay = ProgressRelay(self.ctx.report_progress, self.model, heartbeat=self.heartbeat, secrets=secrets)
        async with relay.running():  # errors are results inside: the relay's task group would wrap them
            return await self._complete(grok, secrets, relay.text if self.payload.get("stream") else None)

    async def _complete(
        self, grok: GrokClient, secrets: tuple[str | None, ...], on_text: OnText | None
    ) -> CallToolResult:
        try:
            completion = await grok.complete(self.payload, token=self.token, on_text=on_text)
        except GrokError as exc:
            return _error(redact(str(exc), secrets))
        return _success(completion, self.notes, secrets)


def input_schema() -> dict[str, Any]:
    """The advertised input schema, generated from ``schema.ChatRequest`` into ``input_schema.json``.

    Read from the file so that start-up neither imports the validation models nor generates the
    schema (about 25 ms); a test keeps the file equal to what the models generate.
    """
    text = resources.files(__package__).joinpath("input_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _success(completion: dict[str, Any], notes: list[str], secrets: tuple[str | None, ...]) -> CallToolResult:
    """The result: structured content and the same as one compact JSON text block."""
    structured: dict[str, Any] = {"result": completion, "notes": notes} if notes else {"result": completion}
    text = pydantic_core.to_json(structured, inf_nan_mode="null").decode()  # compact; 5x json.dumps
    cleaned = redact(text, secrets)  # an upstream that echoes a token must not pass it on
    if cleaned is not text:
        text, structured = cleaned, redact_json(structured, secrets)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _error(text: str) -> CallToolResult:
    logger.info("tool error: %s", text.splitlines()[0])
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
