"""Builds the MCP server and its one tool, ``grok_chat_completions``."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from grok_chat_mcp import __version__, models
from grok_chat_mcp.client import GrokClient, make_http_client
from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError, redact, redact_json
from grok_chat_mcp.images import inline_local_images
from grok_chat_mcp.progress import ProgressRelay
from grok_chat_mcp.schema import InvalidArguments, input_schema, parse_arguments

logger = logging.getLogger(__name__)

TOOL_NAME = "grok_chat_completions"
TOOL_DESCRIPTION = """Chat with a Grok (xAI) model through AceDataCloud and get an OpenAI-compatible \
chat.completion back.
Use it to chat or reason with Grok (grok-4 by default; grok-4.5, grok-3), to understand images (grok-4 \
and grok-4.5 take image_url parts: https, data: or a local JPEG/PNG path), and for function calling \
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


class ToolOutput(BaseModel):
    result: dict[str, Any] = Field(description="The chat.completion object, exactly as Grok returned it")
    notes: list[str] | None = Field(
        default=None,
        description="Only when the request was adapted to the model: what was not sent, and why",
    )


@dataclass
class AppState:
    grok: GrokClient


def build_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    heartbeat: float = 5.0,
    token_for: TokenResolver | None = None,
    local_images: bool = True,
) -> MCPServer[AppState]:
    """The server, with one pooled HTTP client opened in its lifespan.

    ``transport`` replaces the network (tests, benchmarks); ``token_for`` picks a per-request token;
    ``local_images`` lets image parts name local files (off for remote transports).
    """

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with make_http_client(settings, transport) as http:
            yield AppState(GrokClient(http, settings))

    async def grok_chat_completions(ctx: Context[AppState, Any]) -> Annotated[CallToolResult, ToolOutput]:
        request = ctx.request_context
        try:
            chat, payload = parse_arguments((request.params or {}).get("arguments"))
            refused = models.refusal(payload)
            if refused is not None:
                raise InvalidArguments(refused)
            payload = await inline_local_images(payload, allowed=local_images)
        except InvalidArguments as exc:
            return _error(f"Invalid arguments:\n{exc}")
        payload, notes = models.adapt(payload)
        grok = request.lifespan_context.grok
        token = token_for(ctx) if token_for is not None else None
        secrets = (token, settings.api_token)
        relay = ProgressRelay(ctx.report_progress, chat.model, heartbeat=heartbeat)
        async with relay.running():
            try:
                completion = await grok.complete(
                    payload, token=token, on_text=relay.text if chat.stream else None
                )
            except GrokError as exc:  # caught here: the relay's task group would wrap it in a group
                return _error(redact(str(exc), secrets))
        return _success(completion, notes, secrets)

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
    tool.parameters = copy.deepcopy(input_schema())
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
    if ctx.method in ("initialize", "server/discover") and isinstance(result, dict):
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            result = {
                **result,
                "capabilities": {k: v for k, v in capabilities.items() if k not in _EMPTY_CAPABILITIES},
            }
    return result


def _success(completion: dict[str, Any], notes: list[str], secrets: tuple[str | None, ...]) -> CallToolResult:
    """The result: structured content and the same as one compact JSON text block."""
    structured: dict[str, Any] = {"result": completion, "notes": notes} if notes else {"result": completion}
    text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    cleaned = redact(text, secrets)  # an upstream that echoes a token must not pass it on
    if cleaned is not text:
        text, structured = cleaned, redact_json(structured, secrets)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _error(text: str) -> CallToolResult:
    logger.info("tool error: %s", text.splitlines()[0])
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
