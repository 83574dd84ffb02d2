"""The floor: the least an MCP server on the same SDK can do for this tool.

One pooled httpx client, no validation, no retries: arguments go straight upstream and the JSON
comes straight back; with ``stream`` it reads the events and returns the joined text, no more.
Benchmarks compare grok-chat-mcp with it.
"""

from __future__ import annotations

import json
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
    stream: bool = False,
) -> dict[str, Any]:
    """Forward a chat completion request."""
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if user is not None:
        payload["user"] = user
    url = os.environ["ACEDATACLOUD_API_BASE_URL"] + "/grok/chat/completions"
    headers = {"Authorization": f"Bearer {os.environ['ACEDATACLOUD_API_TOKEN']}"}
    http = ctx.request_context.lifespan_context
    if not stream:
        result: dict[str, Any] = (await http.post(url, json=payload, headers=headers)).json()
        return result
    text: list[str] = []
    async with http.stream("POST", url, json={**payload, "stream": True}, headers=headers) as response:
        async for line in response.aiter_lines():
            data = line.removeprefix("data:").strip()
            if line.startswith("data:") and data and data != "[DONE]":
                for choice in json.loads(data).get("choices") or ():
                    text.append((choice.get("delta") or {}).get("content") or "")
    return {"content": "".join(text)}


if __name__ == "__main__":
    server.run("stdio")
