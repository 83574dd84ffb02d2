"""The floor: the least an MCP server on the same SDK can do for this tool.

One pooled httpx client, no validation, no retries, no streaming assembly: arguments go
straight upstream and the JSON comes straight back. Benchmarks compare grok-chat-mcp with it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer


@asynccontextmanager
async def lifespan(_: MCPServer[httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=180) as client:
        yield client


server = MCPServer("floor", lifespan=lifespan, log_level="WARNING")


@server.tool()
async def grok_chat_completions(
    ctx: Context[httpx.AsyncClient, Any],
    messages: list[dict[str, Any]],
    model: str = "grok-4",
    user: str | None = None,
) -> dict[str, Any]:
    """Forward a chat completion request."""
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if user is not None:
        payload["user"] = user
    response = await ctx.request_context.lifespan_context.post(
        os.environ["ACEDATACLOUD_API_BASE_URL"] + "/grok/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {os.environ['ACEDATACLOUD_API_TOKEN']}"},
    )
    result: dict[str, Any] = response.json()
    return result


if __name__ == "__main__":
    server.run("stdio")
