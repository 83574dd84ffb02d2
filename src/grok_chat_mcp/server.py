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
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from grok_chat_mcp import __version__
from grok_chat_mcp.client import GrokClient, make_http_client
from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.images import inline_local_images
from grok_chat_mcp.progress import ProgressRelay
from grok_chat_mcp.schema import InvalidArguments, input_schema, parse_arguments, upstream_payload

logger = logging.getLogger(__name__)

TOOL_NAME = "grok_chat_completions"
TOOL_DESCRIPTION = """Chat with a Grok (xAI) model through AceDataCloud and get an OpenAI-compatible \
chat.completion back.
Use it to chat or reason with Grok (grok-4, grok-3 family), for image understanding (grok-2-vision with \
image_url parts), and for function calling (tools / tool_choice). With stream: true the text arrives \
as progress notifications; the result is the same assembled chat.completion.
For videos use grok_text_to_video / grok_image_to_video instead."""
INSTRUCTIONS = (
    "One tool, grok_chat_completions: send OpenAI-style messages to a Grok model; the result is "
    "{'result': <chat.completion>}. Errors come back as tool errors that say what to fix."
)

#: Resolves the upstream token for a call; None means the configured token.
TokenResolver = Callable[[Context[Any, Any]], str | None]


class ToolOutput(BaseModel):
    result: dict[str, Any] = Field(description="The chat.completion object, exactly as Grok returned it")


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
            payload = await inline_local_images(payload, allowed=local_images)
        except InvalidArguments as exc:
            return _error(f"Invalid arguments:\n{exc}")
        grok = request.lifespan_context.grok
        token = token_for(ctx) if token_for is not None else None
        relay = ProgressRelay(ctx.report_progress, chat.model, streaming=chat.stream, heartbeat=heartbeat)
        async with relay.running():
            try:
                completion = await grok.complete(
                    upstream_payload(payload), token=token, on_text=relay.text if chat.stream else None
                )
            except GrokError as exc:  # caught here: the relay's task group would wrap it in a group
                return _error(str(exc))
        text = json.dumps(completion, ensure_ascii=False, separators=(",", ":"))
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content={"result": completion}
        )

    tool = Tool.from_function(
        grok_chat_completions,
        name=TOOL_NAME,
        title="Grok chat completion",
        description=TOOL_DESCRIPTION,
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
    return MCPServer(
        "grok-chat-mcp",
        title="Grok Chat",
        instructions=INSTRUCTIONS,
        version=__version__,
        website_url="https://pypi.org/project/grok-chat-mcp/",
        lifespan=lifespan,
        tools=[tool],
        log_level=settings.log_level,  # type: ignore[arg-type]
    )


def _error(text: str) -> CallToolResult:
    logger.info("tool error: %s", text.splitlines()[0])
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
